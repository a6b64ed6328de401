"""The answer to an idempotent create: 201 with the resource's Location when it was created, 200 with the
stored resource for an identical retry (the same rule for every create endpoint)."""

from __future__ import annotations

from fastapi import Response, status


def created_or_existing(response: Response, *, created: bool, location: str | None = None) -> None:
    """Set the status (201 created, 200 existing) and, when the resource has its own URL, `Location`."""
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    if location is not None:
        response.headers["Location"] = location
