"""Consumers fetch with a short wait while messages flow and a long one when quiet."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from shared.messaging.broker import fetch_pacing
from shared.messaging.pacing import FetchPacing
from shared.settings import CommonSettings


def consumer(wait_ms: int) -> AIOKafkaConsumer:
    # Not started: building the consumer makes its fetcher only on start, so give it the
    # fetcher aiokafka would build, as far as the wait goes.
    made = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=wait_ms)
    made._fetcher = type("Fetcher", (), {"_fetch_max_wait_ms": wait_ms})()
    return made


async def test_a_message_shortens_the_wait_and_a_quiet_spell_lengthens_it_again() -> None:
    pacing = FetchPacing(busy_wait_ms=10, idle_wait_ms=250, quiet_after=0.2)
    reader = consumer(250)

    pacing.message_arrived(reader)
    assert pacing.current_wait_ms(reader) == 10
    await asyncio.sleep(0.1)
    pacing.message_arrived(reader)  # still flowing: the quiet spell starts again
    await asyncio.sleep(0.15)
    assert pacing.current_wait_ms(reader) == 10
    await asyncio.sleep(0.2)
    assert pacing.current_wait_ms(reader) == 250


async def test_consumers_start_at_the_idle_wait_from_the_settings() -> None:
    settings = CommonSettings(kafka_fetch_max_wait_ms=5, kafka_idle_fetch_max_wait_ms=300)
    pacing = fetch_pacing(settings)
    reader = consumer(settings.kafka_idle_fetch_max_wait_ms)
    assert pacing.current_wait_ms(reader) == 300
    pacing.message_arrived(reader)
    assert pacing.current_wait_ms(reader) == 5


async def test_aiokafka_still_reads_the_wait_where_pacing_sets_it() -> None:
    """aiokafka offers no public setter: if it renames its fetcher's field, pacing would
    silently do nothing, so check the field against a started consumer's fetcher."""
    from aiokafka.consumer.fetcher import Fetcher

    assert "_fetch_max_wait_ms" in Fetcher.__init__.__code__.co_names
    assert "_fetcher" in AIOKafkaConsumer.start.__code__.co_names
