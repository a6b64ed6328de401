"""The SSRF guard and the client that connects only to the addresses it checked, with resolvers and a
network backend the tests control (no network)."""

from __future__ import annotations

import asyncio
import ipaddress
import typing
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import httpcore
import pytest

from services.returns_service.settings import ReturnsSettings
from services.returns_service.webhooks.dispatcher import send
from services.returns_service.webhooks.pinning import webhook_client
from services.returns_service.webhooks.ssrf import Guard, TargetRefused, is_public

PUBLIC = "93.184.216.34"


def resolver(*answers: list[str]) -> tuple[Callable[[str, int], Awaitable[list[str]]], list[str]]:
    """Answers the given address lists in turn (the last one from then on); records the names asked."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return resolve, asked


@pytest.fixture(autouse=True)
def no_real_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the client ever bypass the network the test gives it, it fails instead of reaching out."""

    async def refuse(*args: typing.Any, **kwargs: typing.Any) -> typing.NoReturn:
        raise AssertionError("a real connection was attempted")

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", refuse)


def guard(*answers: list[str]) -> Guard:
    return Guard(allow_private=False, resolve=resolver(*answers)[0])


async def test_public_host_is_accepted() -> None:
    target = await guard([PUBLIC]).check("https://crm.example.com/hooks")
    assert (target.host, target.port, target.addresses) == ("crm.example.com", 443, (ipaddress.ip_address(PUBLIC),))


REFUSED_ADDRESSES = [
    "127.0.0.1",
    "10.0.0.7",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.1.1",  # shared address space (carrier-grade NAT)
    "169.254.169.254",  # cloud metadata
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "224.0.1.1",  # globally scoped multicast is still multicast
    "192.0.2.10",  # documentation
    "198.18.0.1",  # benchmarking
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fec0::1",  # deprecated site-local
    "ff0e::1",
    "2001:db8::1",
    "100::1",  # discard-only
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:127.0.0.1",
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::c0a8:101",  # NAT64 of 192.168.1.1
    "64:ff9b:1::808:808",  # local-use NAT64, whatever it embeds
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]


@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_non_public_addresses_in_every_form_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808", "::ffff:8.8.8.8"],
)
def test_public_addresses_in_every_form_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "addresses",
    [["127.0.0.1"], [PUBLIC, "192.168.1.1"], ["2002:7f00:1::1"], ["64:ff9b::a00:1"], ["fe80::1%eth0"]],
)
async def test_host_resolving_to_any_private_address_is_refused(addresses: list[str]) -> None:
    with pytest.raises(TargetRefused, match="non-public"):
        await guard(addresses).check("https://crm.example.com/hooks")


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://[::ffff:7f00:1]/", "http://[64:ff9b::7f00:1]:8080/"])
async def test_address_literals_are_checked_without_resolving(url: str) -> None:
    resolve, asked = resolver([PUBLIC])
    with pytest.raises(TargetRefused, match="non-public"):
        await Guard(allow_private=False, resolve=resolve).check(url)
    assert asked == []


async def test_unresolvable_host_is_refused() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(TargetRefused, match="does not resolve"):
        await Guard(allow_private=False, resolve=fail).check("https://nowhere.example/hooks")
    with pytest.raises(TargetRefused, match="does not resolve"):
        await guard([]).check("https://nowhere.example/hooks")


async def test_a_resolver_that_does_not_answer_is_refused_in_bounded_time() -> None:
    async def hang(host: str, port: int) -> list[str]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    with pytest.raises(TargetRefused, match="did not resolve within"):
        await Guard(allow_private=False, resolve=hang, resolve_timeout_s=0.05).check_registration(
            "https://slow.example/"
        )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "scheme"),
        ("ftp://example.com/x", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("//x/y", "scheme"),
        ("not a url", "scheme"),
        ("http:///path", "no host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://example.com\\@127.0.0.1/", "credentials"),
        ("http://example.com:99999/", "port"),
        ("http://example.com:0/", "port"),
    ],
)
async def test_bad_urls_are_refused_even_when_private_targets_are_allowed(url: str, reason: str) -> None:
    allowing = Guard(allow_private=True, resolve=resolver([PUBLIC])[0])
    with pytest.raises(TargetRefused, match=reason):
        await allowing.check_registration(url)


async def test_registration_in_one_machine_mode_does_not_need_the_name_to_resolve() -> None:
    resolve, asked = resolver(["127.0.0.1"])
    await Guard(allow_private=True, resolve=resolve).check_registration("http://crm.internal:9000/hooks")
    assert asked == []


class RecordingStream(httpcore.AsyncMockStream):
    def __init__(self, buffer: list[bytes], log: dict[str, list[typing.Any]]) -> None:
        super().__init__(buffer)
        self._log = log

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._log["sent"].append(buffer)

    async def start_tls(
        self, ssl_context: typing.Any, server_hostname: str | None = None, timeout: float | None = None
    ):  # type: ignore[no-untyped-def]
        self._log["sni"].append(server_hostname)
        return self


class RecordingNetwork(httpcore.AsyncMockBackend):
    """Stands in for the sockets: notes every address connected to and answers 204."""

    def __init__(self) -> None:
        super().__init__([b"HTTP/1.1 204 No Content\r\n", b"Content-Length: 0\r\n\r\n"])
        self.log: dict[str, list[typing.Any]] = {"connected": [], "sent": [], "sni": []}

    async def connect_tcp(self, host: str, port: int, *args: typing.Any, **kwargs: typing.Any) -> RecordingStream:
        self.log["connected"].append((host, port))
        return RecordingStream(list(self._buffer), self.log)


def delivery(url: str) -> SimpleNamespace:
    return SimpleNamespace(url=url, message_id="msg_1", secret="whsec_" + "QUJD" * 8, body="{}")


async def test_attempt_connects_to_the_address_checked_never_to_a_rebound_one() -> None:
    """The name answers a public address first and loopback next: the attempt resolves once, connects to the
    public address it checked, and speaks to it under the name (Host header, TLS SNI and certificate)."""
    resolve, asked = resolver([PUBLIC], ["127.0.0.1"])
    network = RecordingNetwork()
    async with webhook_client(4, network=network) as client:
        result = await send(
            client,
            delivery("https://crm.example.com/hooks"),
            ReturnsSettings(),
            Guard(allow_private=False, resolve=resolve),
        )
    assert result.status_code == 204 and result.ok, result
    assert asked == ["crm.example.com"]
    assert network.log["connected"] == [(PUBLIC, 443)]
    assert network.log["sni"] == ["crm.example.com"]
    request_head = b"".join(network.log["sent"]).split(b"\r\n\r\n", 1)[0].lower()
    assert request_head.startswith(b"post /hooks http/1.1") and b"\r\nhost: crm.example.com" in request_head


async def test_attempt_after_rebinding_to_loopback_is_refused_before_any_connection() -> None:
    resolve, _ = resolver(["127.0.0.1"])
    network = RecordingNetwork()
    async with webhook_client(4, network=network) as client:
        result = await send(
            client,
            delivery("https://crm.example.com/hooks"),
            ReturnsSettings(),
            Guard(allow_private=False, resolve=resolve),
        )
    assert result.status_code is None and not result.ok
    assert result.error is not None and result.error.startswith("refused:")
    assert network.log["connected"] == []


async def test_the_client_connects_nowhere_outside_a_checked_attempt() -> None:
    network = RecordingNetwork()
    async with webhook_client(4, network=network) as client:
        with pytest.raises(Exception, match="not checked by the SSRF guard"):
            await client.post("http://crm.example.com/hooks", content=b"{}")
    assert network.log["connected"] == []


async def test_each_checked_address_is_tried_in_turn() -> None:
    class FirstRefuses(RecordingNetwork):
        async def connect_tcp(self, host: str, port: int, *args: typing.Any, **kwargs: typing.Any) -> RecordingStream:
            if not self.log["connected"]:
                self.log["connected"].append((host, port))
                raise httpcore.ConnectError("connection refused")
            return await super().connect_tcp(host, port)

    network = FirstRefuses()
    resolve, _ = resolver(["2606:4700:4700::1111", PUBLIC])
    async with webhook_client(4, network=network) as client:
        result = await send(
            client,
            delivery("http://crm.example.com:8080/h"),
            ReturnsSettings(),
            Guard(allow_private=False, resolve=resolve),
        )
    assert result.ok
    assert network.log["connected"] == [("2606:4700:4700::1111", 8080), (PUBLIC, 8080)]


async def test_a_request_head_and_body_leave_in_one_write() -> None:
    """The attempt's connection holds what the client writes until it reads the answer: head and body go out
    together, whole, in one write."""
    resolve, _ = resolver([PUBLIC])
    network = RecordingNetwork()
    body = '{"type":"sales-alert.raised","data":{}}'
    row = SimpleNamespace(
        url="http://crm.example.com/hooks", message_id="msg_1", secret="whsec_" + "QUJD" * 8, body=body
    )
    async with webhook_client(4, network=network) as client:
        result = await send(client, row, ReturnsSettings(), Guard(allow_private=False, resolve=resolve))
    assert result.ok, result
    [sent] = network.log["sent"]
    head, sent_body = sent.split(b"\r\n\r\n", 1)
    assert head.lower().startswith(b"post /hooks http/1.1") and sent_body == body.encode()
