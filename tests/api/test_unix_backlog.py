"""The accept queue of a listening unix socket, read from the kernel's sock_diag (api/serving/unix_backlog.py)."""

import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from api.serving.unix_backlog import BacklogUnreadableError, pending_connections, socket_name


@contextmanager
def listening(address: bytes | str) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(address)
        server.listen(16)
        yield server


def connect(stack: ExitStack, address: bytes | str, count: int) -> None:
    for _ in range(count):
        client = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        client.connect(address)


def test_counts_connections_until_they_are_accepted(tmp_path: Path) -> None:
    name = f"recsys-backlog-test-{tmp_path.name}"
    address = socket_name("@" + name)
    with listening(address) as server, ExitStack() as clients:
        assert pending_connections(address) == 0
        connect(clients, address, 3)
        assert pending_connections(address) == 3
        accepted, _ = server.accept()
        accepted.close()
        assert pending_connections(address) == 2


def test_reads_a_socket_bound_to_a_path(tmp_path: Path) -> None:
    path = str(tmp_path / "workers.sock")
    with listening(path), ExitStack() as clients:
        connect(clients, path, 2)
        assert pending_connections(socket_name(path)) == 2


def test_a_socket_nobody_listens_on_is_named_in_the_error(tmp_path: Path) -> None:
    address = socket_name(f"@recsys-backlog-absent-{tmp_path.name}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as bound_only:
        bound_only.bind(address)
        with pytest.raises(BacklogUnreadableError, match="recsys-backlog-absent"):
            pending_connections(address)


def test_uwsgi_addresses_map_to_kernel_names() -> None:
    assert socket_name("@recsys-workers") == b"\0recsys-workers\0"
    assert socket_name("/run/recsys.sock") == b"/run/recsys.sock"
