"""Reading a topic to its end: every message produced, exactly once each, without waiting for more."""

from collections import Counter

from tests.support import produce, read_topic_to_end

TOPIC = "salesops.promotions"


async def test_an_empty_topic_reads_as_nothing(broker) -> None:
    assert await read_topic_to_end(broker.bootstrap_servers, TOPIC, timeout=10) == []


async def test_every_message_on_every_partition_is_read_once_and_in_order_per_key(broker) -> None:
    produced = [(f"k{i % 4}".encode(), f"v{i}".encode()) for i in range(12)]
    for key, value in produced:
        await produce(broker.bootstrap_servers, TOPIC, value, key=key)

    got = await read_topic_to_end(broker.bootstrap_servers, TOPIC, timeout=10)

    assert len({m.partition for m in got}) > 1  # the keys landed on more than one partition, all of them read
    assert Counter((m.key, m.value) for m in got) == Counter(produced)
    for key in {k for k, _ in produced}:
        assert [m.value for m in got if m.key == key] == [v for k, v in produced if k == key]


async def test_more_messages_than_an_expected_count_are_all_returned_including_a_duplicate(broker) -> None:
    """Nothing but the topic's end bounds the read: a message more than a test expects, here a duplicate, is there."""
    for value in (b"a", b"b", b"a"):
        await produce(broker.bootstrap_servers, TOPIC, value, key=b"k")

    got = await read_topic_to_end(broker.bootstrap_servers, TOPIC, timeout=10)
    assert [m.value for m in got] == [b"a", b"b", b"a"]

    await produce(broker.bootstrap_servers, TOPIC, b"c", key=b"other")
    again = await read_topic_to_end(broker.bootstrap_servers, TOPIC, timeout=10)
    assert sorted(m.value for m in again) == [b"a", b"a", b"b", b"c"]
