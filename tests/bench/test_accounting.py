"""Cost accounting of the bench: CPU of a process tree (a real one, with a worker that exits in between),
statements between two pg_stat_statements readings, lock waits by event, and per-unit division."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from salesops.bench.accounting import (
    LockWaits,
    StatementCounts,
    Usage,
    cpu_by_process,
    cpu_delta,
    is_transaction_control,
    statement_delta,
)

# Burns CPU in a worker that exits (and is reaped), then in itself, then waits to be measured.
_TREE = textwrap.dedent(
    """
    import subprocess, sys, time

    def burn(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    sys.stdin.readline()
    subprocess.run([sys.executable, "-c", "import time\\nend = time.process_time() + 0.4\\n"
                    "while time.process_time() < end: pass"], check=True)
    burn(0.3)
    print("done", flush=True)
    sys.stdin.readline()
    """
)


def test_cpu_of_a_tree_counts_a_worker_that_exited_between_readings() -> None:
    process = subprocess.Popen([sys.executable, "-c", _TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdin is not None and process.stdout is not None
    try:
        before = cpu_by_process(process.pid)
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "done"
        after = cpu_by_process(process.pid)
        alone_after = cpu_by_process(process.pid, descendants=False)
    finally:
        process.stdin.write("stop\n")
        process.stdin.flush()
        process.wait(timeout=10)

    spent = cpu_delta(before, after)
    # 0.4 s in the reaped worker + 0.3 s in the process itself (plus interpreter start-up of the worker).
    assert 0.65 <= spent <= 2.0
    # Without its children, the same process shows its own burn only.
    assert alone_after[process.pid] < after[process.pid] - 0.35
    # Excluding the process leaves nothing of the tree.
    assert cpu_delta(before, after, exclude={process.pid}) == 0.0


def test_cpu_delta_leaves_out_excluded_processes_and_never_goes_negative() -> None:
    before = {1: 10.0, 2: 5.0, 3: 1.0}
    after = {1: 10.5, 2: 9.0, 4: 0.25}  # 3 exited (its time now in 1's entry), 4 started

    assert cpu_delta(before, after) == pytest.approx(10.5 + 9.0 + 0.25 - 16.0)
    # Without 2, the tree seems to have lost time (3's share moved into 1 only partly): clamped, not negative.
    assert cpu_delta(before, after, exclude={2}) == 0.0
    assert cpu_delta({1: 2.0}, {1: 3.5, 9: 1.0}, exclude={9}) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("query", "control"),
    [
        ("BEGIN", True),
        ("begin isolation level read committed", True),
        ("COMMIT", True),
        ("ROLLBACK", True),
        ("SAVEPOINT sa_1", True),
        ("RELEASE SAVEPOINT sa_1", True),
        ("INSERT INTO returns.returns (return_id) VALUES ($1)", False),
        ("SELECT begin_at FROM t", False),
        ("WITH committed AS (SELECT 1) SELECT * FROM committed", False),
    ],
)
def test_transaction_control_is_told_apart_from_work(query: str, control: bool) -> None:
    assert is_transaction_control(query) is control


def test_statements_between_two_readings() -> None:
    before = {1: ("BEGIN", 100), 2: ("COMMIT", 90), 3: ("INSERT INTO t VALUES ($1)", 50), 5: ("SELECT 1", 7)}
    after = {
        1: ("BEGIN", 130),
        2: ("COMMIT", 110),
        3: ("INSERT INTO t VALUES ($1)", 80),
        4: ("ROLLBACK", 10),
        5: ("SELECT 1", 7),  # not run in between
        6: ("UPDATE t SET x = $1", 20),  # first seen after
    }

    counts = statement_delta(before, after)

    assert counts.total == 30 + 20 + 30 + 10 + 20
    assert counts.transaction_control == 60
    assert counts.work == 50
    assert counts.commits == 20
    assert counts.top[0] == ("BEGIN", 30)
    assert ("SELECT 1", 0) not in counts.top and all(c > 0 for _, c in counts.top)
    per = counts.per(10)
    assert per["statements"] == 5.0 and per["transaction_control"] == 6.0 and per["commits"] == 2.0
    assert {"query": "UPDATE t SET x = $1", "per_unit": 2.0} in per["top"]


def test_lock_waits_are_summarised_per_event_over_samples() -> None:
    locks = LockWaits()
    locks.add([("active", "Lock", "advisory"), ("active", "Lock", "advisory"), ("active", None, None)])
    locks.add([("active", "LWLock", "WALWrite"), ("idle", "Client", "ClientRead")])
    locks.add([])
    locks.add([("active", "Lock", "advisory"), ("idle in transaction", "Lock", "transactionid")])

    summary = locks.summary()

    assert summary["samples"] == 4
    assert summary["active_backends_max"] == 3
    assert summary["active_backends_mean"] == pytest.approx((3 + 1 + 0 + 1) / 4)
    assert summary["waiting_by_event"] == {
        "Lock:advisory": {"mean": 0.75, "max": 2},
        "LWLock:WALWrite": {"mean": 0.25, "max": 1},
        "Lock:transactionid": {"mean": 0.25, "max": 1},
    }
    assert summary["waiting_backends_mean"] == pytest.approx(5 / 4)
    assert locks.brief().startswith("Lock:advisory mean 0.8 max 2")
    assert LockWaits().brief() == "no lock waits seen"


def test_usage_is_divided_by_the_units_completed() -> None:
    usage = Usage(
        seconds=2.0,
        cpu_s={"returns": 1.5, "postgres": 0.5},
        statements=StatementCounts(total=900, transaction_control=400, commits=200, top=[("INSERT", 500)]),
        locks=LockWaits(),
    )

    assert usage.cpu_ms_per("returns", 500) == 3.0
    assert usage.cpu_ms_per("missing", 500) == 0.0
    assert usage.statements_per(100) == 5.0
    per = usage.per(500)
    assert per["cpu_ms_per_unit"] == {"returns": 3.0, "postgres": 1.0}
    assert per["cpu_utilisation"] == {"returns": 0.75, "postgres": 0.25}
    assert per["statements_per_unit"]["commits"] == 0.4
    assert Usage(1.0, {}, None, LockWaits()).statements_per(10) is None
