"""Benchmark of `POST /v1/order-volumes`: 10,000-line batches through the app in-process against a real
embedded PostgreSQL and broker, compared with a raw asyncpg COPY of the same rows in the same run.

    python bench/order_volumes.py [--batches 5] [--skus 500]

Each batch is a fresh slice of days (new rows), then the same batches are re-sent as corrections that
change every line, then re-sent unchanged (idempotent: nothing to write, nothing to publish).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from salesops.infra import EmbeddedBroker, EmbeddedPostgres, free_port
from services.fulfillment_service.app import build_app
from shared import migrations
from shared.auth import generate_keys_file
from shared.events import ALL_TOPICS
from shared.kafka import ensure_topics
from shared.settings import Settings

LINES = 10_000
START = date(2026, 1, 1)


def batch(index: int, skus: int, bump: int = 0) -> dict[str, Any]:
    days = LINES // skus
    return {
        "warehouse_id": "DC-BENCH",
        "lines": [
            {
                "sku": f"SKU-{s:05d}",
                "day": (START + timedelta(days=index * days + d)).isoformat(),
                "units_ordered": 100 + (s + d) % 7 + bump,
                "units_shipped": 95 + bump,
                "units_backordered": 5,
            }
            for s in range(skus)
            for d in range(days)
        ],
    }


async def timed_posts(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], headers: dict[str, str]
) -> float:
    started = time.perf_counter()
    for body in bodies:
        response = await client.post("/v1/order-volumes", json=body, headers=headers)
        response.raise_for_status()
    return time.perf_counter() - started


async def copy_baseline(dsn: str, bodies: list[dict[str, Any]]) -> tuple[float, float]:
    """The same rows written with COPY and with executemany into a scratch table: the raw floor."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TEMP TABLE raw_volumes (warehouse_id text, sku text, day date, units_ordered int,"
            " units_shipped int, units_backordered int, PRIMARY KEY (warehouse_id, sku, day))"
        )
        rows = [
            (
                b["warehouse_id"],
                ln["sku"],
                date.fromisoformat(ln["day"]),
                ln["units_ordered"],
                ln["units_shipped"],
                ln["units_backordered"],
            )
            for b in bodies
            for ln in b["lines"]
        ]
        started = time.perf_counter()
        for i in range(0, len(rows), LINES):
            await conn.copy_records_to_table("raw_volumes", records=rows[i : i + LINES])
        copy_s = time.perf_counter() - started
        await conn.execute("TRUNCATE raw_volumes")
        started = time.perf_counter()
        for i in range(0, len(rows), LINES):
            await conn.executemany(
                "INSERT INTO raw_volumes VALUES ($1, $2, $3, $4, $5, $6)", rows[i : i + LINES]
            )
        return copy_s, time.perf_counter() - started
    finally:
        await conn.close()


async def run(batches: int, skus: int, workdir: Path) -> None:
    postgres = EmbeddedPostgres(workdir / "pg")
    url = postgres.start()
    broker = EmbeddedBroker(free_port(), log_path=workdir / "broker.log")
    broker.start()
    try:
        await asyncio.to_thread(migrations.upgrade, "fulfillment", url)
        await ensure_topics(broker.bootstrap_servers, ALL_TOPICS, partitions=3)
        keys = generate_keys_file(workdir / "keys.json", roles=["warehouse"])
        settings = Settings(
            database_url=url,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            kafka_enable_idempotence=False,
            api_keys_file=workdir / "keys.json",
            log_level="WARNING",
            log_format="console",
        )
        headers = {"Authorization": f"Bearer {keys.keys[0].key}"}
        bodies = [batch(i, skus) for i in range(batches)]
        app = build_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=300) as client:
                total = batches * LINES
                results = {
                    "new rows": await timed_posts(client, bodies, headers),
                    "corrections": await timed_posts(
                        client, [batch(i, skus, bump=3) for i in range(batches)], headers
                    ),
                    "identical re-sends": await timed_posts(
                        client, [batch(i, skus, bump=3) for i in range(batches)], headers
                    ),
                }
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        copy_s, executemany_s = await copy_baseline(dsn, bodies)
        print(f"{batches} batches x {LINES:,} lines, {skus} SKUs ({LINES // skus} days each), spike rule on")
        for name, seconds in results.items():
            print(f"  POST /v1/order-volumes, {name:<20} {total / seconds:>10,.0f} lines/s ({seconds:.2f}s)")
        print(f"  raw asyncpg COPY (no upsert, no events)   {total / copy_s:>10,.0f} lines/s ({copy_s:.2f}s)")
        rate = total / executemany_s
        print(f"  raw asyncpg executemany INSERT            {rate:>10,.0f} lines/s ({executemany_s:.2f}s)")
    finally:
        broker.stop()
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--skus", type=int, default=500, help="SKUs per batch (lines / SKUs = days per SKU)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="salesops-bench-") as workdir:
        asyncio.run(run(args.batches, args.skus, Path(workdir)))


if __name__ == "__main__":
    main()
