"""Promotion rules that need no framework: what makes a promotion consistent, and its lifecycle."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any


class PromotionStatus(StrEnum):
    PLANNED = "planned"
    AT_RISK = "at_risk"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RuleViolation:
    field: str
    message: str


def check_promotion(
    *, starts_on: date, ends_on: date, item_skus: Sequence[str], cannibalized_skus: Sequence[str]
) -> list[RuleViolation]:
    """The cross-field rules a schema cannot express. Empty when the promotion is consistent."""
    violations: list[RuleViolation] = []
    if ends_on < starts_on:
        violations.append(RuleViolation("ends_on", f"must be on or after starts_on ({starts_on.isoformat()})"))
    seen: set[str] = set()
    for index, sku in enumerate(item_skus):
        if sku in seen:
            violations.append(RuleViolation(f"items.{index}.sku", f"SKU {sku!r} appears more than once"))
        seen.add(sku)
    seen_cannibalized: set[str] = set()
    for index, sku in enumerate(cannibalized_skus):
        if sku in seen:
            violations.append(
                RuleViolation(f"cannibalized.{index}.sku", f"SKU {sku!r} is promoted by this promotion")
            )
        elif sku in seen_cannibalized:
            violations.append(RuleViolation(f"cannibalized.{index}.sku", f"SKU {sku!r} appears more than once"))
        seen_cannibalized.add(sku)
    return violations


def fingerprint(body: Mapping[str, Any]) -> str:
    """A stable digest of a request body, to tell an identical retry from a different request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
