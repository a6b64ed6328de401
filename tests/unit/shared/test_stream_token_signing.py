"""Stream tokens sign what they grant and expire; CORS origins are read from one setting and checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings
from shared.stream_tokens import StreamTokens

NOW = 1_800_000_000.0


def test_a_token_grants_its_scope_to_its_key_until_it_expires() -> None:
    tokens = StreamTokens(b"k" * 32, ttl_s=300)
    token, expires_at = tokens.issue(name="crm", key_fingerprint="f" * 32, scope="alerts:read", now=NOW)
    assert expires_at.timestamp() == NOW + 300
    grant = tokens.verify(token, "alerts:read", now=NOW + 299)
    assert grant is not None and (grant.name, grant.key_fingerprint) == ("crm", "f" * 32)
    assert tokens.verify(token, "alerts:read", now=NOW + 300) is None  # expired
    assert tokens.verify(token, "webhooks:manage", now=NOW) is None  # another scope
    assert StreamTokens(b"x" * 32, ttl_s=300).verify(token, "alerts:read", now=NOW) is None  # another secret


@pytest.mark.parametrize("token", ["", "st1.", "st1..", "st1.e30.", "st1.!!!.???", "bearer st1.a.b"])
def test_malformed_tokens_are_refused_without_raising(token: str) -> None:
    assert StreamTokens(b"k" * 32, ttl_s=300).verify(token, "alerts:read", now=NOW) is None


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        StreamTokens(b"short", ttl_s=300)


def test_cors_origins_come_as_a_comma_list_or_json_and_must_be_origins(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().cors_origins == []
    monkeypatch.setenv("SALESOPS_CORS_ORIGINS", "https://crm.example.com, http://127.0.0.1:3000")
    assert Settings().cors_origins == ["https://crm.example.com", "http://127.0.0.1:3000"]
    monkeypatch.setenv("SALESOPS_CORS_ORIGINS", '["*"]')
    assert Settings().cors_origins == ["*"]
    for bad in ("https://crm.example.com/", "crm.example.com", "https://crm.example.com/app"):
        monkeypatch.setenv("SALESOPS_CORS_ORIGINS", bad)
        with pytest.raises(ValidationError, match="not an origin"):
            Settings()
