"""Settings of the returns service: alert thresholds, the clock, webhook delivery and the live stream."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import ClassVar

from pydantic import Field

from services.returns_service.costing import MarketMappingRule, UnprofitableRule
from services.returns_service.domain import ReturnSurgeRule
from services.returns_service.domain.delivery import DeliveryPolicy
from shared.settings import Settings
from shared.types import PlanDate


class ReturnsSettings(Settings):
    """`SALESOPS_*` environment variables of the returns service (on top of the shared ones)."""

    # Every request that creates a record wakes the relay: under a stream of them, one pass publishes the events of
    # several (the webhooks do not wait for the relay; they are delivered from the database).
    relay_gather_default_s: ClassVar[float] = 0.1

    return_surge_window_days: int = Field(default=14, ge=1, le=365)
    return_surge_rate_threshold: float = Field(default=0.05, ge=0, le=1)
    return_surge_min_returns: int = Field(default=5, ge=1)
    # Pins "today" (ISO date) so tests and replays evaluate the trailing window deterministically.
    clock_today: PlanDate | None = None

    webhook_allow_private_targets: bool = False
    # The whole attempt (resolution, connection, request, response head) must end within it.
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_backoff_initial_s: float = Field(default=5.0, gt=0)
    webhook_backoff_max_s: float = Field(default=3600.0, gt=0)
    webhook_max_attempts: int = Field(default=15, ge=1)
    webhook_disable_after_failures: int = Field(default=50, ge=1)
    webhook_disable_after_s: float = Field(default=3 * 24 * 3600.0, ge=0)
    webhook_poll_interval_s: float = Field(default=1.0, gt=0)
    webhook_batch_size: int = Field(default=50, ge=1, le=1000)
    # A claim a committed change wakes comes at least this long after the claim before it: a change after a quiet
    # spell is claimed at once, a stream of them a few at a time.
    webhook_claim_gather_s: float = Field(default=0.02, ge=0, le=1)
    # Attempts in flight in one replica, all endpoints together, and to one endpoint while it answers.
    webhook_concurrency: int = Field(default=200, ge=1, le=1000)
    webhook_endpoint_concurrency: int = Field(default=16, ge=1, le=100)

    sse_poll_interval_s: float = Field(default=1.0, gt=0)
    sse_heartbeat_s: float = Field(default=15.0, gt=0)
    sse_max_connection_s: float = Field(default=300.0, gt=0)
    sse_batch_size: int = Field(default=200, ge=1, le=5000)
    sse_retry_ms: int = Field(default=2000, ge=0)

    # Cost-to-serve: `account-unprofitable` over a trailing window of months, and market mapping's rule.
    cost_unprofitable_window_months: int = Field(default=3, ge=1, le=36)
    cost_unprofitable_min_orders: int = Field(default=1, ge=0)
    cost_unprofitable_min_shipments: int = Field(default=1, ge=0)
    cost_mapping_window_months: int = Field(default=6, ge=1, le=36)
    cost_mapping_min_orders: int = Field(default=3, ge=1)
    cost_mapping_strategic_min_revenue_share: float = Field(default=0.10, ge=0, le=1)
    cost_mapping_strategic_max_cost_to_serve_ratio: float = Field(default=0.10, ge=0)
    cost_mapping_integrated_min_regularity: float = Field(default=0.8, ge=0, le=1)
    cost_mapping_integrated_max_cost_to_serve_ratio: float = Field(default=0.15, ge=0)
    cost_mapping_emerging_max_cost_to_serve_ratio: float = Field(default=0.25, ge=0)
    cost_mapping_max_return_rate: float = Field(default=0.05, ge=0)
    cost_mapping_max_complaint_rate: float = Field(default=0.10, ge=0)
    # The refresh recounts accounts a new day left behind and re-evaluates them after a rate change.
    cost_refresh_interval_s: float = Field(default=300.0, gt=0)
    cost_refresh_batch_size: int = Field(default=100, ge=1, le=10_000)
    # The recount of accounts a return or complaint marked: how long it gathers marks after being woken (so a
    # burst of one account's returns is counted once, and the accounts of a burst share transactions; the ledger
    # is monthly, a second behind is no one's loss), accounts per round, how often it looks for marks left by
    # another replica or before a restart, and how long a replica's claim on a marked account lasts.
    cost_recount_delay_s: float = Field(default=1.0, ge=0, le=60)
    cost_recount_batch_size: int = Field(default=50, ge=1, le=10_000)
    cost_recount_interval_s: float = Field(default=5.0, gt=0)
    cost_recount_lease_s: float = Field(default=60.0, gt=0)

    def surge_rule(self) -> ReturnSurgeRule:
        return ReturnSurgeRule(
            window_days=self.return_surge_window_days,
            rate_threshold=self.return_surge_rate_threshold,
            min_returns=self.return_surge_min_returns,
        )

    def unprofitable_rule(self) -> UnprofitableRule:
        return UnprofitableRule(
            window_months=self.cost_unprofitable_window_months,
            min_orders=self.cost_unprofitable_min_orders,
            min_shipments=self.cost_unprofitable_min_shipments,
        )

    def mapping_rule(self) -> MarketMappingRule:
        return MarketMappingRule(
            window_months=self.cost_mapping_window_months,
            min_orders=self.cost_mapping_min_orders,
            strategic_min_revenue_share=self.cost_mapping_strategic_min_revenue_share,
            strategic_max_cost_to_serve_ratio=self.cost_mapping_strategic_max_cost_to_serve_ratio,
            integrated_min_regularity=self.cost_mapping_integrated_min_regularity,
            integrated_max_cost_to_serve_ratio=self.cost_mapping_integrated_max_cost_to_serve_ratio,
            emerging_max_cost_to_serve_ratio=self.cost_mapping_emerging_max_cost_to_serve_ratio,
            max_return_rate=self.cost_mapping_max_return_rate,
            max_complaint_rate=self.cost_mapping_max_complaint_rate,
        )

    def delivery_policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            backoff_initial_s=self.webhook_backoff_initial_s,
            backoff_max_s=self.webhook_backoff_max_s,
            max_attempts=self.webhook_max_attempts,
            disable_after_failures=self.webhook_disable_after_failures,
            disable_after_s=self.webhook_disable_after_s,
            endpoint_concurrency=self.webhook_endpoint_concurrency,
        )

    def today(self) -> date:
        return self.clock_today or datetime.now(UTC).date()
