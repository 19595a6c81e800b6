"""The bridge on Tansu and the Temporal dev server: submissions start one lifecycle,
other events become signals, events for unknown applications are dead-lettered."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from shared.contracts import topics
from shared.contracts.disbursement import FundsReleased
from shared.contracts.intake import ApplicationWithdrawn
from shared.messaging.broker import create_broker
from tests.support.messaging import eventually, read_topic
from tests.support.processes import Tansu, TemporalDevServer
from tests.support.workflows import (
    amendment,
    answer,
    publish,
    submission,
    usd,
    workflows_settings,
)
from tests.workflows.support import StandInServices, funding_worker
from workflows.funding.bridge import Bridge
from workflows.funding.models import Stage, workflow_id
from workflows.funding.workflow import ExchangeFundingWorkflow


class CountingBridge(Bridge):
    starts = 0

    async def start(self, event: Any) -> None:
        await super().start(event)
        self.starts += 1


@pytest.fixture
async def dev_client(temporal_dev_server: TemporalDevServer) -> Client:
    return await Client.connect(temporal_dev_server.address, data_converter=pydantic_data_converter)


@pytest.fixture
async def bridge(
    tansu: Tansu, dev_client: Client, unique: str
) -> AsyncIterator[tuple[CountingBridge, KafkaBroker]]:
    settings = await workflows_settings(
        tansu.bootstrap, unique, temporal_task_queue=f"{unique}-queue"
    )
    broker, _ = create_broker(settings, client_id=f"{unique}-bridge")
    bridge = CountingBridge(settings, unknown_grace=0.2)
    bridge.client = dev_client
    bridge.subscribe(broker)
    await broker.start()
    yield bridge, broker
    await broker.stop()


async def test_redelivered_submission_starts_one_lifecycle_and_events_become_signals(
    bridge: tuple[CountingBridge, KafkaBroker], dev_client: Client
) -> None:
    bridge_, broker = bridge
    prefix = bridge_.settings.topic_prefix
    application = submission()
    app_id = application.application_id

    await publish(broker, prefix, topics.APPLICATION_SUBMITTED, application)
    await publish(broker, prefix, topics.APPLICATION_SUBMITTED, application)

    async def both_handled() -> bool:
        return bridge_.starts == 2

    await eventually(both_handled, timeout=30)
    handle = dev_client.get_workflow_handle(workflow_id(app_id))
    first_run = (await handle.describe()).run_id

    await publish(broker, prefix, topics.AMENDMENT_REQUESTED, amendment(app_id, "am-7"))

    async def signalled() -> bool:
        history = await handle.fetch_history()
        return any(
            event.workflow_execution_signaled_event_attributes.signal_name == "amendment_requested"
            for event in history.events
        )

    await eventually(signalled, timeout=30)
    assert (await handle.describe()).run_id == first_run
    history = await handle.fetch_history()
    starts = [
        e for e in history.events if e.HasField("workflow_execution_started_event_attributes")
    ]
    assert len(starts) == 1


async def test_event_for_an_unknown_application_goes_to_the_dead_letter_topic(
    bridge: tuple[CountingBridge, KafkaBroker], tansu: Tansu
) -> None:
    bridge_, broker = bridge
    prefix = bridge_.settings.topic_prefix
    stray = answer(
        ApplicationWithdrawn(application_id="app-nobody", member_id="m-1", reason="oops"),
        "app-nobody",
        "intake",
    )

    await publish(broker, prefix, topics.APPLICATION_WITHDRAWN, stray)

    (record,) = await read_topic(
        tansu.bootstrap, topics.APPLICATION_WITHDRAWN.qualified(prefix) + ".dlq", 1
    )
    body = json.loads(record.value)
    assert "unknown application app-nobody: no workflow application-app-nobody" in body["reason"]


async def test_released_funds_wake_the_waitlisted_applications_of_the_program(
    bridge: tuple[CountingBridge, KafkaBroker], dev_client: Client
) -> None:
    bridge_, broker = bridge
    prefix = bridge_.settings.topic_prefix
    services = StandInServices(dev_client, refusals=1)
    waiting = submission()
    async with funding_worker(
        dev_client, services, task_queue=bridge_.settings.temporal_task_queue
    ):
        await publish(broker, prefix, topics.APPLICATION_SUBMITTED, waiting)
        handle = dev_client.get_workflow_handle(workflow_id(waiting.application_id))

        async def listed_as_waitlisted() -> bool:
            query = f"GrantflowStage = 'waitlisted' AND WorkflowId = '{handle.id}'"
            return [execution.id async for execution in dev_client.list_workflows(query)] != []

        await eventually(listed_as_waitlisted, timeout=30)
        released = answer(
            FundsReleased(
                application_id="app-withdrawn-elsewhere",
                command_id="release-1",
                amount=usd(20_000),
                program_code="AUPAP",
                cycle="2027",
            ),
            "app-withdrawn-elsewhere",
            "disbursement",
        )
        await publish(broker, prefix, topics.FUNDS_RELEASED, released)

        async def reserved() -> bool:
            return (await handle.query(ExchangeFundingWorkflow.stage)).stage in (
                Stage.ADVANCE_PAYMENT,
                Stage.AWAITING_EXCHANGE,
            )

        await eventually(reserved, timeout=30)
        await handle.terminate("test over")
    assert len(services.commands(topics.RESERVE_FUNDS)) == 2
