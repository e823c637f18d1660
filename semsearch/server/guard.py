"""Refusals made before a request reaches a route or its body is read: a Host this server does
not answer to (DNS rebinding), a URL or body over its limit, a write without the token."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import struct
import sys
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semsearch.errors import InputError
from semsearch.server.limits import (
    LOCAL_HOSTS,
    MAX_BODY_BYTES,
    MAX_QUERIES,
    MAX_QUERY_CHARS,
    MAX_URL_BYTES,
    MAX_WRITE_BODY_BYTES,
    TOKEN_ENV,
    WILDCARD_HOSTS,
)


class Guard:
    """Refusals that need neither a route nor the body, made before the body is read: a Host
    this server does not answer to (``hosts``; None: any), a URL over MAX_URL_BYTES, a write
    while writes are off (``token`` None) or without the token, a body over its limit
    (declared in Content-Length, or counted as it arrives when chunked)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None, token: str | None):
        self.app, self.hosts, self.token = app, hosts, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        write = _is_write(scope)
        limit = MAX_WRITE_BODY_BYTES if write else MAX_BODY_BYTES
        refusal = (self._host_refusal(headers.get("host", "")) or _url_refusal(scope)
                   or (self._write_refusal(headers.get("authorization", "")) if write else None)
                   or _size_refusal(headers.get("content-length"), limit))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # an HTTPException: the app's handlers answer it with JSON
                raise StarletteHTTPException(413, _too_large(limit))
            return message

        await self.app(scope, receive_within_limit, send)

    def _host_refusal(self, header: str) -> JSONResponse | None:
        if self.hosts is None or _host_name(header) in self.hosts:
            return None
        return _refusal(400, f"Host {header!r} is not one this server answers to (a web page"
                             " reaching it through DNS rebinding would look like this); start"
                             " it with --allowed-host NAME to allow one")

    def _write_refusal(self, authorization: str) -> JSONResponse | None:
        refused = write_refusal(authorization, self.token)
        if refused is None:
            return None
        status, message = refused
        return _refusal(status, message, {"WWW-Authenticate": "Bearer"} if status == 401 else None)


def write_token(allow_writes: bool, token: str | None) -> str | None:
    """The token a write must carry (None: writes are off), refused where writes would have
    none or it could not travel in a header: `serve` and `mcp --http` take it alike."""
    if allow_writes and not token:
        raise InputError(f"--allow-writes needs a token: --token or ${TOKEN_ENV}")
    if token is not None and not (token.isascii() and token.isprintable()):
        raise InputError("--token must be printable ASCII (an HTTP header carries no other)")
    return token if allow_writes else None


def write_refusal(authorization: str, token: str | None) -> tuple[int, str] | None:
    """Why a write with this Authorization header is refused (its HTTP status and message):
    writes are off (``token`` None), or it carries no valid bearer token; None: allowed."""
    if token is None:
        return 403, "writes are off; start the server with --allow-writes"
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() == "bearer" and secrets.compare_digest(given.encode(), token.encode()):
        return None
    return 401, "a valid bearer token is needed to write"


def _refusal(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answered before the body was read. The connection stays open: uvicorn drops
    the body's bytes as they come (none reach the app), and a client that sends its whole body
    before it reads (http.client, requests, curl) gets this answer instead of a reset."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _is_write(scope: Scope) -> bool:
    path = scope["path"]
    return scope["method"] not in ("GET", "HEAD") and (
        path == "/documents" or path.startswith("/documents/"))


def _url_refusal(scope: Scope) -> JSONResponse | None:
    size = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    if size <= MAX_URL_BYTES:
        return None
    return _refusal(414, f"the URL is {size:,} bytes; the limit is {MAX_URL_BYTES:,} bytes"
                         " (send long queries with POST /search)")


def _size_refusal(content_length: str | None, limit: int) -> JSONResponse | None:
    if content_length is None or not content_length.isdigit() or int(content_length) <= limit:
        return None
    return _refusal(413, _too_large(limit))


def _too_large(limit: int) -> str:
    return (f"the request body is over the limit of {limit:,} bytes"
            + ("" if limit == MAX_WRITE_BODY_BYTES else
               f" ({MAX_QUERIES} queries of {MAX_QUERY_CHARS:,} characters fit)"))


def _host_name(header: str) -> str:
    """The name or address in a Host header (or an --allowed-host value): no port, no IPv6
    brackets, lower case, an address in its canonical form."""
    name = header.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        name = name.partition(":")[0]
    name = name.rstrip(".")
    with suppress(ValueError):
        return ipaddress.ip_address(name).compressed
    return name


def answered_hosts(host: str, extra: Iterable[str]) -> frozenset[str]:
    """Names a Host header may carry: localhost, the address served on, this machine's names
    and addresses (a wildcard address serves them all) and ``extra``."""
    names = {*LOCAL_HOSTS, *extra, *_machine_names()}
    if host not in WILDCARD_HOSTS:
        names.add(host)
    return frozenset(_host_name(name) for name in names)


def _machine_names() -> set[str]:
    """This machine's names and addresses, as far as the standard library finds them without
    new dependencies: its host name and FQDN, what they resolve to, and (on Linux) the address
    of every network interface."""
    names = {socket.gethostname(), socket.getfqdn()}
    for name in list(names):
        with suppress(OSError):
            names.update(str(info[4][0]) for info in socket.getaddrinfo(name, None))
    if sys.platform.startswith("linux"):
        names.update(_linux_interface_addresses())
    return names


def _linux_interface_addresses() -> set[str]:
    import fcntl

    found = set()
    with suppress(OSError):  # the kernel lists IPv6 addresses as 32 hex digits
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            found.add(str(ipaddress.IPv6Address(int(line.split()[0], 16))))
    get_address = 0x8915  # SIOCGIFADDR: an interface's IPv4 address (nothing is sent)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, interface in socket.if_nameindex():
            with suppress(OSError):
                answer = fcntl.ioctl(probe.fileno(), get_address,
                                     struct.pack("256s", interface.encode()[:15]))
                found.add(socket.inet_ntoa(answer[20:24]))
    return found


