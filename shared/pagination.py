"""Keyset pages: the key of a page's last row tells where the next page starts, either as a plain `after`
id or as an opaque cursor for keys of several columns."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TypeVar

from shared.errors import invalid

T = TypeVar("T")


def next_after(page: Sequence[T], limit: int, key: Callable[[T], str]) -> str | None:
    """The `after` of the next page: the last row's key when the page is full, None on the last page."""
    return key(page[-1]) if page and len(page) == limit else None


def encode_cursor(*key: Any) -> str:
    raw = json.dumps([k.isoformat() if isinstance(k, date) else k for k in key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def next_cursor(page: Sequence[T], limit: int, key: Callable[[T], tuple[Any, ...]]) -> str | None:
    """The cursor of the next page: the last row's key when the page is full, None on the last page."""
    return encode_cursor(*key(page[-1])) if page and len(page) == limit else None


def decode_cursor(cursor: str, *kinds: type) -> list[Any]:
    """The key a cursor carries, typed by `kinds`; a 422 naming `query.cursor` when it is not one of ours."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        return [date.fromisoformat(v) if kind is date else kind(v) for v, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError) as exc:
        raise invalid("query.cursor", "is not a cursor this API returned") from exc
