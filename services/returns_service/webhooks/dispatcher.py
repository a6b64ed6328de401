"""The webhook dispatcher: signs and sends due deliveries, each attempt on its own, so that no endpoint ever
waits for another one's attempts to end.

One loop leases due deliveries (fairly across endpoints, see `store.claim_due`) whenever a slot is free and
starts an attempt task per delivery, at most once per `WEBHOOK_CLAIM_GATHER_S` when woken (so that under a stream
of alert changes one claim leases the deliveries of several); attempt results are recorded by a second loop in
batches. Every attempt is bounded as a whole by `WEBHOOK_TIMEOUT_S`, whatever the receiver does."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from standardwebhooks import Webhook

from services.returns_service.domain.delivery import AttemptResult, DeliveryPolicy
from services.returns_service.settings import ReturnsSettings
from services.returns_service.store import webhooks as store
from services.returns_service.store.webhooks import Claim
from services.returns_service.stream import pending_feed_of
from services.returns_service.webhooks.pinning import connecting_to, webhook_client
from services.returns_service.webhooks.ssrf import Guard, TargetRefused
from shared.gathering import Gathering
from shared.service import Runtime

log = structlog.get_logger("salesops.returns.webhooks")

# A lease outlives the attempt's own deadline by this much, so that the result can be recorded before another
# dispatcher takes the delivery again.
LEASE_MARGIN_S = 60.0
# The receiver's answer is not used beyond its status; reading a little of it keeps the connection reusable.
RESPONSE_READ_LIMIT = 16 * 1024
RECORD_BATCH = 500
# Once an attempt has ended, the recorder waits this long for others to end before writing: one transaction for the
# results of a burst instead of one each. The deliveries stay leased meanwhile (see LEASE_MARGIN_S).
RECORD_GATHER_S = 0.05
# How often the per-endpoint backlog gauge is refreshed.
BACKLOG_SAMPLE_S = 5.0


@functools.lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    """The signer of an endpoint's secret, kept for its next attempts (it decodes the secret once)."""
    return Webhook(secret)


async def send(
    client: httpx.AsyncClient,
    row: Any,
    settings: ReturnsSettings,
    guard: Guard,
    trace_headers: Mapping[str, str] | None = None,
) -> AttemptResult:
    """One signed attempt to the addresses the guard checks now (the name may resolve differently than at
    registration). `trace_headers` (a `traceparent`) let the receiver continue the alert's trace; they are not
    part of the signed content."""
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "user-agent": "salesops-webhooks/1",
        "webhook-id": row.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": _signer(row.secret).sign(row.message_id, now, row.body),
        **(trace_headers or {}),
    }
    timeout = settings.webhook_timeout_s
    try:
        async with asyncio.timeout(timeout):
            target = await guard.check(row.url)
            with connecting_to(target):
                async with client.stream(
                    "POST", row.url, content=row.body.encode(), headers=headers, timeout=timeout
                ) as response:
                    read = 0
                    async for chunk in response.aiter_raw():
                        read += len(chunk)
                        if read >= RESPONSE_READ_LIMIT:
                            break
    except TargetRefused as exc:
        return AttemptResult(None, f"refused: {exc}"[:500], elapsed())
    except (TimeoutError, httpx.TimeoutException):
        return AttemptResult(None, f"timeout after {timeout}s", elapsed())
    except httpx.HTTPError as exc:
        return AttemptResult(None, f"{type(exc).__name__}: {exc}"[:500], elapsed())
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return AttemptResult(response.status_code, error, elapsed())


class Dispatcher:
    """Delivers the webhooks of one replica; `run` until cancelled."""

    def __init__(self, runtime: Runtime, settings: ReturnsSettings, guard: Guard) -> None:
        self._runtime = runtime
        self._settings = settings
        self._policy: DeliveryPolicy = settings.delivery_policy()
        self._guard = guard
        self._lease_s = settings.webhook_timeout_s + LEASE_MARGIN_S
        self._in_flight: Counter[str] = Counter()
        self._lanes: dict[str, int] = {}  # lanes earned, for endpoints above the one every endpoint has
        self._attempts: dict[asyncio.Task[None], Claim] = {}
        self._results: asyncio.Queue[tuple[Claim, AttemptResult]] = asyncio.Queue()
        self._recording: list[tuple[Claim, AttemptResult]] = []
        self._wake = asyncio.Event()
        # Whether a committed change set `_wake` (rather than the poll timer or a slot coming free).
        self._change_woke = False
        # Endpoints whose lanes were all taken at the last claim: deliveries of theirs may be waiting for a slot.
        self._capped: set[str] = set()

    async def run(self) -> None:
        feed_forwarder = asyncio.create_task(self._forward_wakeups(), name="webhook-wakeups")
        recorder = asyncio.create_task(self._record_results(), name="webhook-recorder")
        sampler = asyncio.create_task(self._sample_backlog(), name="webhook-backlog")
        try:
            async with webhook_client(self._settings.webhook_concurrency) as client:
                try:
                    await self._claim_loop(client)
                finally:
                    await self._stop_attempts()
        finally:
            feed_forwarder.cancel()
            recorder.cancel()
            sampler.cancel()
            await asyncio.gather(feed_forwarder, recorder, sampler, return_exceptions=True)
            await self._flush()

    async def _sample_backlog(self) -> None:
        """`salesops_webhook_backlog_deliveries` per endpoint with a backlog, every few seconds; the series of an
        endpoint whose backlog emptied (or that was deleted) goes away."""
        webhooks = self._runtime.metrics.webhooks
        known: set[str] = set()
        while True:
            try:
                counts = await store.backlog(self._runtime.engine)
            except Exception as exc:
                log.debug("webhook backlog sample failed", error=repr(exc))
            else:
                for endpoint_id in known - counts.keys():
                    webhooks.forget_backlog(endpoint_id)
                for endpoint_id, count in counts.items():
                    webhooks.backlog(endpoint_id, count)
                known = set(counts)
            await asyncio.sleep(BACKLOG_SAMPLE_S)

    async def _forward_wakeups(self) -> None:
        """Committed alert changes (their deliveries were queued with them), and the poll timer for retries coming
        due, wake the claim loop."""
        feed = pending_feed_of(self._runtime)
        while True:
            change = feed.next_change()
            await feed.wait(self._settings.webhook_poll_interval_s, change)
            self._change_woke = self._change_woke or change.is_set()
            self._wake.set()

    async def _claim_loop(self, client: httpx.AsyncClient) -> None:
        backoff = 0.5
        # Only claims a committed change woke start a gather (others do not: a change after a quiet spell is claimed
        # at once); `by_change`: whether the coming claim is one.
        gathering, by_change = Gathering(self._settings.webhook_claim_gather_s), False
        while True:
            gathering.began(by_change)
            free = min(self._settings.webhook_concurrency - len(self._attempts), self._settings.webhook_batch_size)
            claimed: list[Claim] = []
            if free > 0:
                try:
                    claimed = await store.claim_due(
                        self._runtime.engine,
                        self._policy,
                        limit=free,
                        in_flight=dict(self._in_flight),
                        lanes=dict(self._lanes),
                        lease_s=self._lease_s,
                    )
                    backoff = 0.5
                except Exception as exc:
                    log.warning("webhook claim failed; will retry", error=repr(exc), retry_in_s=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
            for row in claimed:
                self._start(client, row)
            self._capped = {e for e, n in self._in_flight.items() if n >= self._lanes.get(e, 1)}
            if claimed and len(claimed) == free:
                continue  # more may be due; a full dispatcher waits below for a slot
            await self._wake.wait()
            by_change = self._change_woke
            # Woken by a change soon after the last such claim: what commits meanwhile is leased with this one.
            await gathering.settle(by_change)
            self._wake.clear()
            self._change_woke = False

    def _start(self, client: httpx.AsyncClient, row: Claim) -> None:
        self._in_flight[row.endpoint_id] += 1
        task = asyncio.create_task(self._attempt(client, row), name=f"webhook-{row.delivery_id}")
        self._attempts[task] = row
        task.add_done_callback(self._finished)

    async def _attempt(self, client: httpx.AsyncClient, row: Claim) -> None:
        try:
            # Each attempt is a span of the trace of the work that changed the alert.
            with self._runtime.tracing.delivering(row.traceparent, endpoint=row.endpoint_id, url=row.url) as headers:
                result = await send(client, row, self._settings, self._guard, headers)
                if not result.ok:
                    self._runtime.tracing.failed(result.error or "failed")
        except Exception as exc:  # recorded as a failed attempt rather than left leased
            log.exception("webhook attempt failed unexpectedly", delivery_id=row.delivery_id)
            result = AttemptResult(None, f"{type(exc).__name__}: {exc}"[:500], 0.0)
        self._runtime.metrics.webhooks.attempt(row.endpoint_id, ok=result.ok)
        lanes = self._policy.lanes_after(self._lanes.get(row.endpoint_id, 1), ok=result.ok)
        if lanes > 1:
            self._lanes[row.endpoint_id] = lanes
        else:
            self._lanes.pop(row.endpoint_id, None)
        self._results.put_nowait((row, result))

    def _finished(self, task: asyncio.Task[None]) -> None:
        full = len(self._attempts) >= self._settings.webhook_concurrency
        row = self._attempts.pop(task)
        self._in_flight[row.endpoint_id] -= 1
        if self._in_flight[row.endpoint_id] <= 0:
            del self._in_flight[row.endpoint_id]
        # A slot is free: claim again if something may have waited for one (the dispatcher was full, or the
        # endpoint had all its lanes taken); otherwise nothing due was left behind, and new deliveries and
        # retries coming due wake the loop themselves.
        if full or row.endpoint_id in self._capped:
            self._capped.discard(row.endpoint_id)
            self._wake.set()

    async def _record_results(self) -> None:
        """Whatever finished while the previous batch was being written, or within `RECORD_GATHER_S` of the first
        result of a batch, is written together next."""
        backoff = 0.5
        while True:
            if not self._recording:
                self._recording.append(await self._results.get())
                await asyncio.sleep(RECORD_GATHER_S)
            while len(self._recording) < RECORD_BATCH and not self._results.empty():
                self._recording.append(self._results.get_nowait())
            try:
                await store.record_attempts(self._runtime.engine, self._policy, self._recording)
            except Exception as exc:
                # Kept and retried: until recorded, the deliveries stay leased and no other attempt is made.
                log.warning("recording webhook attempts failed; will retry", error=repr(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 0.5
            self._recording = []

    async def _stop_attempts(self) -> None:
        """On shutdown: attempts still running are abandoned and their deliveries made due again at once, so
        the next dispatcher (another replica, or this one restarted) need not wait for the lease to lapse."""
        running = list(self._attempts.items())
        for task, _ in running:
            task.cancel()
        await asyncio.gather(*(task for task, _ in running), return_exceptions=True)
        abandoned = [row for task, row in running if task.cancelled()]
        try:
            async with asyncio.timeout(5):
                await store.release(self._runtime.engine, abandoned)
        except Exception as exc:  # their leases lapse instead: the attempts are made again then
            log.warning("abandoned webhook attempts not released", deliveries=len(abandoned), error=repr(exc))

    async def _flush(self) -> None:
        """Record what finished before the shutdown (best effort: unrecorded attempts are made again)."""
        pending = list(self._recording)  # a batch interrupted mid-write; one already written is not counted twice
        while not self._results.empty():
            pending.append(self._results.get_nowait())
        if pending:
            try:
                async with asyncio.timeout(5):
                    await store.record_attempts(self._runtime.engine, self._policy, pending)
            except Exception as exc:  # their leases lapse instead: the attempts are made again then
                log.warning("webhook attempts not recorded at shutdown", attempts=len(pending), error=repr(exc))


def dispatcher_task(guard: Guard) -> Callable[[Runtime], Coroutine[Any, Any, None]]:
    """The background task of the service, with the guard the API checks registrations with."""

    async def run_webhook_dispatcher(runtime: Runtime) -> None:
        settings = runtime.settings
        assert isinstance(settings, ReturnsSettings)
        await Dispatcher(runtime, settings, guard).run()

    return run_webhook_dispatcher
