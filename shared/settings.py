"""Runtime settings shared by every service, read from `SALESOPS_*` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """What every service needs to run; each service may subclass it with its own knobs."""

    model_config = SettingsConfigDict(env_prefix="SALESOPS_", env_file=None, extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_enable_idempotence: bool = True
    kafka_request_timeout_ms: int = 10_000
    # How soon clients notice new partitions or a broker that lost its topics.
    kafka_metadata_max_age_ms: int = Field(default=30_000, ge=1000)
    topic_partitions: int = Field(default=6, ge=1)
    # One copy suits a single broker; production clusters should set 3 (Strimzi's KafkaTopics already do).
    topic_replication_factor: int = Field(default=1, ge=1)
    api_keys_file: Path | None = None
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")

    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)

    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_interval_s: float = Field(default=0.5, gt=0)
    relay_retention_days: int = Field(default=7, ge=1)

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
