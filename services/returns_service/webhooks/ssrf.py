"""SSRF guard of webhook targets: which URLs the service calls and which addresses it may connect to.

The guard resolves a target's host once and checks every address; the HTTP client then connects only to those
checked addresses (see `pinning`), so a name that answers differently a moment later (DNS rebinding) changes
nothing."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
AddressPolicy = Callable[[IPAddress], bool]

# RFC 6052: the well-known NAT64 prefix carries the IPv4 address in its last 32 bits; the local-use prefix
# (RFC 8215) is translated by a gateway of the local network, whatever address it embeds.
NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")


class TargetRefused(Exception):
    """A webhook URL or address the service will not call."""


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _public_ipv4(address: ipaddress.IPv4Address) -> bool:
    # is_global leaves out private, shared (100.64/10), loopback, link-local, documentation, benchmarking and
    # reserved ranges, but counts most multicast as global.
    return address.is_global and not address.is_multicast and not address.is_unspecified


def is_public(address: IPAddress) -> bool:
    """Whether the address reaches the public internet, judging IPv4 addresses embedded in IPv6 ones by the
    IPv4 address itself: IPv4-mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:aabb:ccdd::) and
    Teredo (server and client)."""
    if isinstance(address, ipaddress.IPv4Address):
        return _public_ipv4(address)
    if address.ipv4_mapped is not None:
        return _public_ipv4(address.ipv4_mapped)
    if address in NAT64_LOCAL_USE:
        return False
    if address in NAT64_WELL_KNOWN:
        return _public_ipv4(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    if address.sixtofour is not None and not _public_ipv4(address.sixtofour):
        return False
    if address.teredo is not None and not all(_public_ipv4(a) for a in address.teredo):
        return False
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and not address.is_site_local
        and not address.is_unspecified
    )


def allow_any(_: IPAddress) -> bool:
    return True


@dataclass(frozen=True)
class WebhookUrl:
    """A URL as the HTTP client will read it: `host` is the name it connects to (IDNA-encoded)."""

    url: str
    scheme: str
    host: str
    port: int


@functools.lru_cache(maxsize=4096)
def parse_url(url: str) -> WebhookUrl:
    """http(s) only, no credentials; parsed by the HTTP client's own parser, so the guard and the client can
    never disagree about the host. Remembered per URL (every attempt parses its endpoint's; only the name's
    resolution must be done again each time)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise TargetRefused(f"the URL is invalid: {exc}") from exc
    if parsed.scheme not in {"http", "https"}:
        raise TargetRefused(f"the scheme must be http or https, not {parsed.scheme or 'missing'!r}")
    if not parsed.raw_host:
        raise TargetRefused("the URL has no host")
    if parsed.userinfo:
        raise TargetRefused("credentials in the URL are not accepted; authenticate with the signature")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise TargetRefused(f"the port {port} is invalid")
    return WebhookUrl(url=url, scheme=parsed.scheme, host=parsed.raw_host.decode("ascii"), port=port)


@dataclass(frozen=True)
class CheckedTarget:
    """The addresses a target's host resolved to when it was checked: the only ones connected to."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class Guard:
    """Checks webhook targets; `allow_private` (one-machine mode) lets any address through, but still
    connects only to the addresses resolved for the check."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolve: Resolver = system_resolve,
        is_allowed: AddressPolicy = is_public,
        resolve_timeout_s: float = 5.0,
    ) -> None:
        self.allow_private = allow_private
        self._resolve = resolve
        self._resolve_timeout_s = resolve_timeout_s
        self._is_allowed = allow_any if allow_private else is_allowed

    async def check_registration(self, url: str) -> None:
        """At registration a host that does not resolve yet is acceptable only where private targets are
        (one-machine mode): elsewhere every address must be known and public."""
        parsed = parse_url(url)
        if not self.allow_private:
            await self._checked(parsed)

    async def check(self, url: str) -> CheckedTarget:
        """Resolve and check the target of one attempt."""
        return await self._checked(parse_url(url))

    async def _checked(self, parsed: WebhookUrl) -> CheckedTarget:
        host = parsed.host
        literal = _literal(host)
        if literal is not None:
            addresses = [literal]
        else:
            try:
                async with asyncio.timeout(self._resolve_timeout_s):  # a registration request waits for it
                    resolved = await self._resolve(host, parsed.port)
            except TimeoutError as exc:  # before OSError, of which it is a subclass
                raise TargetRefused(f"the host {host!r} did not resolve within {self._resolve_timeout_s}s") from exc
            except OSError as exc:
                raise TargetRefused(f"the host {host!r} does not resolve") from exc
            addresses = []
            for raw in resolved:
                address = ipaddress.ip_address(raw.split("%", 1)[0])  # a link-local scope id is not part of it
                if address not in addresses:
                    addresses.append(address)
        if not addresses:
            raise TargetRefused(f"the host {host!r} does not resolve")
        for address in addresses:
            # Every address is checked: one private record among public ones is enough to refuse.
            if not self._is_allowed(address):
                raise TargetRefused(f"the host {host!r} resolves to a non-public address ({address})")
        return CheckedTarget(host=host, port=parsed.port, addresses=tuple(addresses))
