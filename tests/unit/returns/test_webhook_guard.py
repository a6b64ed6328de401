"""The SSRF guard and the retry schedule of webhook delivery, with a fake resolver (no network)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import httpx
import pytest

from services.returns_service.settings import ReturnsSettings
from services.returns_service.webhooks import TargetRefused, backoff_s, check_target, send


def resolver(*addresses: str) -> Callable[[str, int], Awaitable[list[str]]]:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


async def test_public_host_is_accepted() -> None:
    await check_target("https://crm.example.com/hooks", allow_private=False, resolve=resolver("93.184.216.34"))


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("10.0.0.7",),
        ("93.184.216.34", "192.168.1.1"),  # one private record is enough to refuse (rebinding)
        ("fe80::1",),
        ("::ffff:10.0.0.1",),
        ("fc00::1",),
        ("239.1.1.1",),
        ("100.64.1.1",),
    ],
)
async def test_host_resolving_to_any_private_address_is_refused(addresses: tuple[str, ...]) -> None:
    with pytest.raises(TargetRefused, match="non-public"):
        await check_target("https://crm.example.com/hooks", allow_private=False, resolve=resolver(*addresses))


async def test_unresolvable_host_is_refused() -> None:
    async def fail(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    with pytest.raises(TargetRefused, match="does not resolve"):
        await check_target("https://nowhere.example/hooks", allow_private=False, resolve=fail)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "javascript:alert(1)", "//x/y"])
async def test_non_http_schemes_are_refused_even_when_private_targets_are_allowed(url: str) -> None:
    with pytest.raises(TargetRefused, match="scheme"):
        await check_target(url, allow_private=True, resolve=resolver("93.184.216.34"))


async def test_delivery_rechecks_the_target_and_never_calls_a_rebound_host() -> None:
    def refuse_all(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the guard must stop the request before it is sent")

    row = SimpleNamespace(
        url="https://crm.example.com/hooks", message_id="msg_1", secret="whsec_" + "QUJD" * 8, body="{}"
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse_all)) as client:
        result = await send(client, row, ReturnsSettings(), resolve=resolver("127.0.0.1"))  # type: ignore[arg-type]
    assert result.status_code is None
    assert result.error is not None and result.error.startswith("refused:")
    assert not result.ok


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    settings = ReturnsSettings(webhook_backoff_initial_s=1, webhook_backoff_max_s=60)
    for attempts, base in [(1, 1), (2, 2), (3, 4), (5, 16), (10, 60)]:
        delay = backoff_s(settings, attempts)
        assert base * 0.8 <= delay <= base * 1.2
