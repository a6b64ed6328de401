"""Short-lived stream tokens: what a browser's EventSource sends in the URL instead of an API key (it cannot
send an Authorization header). A token is signed with the server's secret (HMAC-SHA256), names the key it was
issued to (name and fingerprint, so revoking or re-issuing the key ends it) and the one scope it grants, and
expires."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

PREFIX = "st1."


@dataclass(frozen=True)
class StreamGrant:
    name: str
    key_fingerprint: str
    scope: str
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class StreamTokens:
    """Issues and verifies tokens with one secret; every replica that verifies must share it."""

    def __init__(self, secret: bytes, *, ttl_s: int) -> None:
        if len(secret) < 16:
            raise ValueError("a stream token secret needs at least 16 bytes")
        self._secret = secret
        self.ttl_s = ttl_s

    @classmethod
    def with_random_secret(cls, *, ttl_s: int) -> StreamTokens:
        return cls(secrets.token_bytes(32), ttl_s=ttl_s)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, *, name: str, key_fingerprint: str, scope: str, now: float | None = None) -> tuple[str, datetime]:
        expires = int((time.time() if now is None else now) + self.ttl_s)
        claims = {"sub": name, "kid": key_fingerprint, "scope": scope, "exp": expires}
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{PREFIX}{payload}.{self._sign(payload)}", datetime.fromtimestamp(expires, UTC)

    def verify(self, token: str, scope: str, *, now: float | None = None) -> StreamGrant | None:
        """The grant of a token this server signed for `scope` that has not expired; None for anything else."""
        if not token.startswith(PREFIX):
            return None
        payload, _, signature = token.removeprefix(PREFIX).partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return None
        try:
            claims = json.loads(_unb64(payload))
            grant = StreamGrant(
                name=str(claims["sub"]),
                key_fingerprint=str(claims["kid"]),
                scope=str(claims["scope"]),
                expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if grant.scope != scope or grant.expires_at.timestamp() <= (time.time() if now is None else now):
            return None
        return grant
