"""How many connections wait in the accept queue of a listening unix socket, read from the kernel's sock_diag.

uWSGI's `listen_queue()` reads the TCP accept queue only (for a unix socket it asks an ioctl that stock kernels lack
and reports 0), and SIOCINQ refuses listening unix sockets. The kernel does report the queue to sock_diag: for a
listening unix socket, UNIX_DIAG_RQLEN carries the pending connections and the backlog limit (what `ss -xl` shows as
Recv-Q and Send-Q; net/unix/diag.c, sk_diag_show_rqlen). Reading it needs no privilege and no descriptor of the
socket: the dump is asked by state (listening) and matched by name, in the caller's network namespace, which is the
one the abstract name lives in.
"""

import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10
UDIAG_SHOW_NAME = 0x01
UDIAG_SHOW_RQLEN = 0x10
UNIX_DIAG_NAME = 0
UNIX_DIAG_RQLEN = 4

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_REQUEST = struct.Struct("=BBHIII8x")  # struct unix_diag_req (the cookie left zero)
_MESSAGE = struct.Struct("=BBBBI8x")  # struct unix_diag_msg
_ATTRIBUTE = struct.Struct("=HH")  # struct rtattr
_RQLEN = struct.Struct("=II")  # struct unix_diag_rqlen: queued connections, backlog limit


class BacklogUnreadableError(OSError):
    """The kernel gave no queue length for the socket (not listening, or sock_diag unavailable)."""


def socket_name(uwsgi_address: str) -> bytes:
    """The kernel's name of a unix socket uWSGI binds: a path as it is; `@name` abstract, with a NUL at both ends.

    uWSGI 2.0.31 counts a terminating NUL in an abstract address's length (core/socket.c:207-209, `len =
    strlen(socket_name) + 1`), so the kernel holds `\\0name\\0`; `ss -xl` shows it as `@name@`.
    """
    if uwsgi_address.startswith("@"):
        return b"\0" + uwsgi_address[1:].encode() + b"\0"
    return uwsgi_address.encode()


def pending_connections(name: bytes) -> int:
    """Connections queued on the listening unix socket `name` (as `socket_name` gives it), not yet accepted."""
    queues = [queued for found, queued in _listening_queues() if found == name]
    if not queues:
        raise BacklogUnreadableError(f"no listening unix socket named {name!r} in this network namespace")
    return sum(queues)


def _listening_queues() -> list[tuple[bytes, int]]:
    request = _REQUEST.pack(socket.AF_UNIX, 0, 0, 1 << TCP_LISTEN, 0, UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN)
    header = _HEADER.pack(_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    found: list[tuple[bytes, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as diag:
        diag.sendall(header + request)
        while True:
            data = diag.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR:
                    (error,) = struct.unpack_from("=i", data, offset + _HEADER.size)
                    raise BacklogUnreadableError(-error, "sock_diag refused the unix socket dump")
                if kind == SOCK_DIAG_BY_FAMILY:
                    found.append(_name_and_queue(data[offset + _HEADER.size : offset + length]))
                offset += _aligned(length)
            if not data:
                raise BacklogUnreadableError("sock_diag ended the dump without NLMSG_DONE")


def _name_and_queue(message: bytes) -> tuple[bytes, int]:
    name, queued = b"", 0
    offset = _MESSAGE.size
    while offset + _ATTRIBUTE.size <= len(message):
        length, kind = _ATTRIBUTE.unpack_from(message, offset)
        if length < _ATTRIBUTE.size:
            break
        payload = message[offset + _ATTRIBUTE.size : offset + length]
        if kind == UNIX_DIAG_NAME:
            # A path name comes with its terminating NUL; an abstract name (leading NUL) is taken byte for byte.
            name = payload if payload.startswith(b"\0") else payload.split(b"\0", 1)[0]
        elif kind == UNIX_DIAG_RQLEN:
            queued = _RQLEN.unpack_from(payload)[0]
        offset += _aligned(length)
    return name, queued


def _aligned(length: int) -> int:
    return (length + 3) & ~3
