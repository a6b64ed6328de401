"""The webhook HTTP client: it connects only to addresses the SSRF guard checked for the attempt in progress.

Name resolution is taken away from the client: its network backend looks the host up in the checked target of
the current attempt (a context variable) and refuses any other host. The URL keeps the host name, so the `Host`
header, TLS SNI and certificate verification are those of the name, and pooled connections are kept per name.
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Iterator
from contextvars import ContextVar

import httpcore
import httpx

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
                return await self._network.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
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
