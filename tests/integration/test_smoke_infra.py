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
