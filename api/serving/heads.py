"""The request head's documented limits, read off the WSGI environ alone (Flask's hook and the similar-items
shortcut both ask, so a head over a limit gets the same answer whichever path would have served it)."""

from typing import TYPE_CHECKING

from api.serving.config import ApiConfig

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


def head_problem(environ: "WSGIEnvironment", config: ApiConfig) -> tuple[int, str, dict[str, str]] | None:
    """414 or 431 (RFC 9110 section 15.5.15, RFC 6585 section 5) for a request head over the documented limits, as
    (status, error, detail); None for a head within them.

    uWSGI's HTTP router carries heads up to its 64 KiB packet to the app (api/uwsgi.ini), so these answers reach
    the client as JSON; only heads beyond that packet are closed by the router without an answer.
    """
    target = environ.get("REQUEST_URI")
    if target is None:  # servers other than uWSGI (the test client sets it too, but WSGI does not require it)
        query = environ.get("QUERY_STRING", "")
        target = environ.get("PATH_INFO", "") + ("?" + query if query else "")
    # WSGI strings are the wire bytes decoded as latin-1 (PEP 3333), so len() counts bytes.
    if len(target) > config.max_request_target_bytes:
        limit = config.max_request_target_bytes
        message = f"the request target is {len(target)} bytes; the limit is {limit}: send fewer or shorter ids"
        return 414, "uri too long", {"field": "url", "message": message}
    size = _header_bytes(environ)
    if size > config.max_header_bytes:
        limit = config.max_header_bytes
        message = f"the header fields are {size} bytes; the limit is {limit}: send smaller cookies or fewer headers"
        return 431, "request header fields too large", {"field": "headers", "message": message}
    return None


def _header_bytes(environ: "WSGIEnvironment") -> int:
    """The header fields' size as on the wire (`Name: value` and CRLF), from the CGI variables made of them."""
    prefixed = sum(
        len(name) - len("HTTP_") + len(": \r\n") + len(value)
        for name, value in environ.items()
        if name.startswith("HTTP_") and isinstance(value, str)
    )
    # Content-Type and Content-Length are the two fields CGI passes without the HTTP_ prefix.
    unprefixed = sum(
        len(name) + len(": \r\n") + len(environ.get(name) or "")
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH")
        if environ.get(name)
    )
    return prefixed + unprefixed
