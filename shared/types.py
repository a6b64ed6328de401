"""Value types every service accepts at its edges: the documented date range and the shape of a SKU.

Dates a client sends lie in 2000-01-01 … 2199-12-31. The range is wide enough for any real plan, and narrow
enough that every date arithmetic the services do (post-promotion dip weeks, a horizon of two years, spike
windows, ISO-week Mondays) stays far inside what `datetime.date` and PostgreSQL can hold.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints, ValidationInfo

MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2199, 12, 31)
DATE_RANGE = f"{MIN_DATE.isoformat()} … {MAX_DATE.isoformat()}"

_RANGE_SCHEMA: dict[str, Any] = {"formatMinimum": MIN_DATE.isoformat(), "formatMaximum": MAX_DATE.isoformat()}

PlanDate = Annotated[
    date,
    Field(ge=MIN_DATE, le=MAX_DATE, json_schema_extra=_RANGE_SCHEMA),
]
"""A date a client sends: outside 2000-01-01 … 2199-12-31 it fails validation naming the field (a 422)."""


def _datetime_in_range(value: datetime) -> datetime:
    # The date as written: converting an extreme timestamp to UTC first could itself overflow.
    if not MIN_DATE <= value.date() <= MAX_DATE:
        raise ValueError(f"must lie within {DATE_RANGE}")
    return value


PlanDateTime = Annotated[
    datetime,
    AfterValidator(_datetime_in_range),
    Field(json_schema_extra={"formatMinimum": "2000-01-01T00:00:00", "formatMaximum": "2199-12-31T23:59:59.999999"}),
]
"""A timestamp a client sends (e.g. a `since` filter), with its date in the same range as `PlanDate`."""

RECEIVED = "received"
"""Validation context key: set by the consumer boundary, so event dates are checked against the range there."""


def _received_date_in_range(value: date, info: ValidationInfo) -> date:
    # A service's own stored copies of events are read back without the context: a copy stored before the
    # range existed must stay readable (the domain's date arithmetic saturates instead of overflowing).
    if info.context and info.context.get(RECEIVED) and not MIN_DATE <= value <= MAX_DATE:
        raise ValueError(f"must lie within {DATE_RANGE}")
    return value


EventDate = Annotated[date, AfterValidator(_received_date_in_range), Field(json_schema_extra=_RANGE_SCHEMA)]
"""A client-originated date inside event data: a consumed event dated outside the range is invalid data."""

SKU_MAX_LENGTH = 100

Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=SKU_MAX_LENGTH, strip_whitespace=True, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
"""A SKU: 1-100 characters, no control characters (which JSON would escape to six bytes each)."""
