"""Dates from the whole calendar through every endpoint that takes one and every consumer that reads one, on
the real database and broker: out of 2000-01-01 … 2199-12-31 a 422 naming the field (or, for a consumed event,
a dead letter naming it); inside, an answer that is then processed by every consumer without a dead letter."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import strategies as st

from shared.events import (
    CloudEvent,
    EventData,
    EventType,
    LaunchData,
    OrderSpikeData,
    OrderVolumeReportData,
    OrderVolumeReportedData,
    PromotionData,
    ReturnData,
    new_event,
    topic_of,
)
from shared.settings import Settings
from tests.date_bounds import (
    DATES,
    EDGES,
    DeadLetters,
    assert_answer,
    await_processed,
    check_property,
    consumers_by_type,
    four_services,
    in_range,
    outbox_events,
)
from tests.support import bearer, eventually

pytestmark = pytest.mark.timeout(900)

EXAMPLES = 12
PAIRS = st.tuples(DATES, DATES)
PAIR_EDGES = [(a, b) for a, b in itertools.product(EDGES, EDGES) if a <= b][::3]
numbers = itertools.count(1)


def out_of_range(**days: date) -> set[str]:
    return {name for name, day in days.items() if not in_range(day)}


async def test_every_endpoint_taking_a_date_answers_422_naming_it_or_accepts_and_processes_it(
    settings: Settings, api_keys: dict[str, Any], db: Any, broker: Any
) -> None:
    admin = bearer(api_keys["admin"])
    today = datetime.now(UTC).date()
    dead = DeadLetters(broker.bootstrap_servers)
    async with four_services(settings) as svc:
        dead.start()
        base = {"promotion_id": "BASE", "name": "base", "starts_on": "2026-12-01", "ends_on": "2026-12-07"}
        created = await svc["promotion"].post(
            "/v1/promotions", json={**base, "items": [{"sku": "DATES-1", "uplift_pct": 20}]}, headers=admin
        )
        assert created.status_code == 201, created.text
        item = {"name": "dated", "on_hand": 0, "safety_stock": 0, "baseline_weekly_demand": 50}
        assert (await svc["planning"].put("/v1/items/DATES-1", json=item, headers=admin)).status_code == 201

        async def promotion_write(pair: tuple[date, date]) -> None:
            starts, ends = pair
            n = next(numbers)
            body = {
                "promotion_id": f"D-{n}",
                "name": "dated",
                "starts_on": starts.isoformat(),
                "ends_on": ends.isoformat(),
                "items": [{"sku": "DATES-1", "uplift_pct": 50}],
                "post_promo_dip_pct": 30,
                "post_promo_dip_weeks": 52,
                "cannibalized": [{"sku": f"DATES-C{n}", "pct": 10}],
            }
            refused = out_of_range(starts_on=starts, ends_on=ends)
            ok = not refused and starts <= ends
            response = await svc["promotion"].post("/v1/promotions", json=body, headers=admin)
            assert_answer(response, refused=refused, accepted=ok, may_name={"ends_on"})
            dates = {"starts_on": starts.isoformat(), "ends_on": ends.isoformat()}
            response = await svc["promotion"].patch("/v1/promotions/BASE", json=dates, headers=admin)
            assert_answer(response, refused=refused, accepted=ok, may_name={"ends_on"})
            scenario = {"promotions": [{**body, "promotion_id": "WHAT-IF"}]}
            response = await svc["planning"].post("/v1/scenarios", json=scenario, headers=admin)
            refused_there = {f"promotions.0.{name}" for name in refused}
            assert_answer(response, refused=refused_there, accepted=ok, may_name={"promotions.0.ends_on"})

        async def one_date(day: date) -> None:
            n = next(numbers)
            refused = not in_range(day)
            iso = day.isoformat()
            launch = {"launch_id": f"L-{n}", "sku": f"NEW-{n}", "launch_on": iso, "reference_sku": "DATES-1"}
            response = await svc["promotion"].post("/v1/launches", json=launch, headers=admin)
            assert_answer(response, refused={"launch_on"} if refused else set(), accepted=True, may_name=set())
            query = {"active_on": iso, "since": iso, "until": iso}
            response = await svc["promotion"].get("/v1/promotions", params=query, headers=admin)
            named = {f"query.{name}" for name in query} if refused else set()
            assert_answer(response, refused=named, accepted=True, may_name=set())

            line = {"sku": f"V-{n}", "day": iso, "units_ordered": 5, "units_shipped": 5, "units_backordered": 0}
            report = {"warehouse_id": "DC-DATES", "lines": [line]}
            response = await svc["fulfillment"].post("/v1/order-volumes", json=report, headers=admin)
            assert_answer(response, refused={"lines.0.day"} if refused else set(), accepted=True, may_name=set())
            for path in ("/v1/order-volumes", "/v1/spikes"):
                response = await svc["fulfillment"].get(path, params={"since": iso, "until": iso}, headers=admin)
                named = {"query.since", "query.until"} if refused else set()
                assert_answer(response, refused=named, accepted=True, may_name=set())

            not_ahead = (day - today).days <= 0
            returned = {
                "return_id": f"R-{n}",
                "sku": "DATES-1",
                "quantity": 1,
                "account_id": "ACC-1",
                "reason": "defective",
                "condition": "resellable",
                "returned_on": iso,
            }
            response = await svc["returns"].post("/v1/returns", json=returned, headers=admin)
            named = {"returned_on"} if refused else set()
            assert_answer(response, refused=named, accepted=not_ahead, may_name={"returned_on"})
            complaint = {
                "complaint_id": f"C-{n}",
                "account_id": "ACC-1",
                "category": "quality",
                "severity": "low",
                "description": "late",
                "received_on": iso,
            }
            response = await svc["returns"].post("/v1/complaints", json=complaint, headers=admin)
            named = {"received_on"} if refused else set()
            assert_answer(response, refused=named, accepted=not_ahead, may_name={"received_on"})
            response = await svc["returns"].get("/v1/returns", params={"since": iso}, headers=admin)
            assert_answer(response, refused={"query.since"} if refused else set(), accepted=True, may_name=set())
            stamp = f"{iso}T23:30:00-11:00"
            response = await svc["returns"].get("/v1/alerts", params={"since": stamp}, headers=admin)
            assert_answer(response, refused={"query.since"} if refused else set(), accepted=True, may_name=set())

            response = await svc["planning"].get(f"/v1/mps/DATES-1/weeks/{iso}", headers=admin)
            named = {"path.week_start"} if refused else set()
            monday = day.weekday() == 0
            assert_answer(response, refused=named, accepted=monday, may_name={"path.week_start"})

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(check_property, loop, PAIRS, promotion_write, edges=PAIR_EDGES, examples=EXAMPLES)
        await asyncio.to_thread(check_property, loop, DATES, one_date, edges=EDGES, examples=EXAMPLES)

        # Whatever was accepted reaches every consumer, and what they publish in turn reaches theirs.
        consumers = consumers_by_type()
        await await_processed(db, dead, consumers, await outbox_events(db))
        await await_processed(db, dead, consumers, await outbox_events(db))
        await dead.stop()
        assert dead.by_event == {}


def promotion(starts: date, ends: date, n: int) -> PromotionData:
    return PromotionData.model_validate(
        {
            "promotion_id": f"EV-{n}",
            "name": "from the topic",
            "starts_on": starts.isoformat(),
            "ends_on": ends.isoformat(),
            "items": [{"sku": "EV-1", "uplift_pct": 40}],
            "post_promo_dip_pct": 25,
            "post_promo_dip_weeks": 52,
        }
    )


def events_for(day: date, later: date, n: int) -> list[tuple[EventType, EventData, dict[str, date]]]:
    """One event of every consumed type carrying `day` (a promotion: `day` to `later`), with its date fields."""
    first, last = min(day, later), max(day, later)
    iso = day.isoformat()
    totals = {"units_ordered": 5, "units_shipped": 5, "units_backordered": 0}
    returned = {
        "return_id": f"EVR-{n}",
        "sku": "EV-1",
        "quantity": 2,
        "account_id": "ACC-1",
        "reason": "defective",
        "condition": "resellable",
        "returned_on": iso,
        "resolution": "replacement",
    }
    launch = {"launch_id": f"EVL-{n}", "sku": f"EVN-{n}", "launch_on": iso, "reference_sku": "EV-1"}
    report = {"warehouse_id": "DC-EV", "lines": [{"sku": f"EVV-{n}", "day": iso, **totals}]}
    return [
        (EventType.PROMOTION_PLANNED, promotion(first, last, n), {"data.starts_on": first, "data.ends_on": last}),
        (EventType.LAUNCH_PLANNED, LaunchData.model_validate(launch), {"data.launch_on": day}),
        (EventType.ORDER_VOLUME_REPORT, OrderVolumeReportData.model_validate(report), {"data.lines.0.day": day}),
        (
            EventType.ORDER_VOLUME_REPORTED,
            OrderVolumeReportedData.model_validate({"sku": "EV-1", "days": [{"day": iso, **totals}]}),
            {"data.days.0.day": day},
        ),
        (
            EventType.ORDER_SPIKE_DETECTED,
            OrderSpikeData.model_validate({"sku": "EV-1", "day": iso, "units": 900, "baseline": 10}),
            {"data.day": day},
        ),
        (EventType.RETURN_RECORDED, ReturnData.model_validate(returned), {"data.returned_on": day}),
    ]


async def test_every_consumer_reading_a_date_dead_letters_it_out_of_range_or_processes_it(
    settings: Settings, api_keys: dict[str, Any], db: Any, broker: Any
) -> None:
    admin = bearer(api_keys["admin"])
    consumers = consumers_by_type()
    dead = DeadLetters(broker.bootstrap_servers)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    async with four_services(settings) as svc:
        item = {"name": "evented", "on_hand": 0, "safety_stock": 0, "baseline_weekly_demand": 50}
        assert (await svc["planning"].put("/v1/items/EV-1", json=item, headers=admin)).status_code == 201
        dead.start()
        await producer.start()
        try:

            async def through_consumers(pair: tuple[date, date]) -> None:
                n = next(numbers)
                sent: list[tuple[CloudEvent, set[str]]] = []
                for event_type, data, dated in events_for(*pair, n):
                    event = new_event(event_type, source="test/dates", subject=str(n), data=data)
                    await producer.send_and_wait(topic_of(event_type).value, event.to_json(), key=b"EV-1")
                    sent.append((event, {field for field, day in dated.items() if not in_range(day)}))
                for event, refused in sent:
                    handlers = consumers.get(event.type, [])
                    assert handlers, event.type
                    if refused:
                        await _await_dead_letters(dead, event, handlers, refused)
                    else:
                        await await_processed(db, dead, consumers, [(event.id, event.type)])

            loop = asyncio.get_running_loop()
            edges = [(a, a) for a in EDGES] + [(date(2026, 11, 27), date.max), (date.min, date(2026, 11, 27))]
            await asyncio.to_thread(check_property, loop, PAIRS, through_consumers, edges=edges, examples=EXAMPLES)
        finally:
            await producer.stop()
            await dead.stop()


async def _await_dead_letters(dead: DeadLetters, event: CloudEvent, handlers: list[Any], fields: set[str]) -> None:
    names = {c.name for c in handlers}

    async def all_dead() -> bool:
        entries = dead.by_event.get(event.id, [])
        return names <= {consumer for consumer, _, _ in entries}

    await eventually(all_dead, timeout=60, message=f"{event.type} with an out-of-range date was not dead-lettered")
    for consumer, reason, detail in dead.by_event[event.id]:
        assert reason == "invalid-data", (consumer, reason, detail)
        assert any(detail.startswith(f"{field}:") for field in fields), (consumer, detail)
