"""The everyday faults, on the real stack, each while applications are in flight.

One ``grantflow up`` on PostgreSQL runs every test in turn; each test drives a batch of
applications through the public APIs (applicants, partner cities from their mail,
reviewers, the finance simulator), breaks something while they are in flight, and then
checks what a program officer would: every application closed as it would have without
the fault, each tranche paid once, the ledger balanced, the analytics equal to the ledger.

Run with ``make faults`` (``.ci/run`` does); each test prints how many applications were in
flight, how many closed, and how long after the fault the last one closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grantflow.driver import People
from shared.contracts.topics import FINANCE_REFUND_REQUESTED, PAYMENT_INSTRUCTED
from tests.faults.harness import (
    GARBAGE,
    Batch,
    Duplicator,
    FaultStack,
    check_end_state,
    consumed_topics,
    dead_letter_counts,
    finish,
    report_line,
    send_garbage,
    start_batch,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

# Every process the supervisor of ``grantflow up`` restarts.
PROCESSES = ("intake", "review", "disbursement", "reporting", "workflows", "finance-sim")


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaultStack]:
    running = FaultStack(Path(tmp_path_factory.mktemp("faults")))
    await running.create()
    try:
        await asyncio.to_thread(running.up)
        yield running
    finally:
        await running.destroy()


@pytest.fixture
async def people(stack: FaultStack) -> AsyncIterator[People]:
    driver = People(stack.endpoints(), step_timeout=240)
    yield driver
    await driver.close()


async def in_flight(seconds: float) -> float:
    """Let the batch get going; the moment the fault happens."""
    await asyncio.sleep(seconds)
    return time.monotonic()


async def test_killed_processes_are_started_again_and_nothing_is_lost(
    stack: FaultStack, people: People
) -> None:
    tasks = await start_batch(people, Batch("kill"))
    fault_at = await in_flight(3)
    for name in PROCESSES:
        old = stack.kill(name)
        await stack.wait_restarted(name, old)
        await asyncio.sleep(2)
    outcomes = await finish(tasks)
    print(report_line("kill -9 of every process", outcomes, fault_at))
    await check_end_state(people, outcomes, stack.temporal)
    assert stack.log_has("restart"), stack.log_tail()


async def test_a_broker_restarted_empty_loses_no_event(stack: FaultStack, people: People) -> None:
    tasks = await start_batch(people, Batch("broker"))
    fault_at = await in_flight(6)
    old = stack.kill("tansu")
    await stack.wait_restarted("tansu", old)
    outcomes = await finish(tasks)
    print(report_line("broker restarted empty", outcomes, fault_at))
    await check_end_state(people, outcomes, stack.temporal)


async def test_a_restarted_temporal_server_loses_no_application(
    stack: FaultStack, people: People
) -> None:
    tasks = await start_batch(people, Batch("temporal"))
    fault_at = await in_flight(6)
    old = stack.kill("temporal")
    await stack.wait_restarted("temporal", old)
    outcomes = await finish(tasks)
    print(report_line("Temporal restarted", outcomes, fault_at))
    await check_end_state(people, outcomes, stack.temporal)


async def test_every_message_delivered_twice_changes_nothing(
    stack: FaultStack, people: People
) -> None:
    duplicator = Duplicator(stack.bootstrap)
    await duplicator.start()
    try:
        fault_at = time.monotonic()
        outcomes = await finish(await start_batch(people, Batch("twice")))
    finally:
        await duplicator.stop()
    print(report_line(f"every message twice ({duplicator.copied} copies)", outcomes, fault_at))
    assert duplicator.copied > 100
    await check_end_state(people, outcomes, stack.temporal)


async def test_malformed_messages_go_to_the_dead_letters_and_stall_nothing(
    stack: FaultStack, people: People
) -> None:
    database_url = f"postgresql://postgres@127.0.0.1:5432/{stack.database}"
    before = await dead_letter_counts(database_url)
    tasks = await start_batch(people, Batch("garbage"))
    fault_at = await in_flight(3)
    sent = await send_garbage(stack.bootstrap)
    outcomes = await finish(tasks)
    print(report_line(f"{sent} malformed messages", outcomes, fault_at))
    await check_end_state(people, outcomes, stack.temporal)
    after = await dead_letter_counts(database_url)
    grew = {topic: after.get(topic, 0) - before.get(topic, 0) for topic in after}
    # Every topic a service consumes dead-letters what was sent to it (finance's own topics
    # are read only by the finance simulator, which keeps no database).
    finance_only = {PAYMENT_INSTRUCTED.name, FINANCE_REFUND_REQUESTED.name}
    for topic in consumed_topics():
        if topic not in finance_only:
            assert grew.get(topic, 0) >= len(GARBAGE), (topic, grew)


async def test_postgresql_refusing_connections_for_five_seconds_loses_nothing(
    stack: FaultStack, people: People
) -> None:
    tasks = await start_batch(people, Batch("database"))
    fault_at = await in_flight(5)
    stack.proxy.refuse(5)
    outcomes = await finish(tasks)
    print(report_line("PostgreSQL refusing connections for 5 s", outcomes, fault_at))
    await check_end_state(people, outcomes, stack.temporal)


@pytest.mark.parametrize("moment", [2.0, 8.0])
async def test_ctrl_c_and_up_again_loses_no_application(
    stack: FaultStack, people: People, moment: float
) -> None:
    tasks = await start_batch(people, Batch(f"restart{int(moment)}"))
    fault_at = await in_flight(moment)
    await asyncio.to_thread(stack.interrupt)
    await asyncio.to_thread(stack.up)
    outcomes = await finish(tasks)
    print(report_line(f"Ctrl-C after {moment:.0f} s and up again", outcomes, fault_at))
    await check_end_state(people, outcomes, stack.temporal)
