"""The webhook HTTP client: it connects only to addresses the SSRF guard checked for the attempt in progress.

Name resolution is taken away from the client: its network backend looks the host up in the checked target of
the current attempt (a context variable) and refuses any other host. The URL keeps the host name, so the `Host`
header, TLS SNI and certificate verification are those of the name, and pooled connections are kept per name.
"""

from __future__ import annotations

import contextlib
import ssl
import typing
from collections.abc import Iterator
from contextvars import ContextVar

import httpcore
import httpx
from httpcore._utils import is_socket_readable

from services.returns_service.webhooks.ssrf import CheckedTarget

_checked: ContextVar[CheckedTarget | None] = ContextVar("webhook_checked_target", default=None)


@contextlib.contextmanager
def connecting_to(target: CheckedTarget) -> Iterator[None]:
    """Requests made inside connect to `target`'s checked addresses (a connection already open to one of
    them may be reused)."""
    token = _checked.set(target)
    try:
        yield
    finally:
        _checked.reset(token)


class CorkedStream(httpcore.AsyncNetworkStream):
    """A connection that holds what the client writes until it reads: a request's head and body then leave in one
    write (one segment on the wire, one system call) instead of one each. An HTTP/1.1 client always reads the
    answer after writing its request, so nothing waits longer than it would have; a large body is written out as
    soon as it passes `FLUSH_AT`."""

    FLUSH_AT = 64 * 1024

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._write_timeout: float | None = None
        self._socket: typing.Any = stream.get_extra_info("socket")

    async def _flush(self) -> None:
        if self._held:
            buffer = b"".join(self._held)
            self._held.clear()
            self._held_bytes = 0
            await self._stream.write(buffer, self._write_timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._held.append(buffer)
        self._held_bytes += len(buffer)
        self._write_timeout = timeout
        if self._held_bytes >= self.FLUSH_AT:
            await self._flush()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush()
        return await self._stream.read(max_bytes, timeout)

    async def aclose(self) -> None:
        self._held.clear()
        self._held_bytes = 0
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        await self._flush()
        return CorkedStream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        # The pool asks every idle connection whether it is readable before each request (a closed one is): the
        # raw socket, looked up once, answers without the stream's attribute lookups.
        if info == "is_readable" and self._socket is not None:
            return is_socket_readable(self._socket)
        return self._stream.get_extra_info(info)


class CheckedAddressBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections to the checked addresses of the current target, trying them in order, through
    `network` (the real sockets unless a test gives its own)."""

    def __init__(self, network: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._network = network if network is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        target = _checked.get()
        if target is None or target.host != host or target.port != port:
            raise httpcore.ConnectError(f"{host}:{port} was not checked by the SSRF guard; not connecting")
        failure: Exception | None = None
        for address in target.addresses:
            try:
                stream = await self._network.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
            else:
                return CorkedStream(stream)
        assert failure is not None  # a checked target has at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not sent over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class CheckedAddressTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request and error mapping) over a pool that uses `CheckedAddressBackend`.

    httpx offers no parameter for the network backend, so the pool it built is replaced; the webhook tests
    (tests/unit/returns/test_webhook_guard.py) fail if a new httpx stops sending through it."""

    def __init__(self, *, limits: httpx.Limits, network: httpcore.AsyncNetworkBackend | None = None) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=CheckedAddressBackend(network),
        )


def webhook_client(max_connections: int, *, network: httpcore.AsyncNetworkBackend | None = None) -> httpx.AsyncClient:
    """No redirects (a redirect could lead anywhere), no proxies from the environment, and a pool as large as
    the dispatcher's concurrency so that no attempt queues for a connection behind another endpoint's."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    transport = CheckedAddressTransport(limits=limits, network=network)
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
