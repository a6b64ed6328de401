"""API-key authentication with scopes: `Authorization: Bearer <key>`, keys loaded from a JSON file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, ValidationError

from shared.errors import ProblemError
from shared.stream_tokens import StreamTokens


class Scope(StrEnum):
    PROMOTIONS_READ = "promotions:read"
    PROMOTIONS_WRITE = "promotions:write"
    VOLUMES_READ = "volumes:read"
    VOLUMES_WRITE = "volumes:write"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    RETURNS_READ = "returns:read"
    RETURNS_WRITE = "returns:write"
    ALERTS_READ = "alerts:read"
    # Acknowledge and resolve alerts.
    ALERTS_WRITE = "alerts:write"
    WEBHOOKS_MANAGE = "webhooks:manage"
    # With webhooks:manage, reaches every key's webhook endpoints, not only the caller's own.
    WEBHOOKS_ADMIN = "webhooks:admin"
    PLANNING_READ = "planning:read"
    PLANNING_WRITE = "planning:write"
    # Cost-to-serve: read the ledger and the whale curve; set the activity rates.
    COSTS_READ = "costs:read"
    COSTS_WRITE = "costs:write"


class ApiKey(BaseModel):
    name: str = Field(min_length=1)
    key: str = Field(min_length=16)
    scopes: list[Scope]
    revoked: bool = False


class ApiKeysFile(BaseModel):
    keys: list[ApiKey]


# The client roles `salesops up` generates keys for, and what each may do.
CLIENT_ROLES: dict[str, tuple[Scope, ...]] = {
    "marketing": (Scope.PROMOTIONS_READ, Scope.PROMOTIONS_WRITE),
    "warehouse": (Scope.VOLUMES_READ, Scope.VOLUMES_WRITE),
    "returns-desk": (Scope.RETURNS_READ, Scope.RETURNS_WRITE),
    "crm": (
        Scope.ALERTS_READ,
        Scope.ALERTS_WRITE,
        Scope.WEBHOOKS_MANAGE,
        Scope.PROMOTIONS_READ,
        Scope.ORDERS_READ,
        Scope.ORDERS_WRITE,
        Scope.PLANNING_READ,  # "can I promise this?" (POST /v1/promises/check) and the ATP behind the answer
        Scope.COSTS_READ,  # the sales director's view: which accounts and behaviours cost more than they earn
    ),
    "planner": (
        Scope.PLANNING_READ,
        Scope.PLANNING_WRITE,
        Scope.PROMOTIONS_READ,
        Scope.VOLUMES_READ,
        Scope.ORDERS_READ,
        Scope.RETURNS_READ,
        Scope.ALERTS_READ,
        Scope.ALERTS_WRITE,
        Scope.COSTS_READ,
    ),
    "admin": tuple(Scope),
}


def generate_keys_file(path: Path, roles: Iterable[str] = CLIENT_ROLES) -> ApiKeysFile:
    keys = ApiKeysFile(
        keys=[
            ApiKey(name=role, key=f"sk_{role}_{secrets.token_urlsafe(24)}", scopes=list(CLIENT_ROLES[role]))
            for role in roles
        ]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(keys.model_dump_json(indent=2))
    path.chmod(0o600)
    return keys


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def key_fingerprint(key: ApiKey) -> str:
    """Names one issue of a key without revealing it: a key re-issued under the same name has another one."""
    return hashlib.sha256(key.key.encode()).hexdigest()[:32]


class KeyStore:
    """Looks up keys by their SHA-256, re-reading the file when it changes (so a revocation takes effect)."""

    def __init__(self, path: Path | None, *, recheck_interval_s: float = 2.0) -> None:
        self._path = path
        self._recheck_interval_s = recheck_interval_s
        self._mtime: float | None = None
        self._checked_at = 0.0
        self._keys: dict[bytes, ApiKey] = {}
        self._load()

    def _load(self) -> None:
        if self._path is None:
            return
        mtime = self._path.stat().st_mtime
        if mtime == self._mtime:
            return
        try:
            parsed = ApiKeysFile.model_validate(json.loads(self._path.read_text()))
        except (ValidationError, json.JSONDecodeError) as exc:
            if self._mtime is None:
                raise ValueError(f"invalid API keys file {self._path}: {exc}") from exc
            return  # keep the last good keys while the file is being edited
        self._keys = {_digest(k.key): k for k in parsed.keys}
        self._mtime = mtime

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked_at > self._recheck_interval_s:
            self._checked_at = now
            with contextlib.suppress(OSError):
                self._load()

    def lookup(self, secret: str) -> ApiKey | None:
        self._refresh()
        found = self._keys.get(_digest(secret))
        if found is None or found.revoked:
            return None
        # Constant-time comparison of the secret itself guards against a digest collision shortcut.
        return found if secrets.compare_digest(found.key, secret) else None

    def current(self, name: str, fingerprint: str) -> ApiKey | None:
        """The key named `name` whose fingerprint is `fingerprint`, if it still exists unrevoked (the file is
        re-read when it changed, as for `lookup`)."""
        self._refresh()
        for key in self._keys.values():
            if key.name == name and not key.revoked and secrets.compare_digest(key_fingerprint(key), fingerprint):
                return key
        return None

    def permits(self, secret: str, scope: Scope) -> bool:
        """Whether the key still exists, unrevoked, with the scope: long-lived responses (streams) ask again
        while they run, so a revocation ends them too."""
        found = self.lookup(secret)
        return found is not None and scope in found.scopes


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _authenticate(request: Request) -> ApiKey:
    store: KeyStore = request.app.state.runtime.keys
    header = request.headers.get("authorization", "")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise _unauthorized("send an API key as 'Authorization: Bearer <key>'")
    key = store.lookup(secret.strip())
    if key is None:
        raise _unauthorized("the API key is unknown or revoked")
    return key


async def authenticate(request: Request) -> ApiKey:
    """The caller's key, whatever its scopes; 401 without a known, unrevoked one. Async, like every dependency
    here, so FastAPI runs it on the event loop rather than in its thread pool (the key lookup never blocks: the
    keys file is re-read only when its modification time changed, checked at most every few seconds)."""
    return _authenticate(request)


def _check_scope(request: Request, scope: Scope) -> ApiKey:
    key = _authenticate(request)
    if scope not in key.scopes:
        raise ProblemError(403, "Forbidden", f"the API key '{key.name}' lacks the scope '{scope.value}'")
    return key


def require(scope: Scope) -> Callable[..., Any]:
    """A dependency that admits only callers whose key carries `scope`."""

    async def check(request: Request) -> ApiKey:
        return _check_scope(request, scope)

    check.__name__ = f"require_{scope.name.lower()}"
    return check


class Identity(BaseModel):
    """Which key a caller signed in with and what it may do; never the secret itself."""

    name: str = Field(description="the key's name in the API keys file, e.g. `planner`")
    scopes: list[Scope]


def identity_router() -> APIRouter:
    """`GET /v1/whoami` on every service, so a client (the console) can tell a person which key is in use."""
    router = APIRouter(tags=["identity"])

    @router.get("/v1/whoami", response_model=Identity, summary="The name and scopes of the calling API key")
    async def whoami(key: Annotated[ApiKey, Depends(authenticate)]) -> Identity:
        return Identity(name=key.name, scopes=key.scopes)

    return router


def stream_tokens_of(request: Request) -> StreamTokens:
    """The app's stream token signer, from `STREAM_TOKEN_SECRET` (or a random secret of this process)."""
    tokens = getattr(request.app.state, "stream_tokens", None)
    if tokens is None:
        settings = request.app.state.settings
        secret = settings.stream_token_secret
        ttl_s = settings.stream_token_ttl_s
        tokens = (
            StreamTokens(secret.get_secret_value().encode(), ttl_s=ttl_s)
            if secret is not None
            else StreamTokens.with_random_secret(ttl_s=ttl_s)
        )
        request.app.state.stream_tokens = tokens
    assert isinstance(tokens, StreamTokens)
    return tokens


def issue_stream_token(request: Request, key: ApiKey, scope: Scope) -> tuple[str, Any]:
    """A stream token for `key`, granting `scope` on streams only; returns it with its expiry."""
    return stream_tokens_of(request).issue(name=key.name, key_fingerprint=key_fingerprint(key), scope=scope.value)


StreamToken = Annotated[
    str | None,
    Query(
        max_length=1000,
        description="a stream token (POST /v1/alerts/stream-tokens) instead of the Authorization header, "
        "for clients that cannot send headers such as a browser's EventSource",
    ),
]


def require_or_stream_token(scope: Scope) -> Callable[..., Any]:
    """A dependency for streams a browser opens: an API key with `scope` as for `require`, or, without an
    Authorization header, a stream token for `scope` in `?token=`. The token's key must still exist,
    unrevoked, with the scope."""

    async def check(request: Request, token: StreamToken = None) -> ApiKey:
        if token is None or "authorization" in request.headers:
            return _check_scope(request, scope)
        grant = stream_tokens_of(request).verify(token, scope.value)
        if grant is None:
            raise _unauthorized("the stream token is invalid or expired; ask for a new one")
        store: KeyStore = request.app.state.runtime.keys
        found = store.current(grant.name, grant.key_fingerprint)
        if found is None or scope not in found.scopes:
            raise _unauthorized("the API key this stream token was issued to is revoked or lost the scope")
        return found

    check.__name__ = f"require_{scope.name.lower()}_or_stream_token"
    return check
