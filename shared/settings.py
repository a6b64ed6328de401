"""Runtime settings shared by every service, read from `SALESOPS_*` environment variables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


class Settings(BaseSettings):
    """What every service needs to run; each service may subclass it with its own knobs."""

    model_config = SettingsConfigDict(env_prefix="SALESOPS_", env_file=None, extra="ignore")
    # The relay's gathering time when `relay_gather_s` is unset: a class's own, so that it holds when shared
    # settings are upgraded to a service's (their values, unset ones included, are kept).
    relay_gather_default_s: ClassVar[float] = 0.0

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_enable_idempotence: bool = True
    kafka_request_timeout_ms: int = 10_000
    # How soon clients notice new partitions or a broker that lost its topics.
    kafka_metadata_max_age_ms: int = Field(default=30_000, ge=1000)
    # The largest record the producer sends (aiokafka's `max_request_size`). Events are measured against it when
    # they are written, so a request whose event would not fit is refused (413) instead of stored. Keep it at or
    # below the broker's `message.max.bytes` (Kafka's default, 1048588, fits the default here).
    kafka_max_request_bytes: int = Field(default=1_048_576, ge=1024)
    topic_partitions: int = Field(default=6, ge=1)
    # One copy suits a single broker; production clusters should set 3 (Strimzi's KafkaTopics already do).
    topic_replication_factor: int = Field(default=1, ge=1)
    api_keys_file: Path | None = None
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    # OpenTelemetry tracing (the `otel` extra): also on when OTEL_EXPORTER_OTLP_ENDPOINT is set; off by default.
    otel_enabled: bool = False

    # A pool of 20 and no overflow: an overflow connection is closed as soon as it is returned, so under a
    # sustained load past the pool every request paid a new connection (a server backend started, every statement
    # prepared again): at 100 complaints/s that was more than half of the returns service's CPU.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)

    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_interval_s: float = Field(default=0.5, gt=0)
    # A pass a commit wakes starts at least this long after the one before it started, so that under a stream of
    # commits one pass publishes what several wrote; a wake after a quiet spell is served at once (0: never waits).
    # Unset: the service's own default (`relay_gather_default_s`).
    relay_gather_s: float | None = Field(default=None, ge=0, le=1)
    # Published rows are purged from the outbox this long after they were written; on one machine this is also
    # how far back publishing again to an embedded broker that came back empty reaches.
    relay_retention_days: int = Field(default=7, ge=1)
    # A row the broker keeps refusing with a retriable error is parked after this many attempts (a row it refuses
    # for good, e.g. too large, is parked at once); an unreachable broker never counts as an attempt.
    relay_max_attempts: int = Field(default=10, ge=1)
    # The embedded broker keeps its log in memory: when the relay finds a broker whose cluster id differs from the
    # one it last published to, it publishes again, in order, every row still in the outbox (consumers skip what
    # they had already handled). Real Kafka keeps its log, so this stays off there; `salesops up` turns it on
    # when it runs the embedded broker.
    relay_republish_on_new_broker: bool = False

    consumer_batch_size: int = Field(default=200, ge=1)
    # The embedded broker completes a group join after half the session timeout; tests and one-machine
    # mode shorten it, real Kafka deployments keep the defaults.
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1000)
    consumer_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_backoff_initial_s: float = Field(default=0.2, gt=0)
    consumer_backoff_max_s: float = Field(default=10.0, gt=0)

    max_request_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    shutdown_grace_s: float = Field(default=10.0, gt=0)

    # Web pages on these origins may call the APIs from a browser (CORS): `https://crm.example.com`, a list
    # separated by commas (or a JSON list), `*` for any. None by default: browsers then refuse every
    # cross-origin call.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Signs stream tokens (`?token=` on SSE streams); every replica of a service must share it. Unset, each
    # process makes up its own, so a token works only on the replica that issued it.
    stream_token_secret: SecretStr | None = Field(default=None, min_length=16)
    stream_token_ttl_s: int = Field(default=300, ge=10, le=3600)

    @property
    def relay_gather(self) -> float:
        """The relay's gathering time in effect: `relay_gather_s` when set (0 included), else the service's own."""
        return self.relay_gather_default_s if self.relay_gather_s is None else self.relay_gather_s

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [o for o in text.split(",") if o.strip()]
        if isinstance(value, list):
            origins = [str(o).strip() for o in value]
            for origin in origins:
                if origin != "*" and not _ORIGIN.match(origin):
                    raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
            return origins
        return value
