"""Lifecycle test support shared beyond the lifecycle suite: reviews and amendments,
Temporal plumbing, and (from ``bench.standins``, where the benchmark has them too) the
applications, answers and ``KafkaStandIns``. The time-skipping stand-ins are in
``tests/workflows/support.py``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter

from bench.standins import (
    RUBRIC,
    KafkaStandIns,
    answer,
    program_rules,
    publish,
    review,
    scores,
    submission,
    usd,
)
from shared.contracts.envelope import Envelope
from shared.contracts.intake import (
    AmendmentRequested,
)
from shared.contracts.topics import broker_topic_names
from shared.messaging.topics_admin import ensure_topics
from tests.support.messaging import on_test_broker
from workflows.funding.search_attributes import (
    PROGRAM,
    SEARCH_ATTRIBUTES,
    STAGE,
    STAGE_ENTERED_AT,
)
from workflows.settings import WorkflowsSettings

__all__ = [
    "APPROVED_PATH",
    "RUBRIC",
    "KafkaStandIns",
    "amendment",
    "answer",
    "program_rules",
    "publish",
    "register_search_attributes",
    "review",
    "scores",
    "submission",
    "usd",
    "with_pydantic",
    "workflows_settings",
]

# The stages an approved application goes through, in order, when nothing goes wrong.
APPROVED_PATH = (
    "screening",
    "partner_confirmation",
    "review",
    "awarded",
    "funds_reservation",
    "advance_payment",
    "awaiting_exchange",
    "report_due",
    "report_review",
    "final_payment",
    "closing",
    "closed",
)


def amendment(application_id: str, amendment_id: str, **changes: Any) -> Envelope[Any]:
    return answer(
        AmendmentRequested(
            application_id=application_id,
            member_id="demo-member-1",
            amendment_id=amendment_id,
            reason=changes.pop("reason", "the partner moved the conference"),
            **changes,
        ),
        application_id,
        "intake",
    )


async def workflows_settings(bootstrap: str, unique: str, **overrides: Any) -> WorkflowsSettings:
    """The workflows process on Tansu for one test: topics of its own (created), quick joins."""
    settings = WorkflowsSettings(
        environment="test",
        log_format="text",
        **on_test_broker(bootstrap, f"{unique}.", **overrides),
    )
    await ensure_topics(bootstrap, broker_topic_names(settings.topic_prefix))
    return settings


# -- Temporal plumbing for the tests ------------------------------------------------------


def with_pydantic(client: Client) -> Client:
    """The same connection (time skipping included) with the pydantic data converter."""
    config = client.config()
    config["data_converter"] = pydantic_data_converter
    return Client(**config)


async def register_search_attributes(client: Client) -> None:
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    with contextlib.suppress(Exception):  # already registered
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={name: kinds[kind] for name, kind in SEARCH_ATTRIBUTES.items()},
            )
        )


async def start_stuck_lifecycles(
    temporal: Client, program: str, count: int
) -> list[WorkflowHandle[object, object]]:
    """Lifecycles ``{program}-0`` .. in review for a week; no worker runs them, visibility
    lists them. The caller terminates them."""
    entered = datetime.now(UTC) - timedelta(days=7)
    return [
        await temporal.start_workflow(
            "ExchangeFundingWorkflow",
            id=f"application-{program}-{number}",
            task_queue=f"{program}-no-worker",
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(PROGRAM, program),
                    SearchAttributePair(STAGE, "review"),
                    SearchAttributePair(STAGE_ENTERED_AT, entered),
                ]
            ),
        )
        for number in range(count)
    ]
