"""The real images, run the way the synthesized task definitions say Fargate runs them (issue 13).

One serving task runs for the module: it becomes ready with a model on its EFS mount, answers real requests,
passes its own health check and swaps to a version the trainer image publishes. The stop sequence gets a task of
its own, since it ends it.
"""

import json
import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from api.contract import APP_PORT, WRITABLE_PATHS
from tests.image import tasks
from tests.image.conftest import ROOT, note
from tools.images import build, fargate, podman
from tools.images.build import DOCKERFILE
from tools.images.taskdef import Container, serving_container, training_container
from tools.testkit.load import SteadyLoad

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

USER, ITEM = "u0000001", "i0000007"
LOAD_PATHS = [f"/v1/users/u{index:07d}/recommendations?k=5" for index in range(200)] + [
    f"/v1/items/i{index:07d}/similar?k=5" for index in range(0, 200, 7)
]
DATA_DIR = "/mnt/input"


@pytest.fixture(scope="module")
def serving_def(stack: dict[str, Any]) -> Container:
    return serving_container(stack, APP_PORT)


@pytest.fixture(scope="module")
def trainer_def(stack: dict[str, Any], serving_def: Container) -> Container:
    found = training_container(stack)
    if found is not None:
        return found
    # Until the stack has a training task definition, the trainer runs with the serving task's settings except
    # for its EFS mount, made read-write (what the training task's own access point gives).
    note("no training task definition in the stack: the trainer ran with the serving task's settings, EFS read-write")
    mounts = tuple(
        type(m)(m.volume, m.container_path, False, m.access_point) if m.access_point else m for m in serving_def.mounts
    )
    return Container(
        family=f"{serving_def.family} (trainer stand-in)",
        name="trainer",
        user=serving_def.user,
        read_only_root=serving_def.read_only_root,
        environment={},
        entry_point=None,
        command=None,
        mounts=mounts,
        health_check=None,
        stop_timeout=serving_def.stop_timeout,
        ulimits=serving_def.ulimits,
        sysctls=serving_def.sysctls,
        container_ports=(),
        init_process=serving_def.init_process,
    )


def _model_dir(container: Container) -> str:
    writable = [m.container_path for m in container.mounts if m.access_point is not None and not m.read_only]
    assert len(writable) == 1, f"{container.name} should write through exactly one EFS mount, has {writable}"
    return writable[0]


# The first model only needs to exist: no hyperparameter search. The second one, which the serving task swaps to,
# runs the search (optuna inside the trainer image) capped at two trials to bound the test's time.
FIRST_MODEL_ARGS = ("--tune-seconds=0",)
SEARCHED_MODEL_ARGS = ("--tune-trials=2",)


def trainer_command(trainer_def: Container, data_file: str, version: str, extra: tuple[str, ...]) -> list[str]:
    """The task definition's command with its S3 input replaced by the mounted data file (no S3 here), a version
    name the test can wait for, and `extra` arguments bounding the run's time."""
    command = list(trainer_def.command or ("--interactions", "", "--model-dir", _model_dir(trainer_def)))
    if "--interactions" in command:
        command[command.index("--interactions") + 1] = data_file
    else:
        found = [i for i, arg in enumerate(command) if arg.startswith("--interactions=")]
        assert found, f"the trainer's command {command} names no --interactions input"
        command[found[0]] = f"--interactions={data_file}"
    return [*command, f"--version={version}", *extra]


def train(
    trainer_def: Container,
    train_image: str,
    *,
    efs_root: Path,
    interactions: Path,
    tmp: Path,
    version: str,
    extra: tuple[str, ...],
) -> tasks.RunningContainer:
    """Run the trainer image to completion; it publishes `version` through its read-write access point mount."""
    command = trainer_command(trainer_def, f"{DATA_DIR}/{interactions.name}", version, extra)
    run = tasks.start(
        trainer_def,
        train_image,
        tmp / f"train-{version}",
        efs_root,
        command=command,
        extra_volumes={interactions.parent: DATA_DIR},
    )
    started = time.monotonic()
    code = run.wait_exit(within=300)
    assert code == 0, f"trainer exited {code}:\n{run.logs()[-3000:]}"
    note(
        f"trainer ({trainer_def.family}) published {version} in {time.monotonic() - started:.0f} s: {' '.join(command)}"
    )
    return run


@pytest.fixture(scope="module")
def first_model(
    trainer_def: Container,
    train_image: str,
    efs_root: Path,
    interactions: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    run = train(
        trainer_def,
        train_image,
        efs_root=efs_root,
        interactions=interactions,
        tmp=tmp_path_factory.mktemp("t"),
        version="v1",
        extra=FIRST_MODEL_ARGS,
    )
    tasks.remove(run)
    yield efs_root


@pytest.fixture(scope="module")
def serving(
    serving_def: Container, serving_image: str, first_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tasks.RunningContainer]:
    run = tasks.start(serving_def, serving_image, tmp_path_factory.mktemp("serving"), first_model)
    yield run
    tasks.remove(run)


def _grace(container: Container) -> int:
    assert container.grace_period_seconds is not None, "the service sets no health_check_grace_period_seconds"
    return container.grace_period_seconds


def test_serving_container_becomes_ready_within_the_grace_period_with_a_model_on_its_mount(
    serving: tasks.RunningContainer, serving_def: Container
) -> None:
    seconds = serving.wait_ready(within=_grace(serving_def))
    note(f"serving container ready in {seconds:.1f} s (grace period {_grace(serving_def)} s)")


def test_real_requests_answer_over_http(serving: tasks.RunningContainer, serving_def: Container) -> None:
    serving.wait_ready(within=_grace(serving_def))
    url = serving.base_url
    assert url is not None
    with requests.Session() as http:
        personal = http.get(f"{url}/v1/users/{USER}/recommendations?k=5", timeout=10)
        similar = http.get(f"{url}/v1/items/{ITEM}/similar?k=5", timeout=10)
        session = http.post(f"{url}/v1/recommendations", json={"recent_items": [ITEM], "k": 5}, timeout=10)
        batch = http.post(f"{url}/v1/recommendations/batch", json={"user_ids": [USER, "nobody"], "k": 3}, timeout=10)
        model = http.get(f"{url}/v1/model", timeout=10)
        spec = http.get(f"{url}/openapi.json", timeout=10)
    for response in (personal, similar, session, batch, model, spec):
        assert response.status_code == 200, (response.request.url, response.status_code, response.text[:300])
    assert personal.json()["strategy"] == "personalized" and len(personal.json()["items"]) == 5
    assert len(similar.json()["items"]) == 5
    assert session.json()["strategy"] == "session" and len(session.json()["items"]) == 5
    assert [len(result["items"]) for result in batch.json()["results"]] == [3, 3]
    assert model.json()["model_version"] == "v1"
    assert spec.json()["openapi"].startswith("3.")


def test_the_images_uwsgi_answers_pipelined_requests_in_order(
    serving: tasks.RunningContainer, serving_def: Container
) -> None:
    """The image's uWSGI is the patched build (tools/uwsgi_build.py in the uwsgi-build stage): three requests sent
    at once on one connection get three answers, in order, and the connection stays open."""
    serving.wait_ready(within=_grace(serving_def))
    assert serving.base_url is not None
    host, port = serving.base_url.removeprefix("http://").rsplit(":", 1)
    ks = (3, 1, 2)
    pipelined = b"".join(f"GET /v1/items/{ITEM}/similar?k={k} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() for k in ks)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(pipelined)
        received = b""
        bodies: list[dict[str, Any]] = []
        while len(bodies) < len(ks):
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {len(bodies)} of {len(ks)} answers: {received[-300:]!r}"
            received += chunk
            bodies = _complete_json_bodies(received)
    assert [body["k"] for body in bodies] == list(ks)
    assert [len(body["items"]) for body in bodies] == list(ks)


def _complete_json_bodies(data: bytes) -> list[dict[str, Any]]:
    bodies = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        if len(rest) < length:
            break
        bodies.append(json.loads(rest[:length]))
        data = rest[length:]
    return bodies


def test_the_task_definition_health_check_passes_inside_the_container(
    serving: tasks.RunningContainer, serving_def: Container
) -> None:
    check = serving_def.health_check
    assert check is not None, "the serving container has no health check in its task definition"
    result = fargate.run_health_check(serving.name, check)
    assert result.healthy, f"health check {check.argv} failed {result.attempts} times: {result.last_output}"
    note(f"health check {' '.join(check.argv)} passed inside the container after {result.attempts} attempt(s)")


def test_writable_paths_hold_the_image_content_and_are_writable_by_the_task_user(
    serving: tasks.RunningContainer, serving_def: Container
) -> None:
    for path in WRITABLE_PATHS:
        probe = f"{path}/.image-test-probe"
        result = podman.run(
            ["exec", serving.name, "python", "-c", f"open({probe!r}, 'w').write('x')"], capture=True, check=False
        )
        assert result.returncode == 0, f"{serving_def.user} cannot write {path} in the running task: {result.stderr}"


def test_trainer_publishes_a_version_as_the_access_point_user_and_serving_swaps_to_it_without_a_failed_request(  # noqa: PLR0917 (fixtures)
    serving: tasks.RunningContainer,
    serving_def: Container,
    trainer_def: Container,
    train_image: str,
    efs_root: Path,
    interactions: Path,
    tmp_path: Path,
) -> None:
    serving.wait_ready(within=_grace(serving_def))
    assert serving.base_url is not None
    with SteadyLoad(serving.base_url, LOAD_PATHS, clients=4) as load:
        load.wait_for(100)
        run = train(
            trainer_def,
            train_image,
            efs_root=efs_root,
            interactions=interactions,
            tmp=tmp_path,
            version="v2",
            extra=SEARCHED_MODEL_ARGS,
        )
        tasks.remove(run)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recent = load.versions()[-30:]
            if len(recent) == 30 and set(recent) == {"v2"}:
                break
            time.sleep(0.2)
        count = len(load.outcomes)
        load.wait_for(count + 50)
    assert load.failures() == [], load.failures()[:5]
    assert set(load.versions()) == {"v1", "v2"}, "the serving container did not swap to v2"
    point = next(m.access_point for m in trainer_def.mounts if m.access_point is not None and not m.read_only)
    assert point is not None
    published = fargate.efs_directory(efs_root, point) / "v2"
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in [published, *published.rglob("*")]}
    assert owners == {(point.uid, point.gid)}, f"files of v2 are owned by {owners}, not the access point user"


def test_sigterm_under_steady_load_fails_no_request_and_exits_0_within_stop_timeout(
    serving_def: Container, serving_image: str, first_model: Path, tmp_path: Path
) -> None:
    run = tasks.start(serving_def, serving_image, tmp_path / "task", first_model)
    try:
        run.wait_ready(within=_grace(serving_def))
        assert run.base_url is not None
        load = SteadyLoad(run.base_url, LOAD_PATHS, clients=8)
        stopped: list[fargate.Stopped] = []
        with load:
            load.wait_for(200)
            stopper = threading.Thread(target=lambda: stopped.append(fargate.stop(run.name, serving_def.stop_timeout)))
            stopper.start()
            # As the load balancer does once the target is deregistered: no new request after the signal.
            time.sleep(0.05)
            load.stop()
            stopper.join(timeout=serving_def.stop_timeout + 30)
        assert stopped, "podman stop did not return"
        assert load.failures() == [], load.failures()[:5]
        assert stopped[0].exit_code == 0, f"exit {stopped[0].exit_code}:\n{run.logs()[-3000:]}"
        # The drain reads the workers' unix-socket queue through netlink sock_diag, under the runtime's default
        # seccomp profile and capabilities as in a Fargate task (api/serving/unix_backlog.py).
        assert "drained in" in run.logs()
        assert "cannot read the workers' accept queue" not in run.logs()
        assert stopped[0].seconds < serving_def.stop_timeout, (
            f"took {stopped[0].seconds:.1f} s, stopTimeout is {serving_def.stop_timeout} s: SIGKILL would land first"
        )
        note(f"SIGTERM under load: {len(load.outcomes)} requests, 0 failed, exit 0 in {stopped[0].seconds:.1f} s")
    finally:
        tasks.remove(run)


def _training_distributions() -> list[str]:
    pipfile = tomllib.loads((ROOT / "Pipfile").read_text())
    training = pipfile.get("training")
    assert training, "Pipfile has no [training] category: the trainer's packages must be separate from serving's"
    return sorted(training)


def test_serving_image_holds_no_training_library(serving_image: str) -> None:
    names = _training_distributions()
    script = (
        "import importlib.metadata as m, importlib.util as u, json, sys\n"
        "found = {}\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        found[name] = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        if u.find_spec(name.replace('-', '_')) is not None:\n"
        "            found[name] = 'importable'\n"
        "print(json.dumps(found))\n"
    )
    result = tasks.exec_in(serving_image, "python", "-c", script, json.dumps(names))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}, f"training libraries in the serving image: {result.stdout}"


def test_trainer_image_holds_the_training_libraries(train_image: str) -> None:
    names = _training_distributions()
    result = tasks.exec_in(
        train_image, "python", "-c", "import importlib.metadata as m, sys; [m.version(n) for n in sys.argv[1:]]", *names
    )
    assert result.returncode == 0, result.stderr


def test_venv_sizes_are_printed(serving_image: str, train_image: str) -> None:
    sizes = {}
    for image in (serving_image, train_image):
        result = tasks.exec_in(image, "du", "-sm", "/opt/venv")
        assert result.returncode == 0, result.stderr
        sizes[image] = int(result.stdout.split()[0])
    note("virtual environments: " + ", ".join(f"{image} {mb} MB" for image, mb in sizes.items()))
    assert sizes[serving_image] <= sizes[train_image]


def test_without_the_volume_declaration_the_app_cannot_start_and_the_failure_names_the_path(
    serving_def: Container, serving_image: str, first_model: Path, tmp_path: Path
) -> None:
    """The /tmp defect of issue 12 (finding 1), reproduced: the same Dockerfile without its VOLUME lines gives a task
    whose /tmp is Fargate's empty root-owned 0755 directory, and step 1 fails naming the path."""
    text = DOCKERFILE.read_text()
    stripped = "\n".join(line for line in text.splitlines() if not line.startswith("VOLUME"))
    assert stripped != text, "api/Dockerfile declares no VOLUME"
    variant = tmp_path / "Dockerfile.no-volume"
    variant.write_text(stripped + "\n")
    # Kept in the checkout's image storage (not removed) so that the next run builds it from the layer cache.
    image = build.build(build.SERVING_TARGET, dockerfile=variant, name="localhost/recsys-api:no-volume").name
    run = tasks.start(serving_def, image, tmp_path / "task", first_model)
    try:
        with pytest.raises(AssertionError) as failure:
            run.wait_ready(within=_grace(serving_def))
    finally:
        tasks.remove(run)
    message = str(failure.value)
    note("without VOLUME /tmp: " + message.splitlines()[0][:300])
    for path in WRITABLE_PATHS:
        assert f"{path} is mounted as 0:0 mode 755" in message, message
    assert "Permission denied" in message, message
