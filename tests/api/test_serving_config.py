"""uwsgi.ini holds the contract's values (the Dockerfile's are held in tests/image/test_dockerfile.py)."""

from pathlib import Path

from api.contract import (
    APP_PORT,
    KEEPALIVE_TIMEOUT_SECONDS,
    LISTEN_BACKLOG,
    MAX_BODY_BYTES,
    SHUTDOWN_GRACE_SECONDS,
    WORKERS_ENV,
)
from api.serving.config import ApiConfig

API = Path(__file__).resolve().parents[2] / "api"


def ini_pairs() -> list[tuple[str, str]]:
    pairs = []
    for raw in (API / "uwsgi.ini").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith((";", "#", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def ini_values(key: str) -> list[str]:
    return [value for name, value in ini_pairs() if name == key]


def ini_value(key: str) -> str:
    values = ini_values(key)
    assert len(values) == 1, f"{key} appears {len(values)} times"
    return values[0]


def test_uwsgi_binds_the_contract_port_with_the_keep_alive_http_router() -> None:
    pairs = ini_pairs()
    default_bind = pairs[pairs.index(("if-not-env", "APP_BIND")) + 1]
    assert default_bind == ("http", f":{APP_PORT}")
    assert int(ini_value("http-keepalive")) >= 1
    assert int(ini_value("http-timeout")) == KEEPALIVE_TIMEOUT_SECONDS
    keys = {key for key, _ in pairs}
    assert not keys & {"http11-socket", "http-socket", "die-on-term", "lazy"}


def test_request_bodies_are_buffered_by_the_http_router_up_to_the_contract_body_limit() -> None:
    # Workers only ever see complete bodies: the HTTP router buffers them (api/uwsgi/post-buffering.patch) and
    # connects straight to the workers' socket; no third router process on the path.
    assert set(ini_values("http-to")) == set(ini_values("socket"))
    assert not {key for key, _ in ini_pairs()} & {"fastrouter", "fastrouter-to", "fastrouter-post-buffering"}
    # Abstract unix sockets leave no file behind; a new TCP connection per request cost 15 % of the server's CPU. The
    # SIGTERM drain reads the workers' accept queue by this name (api/serving/unix_backlog.py).
    assert all(name.startswith("@") for name in ini_values("socket"))
    assert int(ini_value("http-post-buffering")) == MAX_BODY_BYTES
    assert int(ini_value("http-manage-expect")) == MAX_BODY_BYTES
    assert ApiConfig(model_dir=Path("/models")).max_body_bytes == MAX_BODY_BYTES
    # A body that trickles in holds a router session for at most this long, and never a worker.
    assert 0 < int(ini_value("http-post-buffering-timeout")) < KEEPALIVE_TIMEOUT_SECONDS


def test_uwsgi_shuts_down_gracefully_within_the_contract_grace() -> None:
    # SIGTERM goes to the drain mule (api/serving/drain.py); it asks the master for the graceful shutdown (FIFO).
    assert ini_value("hook-master-start") == "unix_signal:15 uwsgi_route_signal"
    assert ini_value("mules") == "1"
    assert all(path.startswith("/tmp/") for path in ini_values("master-fifo"))
    assert int(ini_value("reload-mercy")) == SHUTDOWN_GRACE_SECONDS
    assert int(ini_value("worker-reload-mercy")) == SHUTDOWN_GRACE_SECONDS
    assert 0 < int(ini_value("harakiri")) < SHUTDOWN_GRACE_SECONDS


def test_uwsgi_loads_the_model_in_the_master_and_fails_without_an_app() -> None:
    for flag in ("master", "need-app", "strict"):
        assert ini_value(flag) == "true"
    assert ini_value("lazy-apps") == "false"
    assert ini_value("module") == "api.serving.wsgi:application"


def test_uwsgi_runs_single_threaded_blas_and_bounded_workers() -> None:
    assert {"OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"} <= set(ini_values("env"))
    pairs = ini_pairs()
    assert pairs[pairs.index(("if-env", WORKERS_ENV)) + 1] == ("workers", "%(_)")
    assert int(ini_value("max-requests")) > 0
    assert int(ini_value("max-requests-delta")) > 0
    assert int(ini_value("listen")) == LISTEN_BACKLOG


def test_workers_take_every_request_head_the_http_router_can_carry() -> None:
    # The router's uwsgi packet is at most 64 KiB; a worker with a smaller buffer-size drops the larger ones with no
    # answer, and the app's 414/431 (tests/api/test_protocol.py) never reach the client.
    assert int(ini_value("buffer-size")) == 65535
    # ... and every variable count it can hold: at least 10 bytes each, two iovec slots per max-vars (uwsgi.ini).
    assert 2 * int(ini_value("max-vars")) >= 65531 // 10
    # A larger first read would let the head's packet plus the body bytes of that read overflow 64 KiB (uwsgi.ini).
    assert int(ini_value("http-buffer-size")) <= 32768
