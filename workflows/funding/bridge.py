"""The bridge: Kafka events in, workflow starts and signals out.

- ``grants.application.submitted.v1`` starts the application's workflow (id
  ``application-<id>``, duplicates refused: a redelivered submission is acknowledged and
  changes nothing).
- Every other event the lifecycle waits for becomes a signal carrying the whole envelope;
  the workflow drops duplicates by event id.
- An event for an application that has no workflow is dead-lettered with the reason
  (after a short grace, since the submission may still be on its way on another topic).
  An event for a lifecycle that has already ended is acknowledged and ignored.
- While Temporal is not answering (restarting, unreachable) the event waits and is tried
  again (``DependencyUnavailable``): dead-lettering it would lose a submission for good.
- A release of funds also wakes the waitlisted applications of the same program: budget
  may be free for them now. That is a shortcut (each asks again on its own timer): a
  failure to wake is logged and the release still reaches its own lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from faststream.kafka import KafkaBroker, KafkaRouter
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from shared.contracts import topics
from shared.contracts.disbursement import (
    FundsReleased,
)
from shared.contracts.envelope import Envelope
from shared.contracts.intake import (
    ApplicationSubmitted,
)
from shared.contracts.topics import Topic
from shared.errors import DependencyUnavailable
from shared.logging import log_context
from shared.messaging.broker import subscribe_by_topic
from shared.messaging.deadletter import PoisonMessage
from workflows.funding.models import FundingInput, Stage, workflow_id
from workflows.funding.search_attributes import MEMBER, PROGRAM, STAGE, STAGE_ENTERED_AT
from workflows.funding.workflow import ExchangeFundingWorkflow
from workflows.settings import WorkflowsSettings

logger = logging.getLogger(__name__)

# What Temporal answers while it restarts or cannot be reached: the request may succeed later.
_TEMPORAL_UNAVAILABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.UNKNOWN,
    }
)

_SAFE_QUERY_VALUE = re.compile(r"^[A-Za-z0-9_.:-]+$")


class UnknownApplicationError(PoisonMessage):
    """An event for an application whose workflow does not exist."""


class Bridge:
    """Turns the events the lifecycle waits for into workflow starts and signals."""

    def __init__(
        self,
        settings: WorkflowsSettings,
        *,
        unknown_grace: float = 3.0,
        search_attributes: bool = True,
        consumers: int = 1,
    ) -> None:
        self.settings = settings
        self.client: Client | None = None
        self.unknown_grace = unknown_grace
        self.search_attributes = search_attributes
        self.consumers = consumers

    def _temporal(self) -> Client:
        if self.client is None:
            raise ConnectionError("the bridge is not connected to Temporal yet")
        return self.client

    # -- starting ---------------------------------------------------------------------------

    async def start(self, event: Envelope[ApplicationSubmitted]) -> None:
        application = event.payload
        attributes = None
        if self.search_attributes:
            attributes = TypedSearchAttributes(
                [
                    SearchAttributePair(PROGRAM, application.rules.code),
                    SearchAttributePair(MEMBER, application.member_id),
                    SearchAttributePair(STAGE, Stage.SUBMITTED.value),
                    SearchAttributePair(STAGE_ENTERED_AT, event.occurred_at),
                ]
            )
        try:
            await self._temporal().start_workflow(
                ExchangeFundingWorkflow.run,
                FundingInput(submission=event, search_attributes=self.search_attributes),
                id=workflow_id(application.application_id),
                task_queue=self.settings.temporal_task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=attributes,
            )
        except WorkflowAlreadyStartedError:
            logger.info("submission already has its workflow; duplicate ignored")
            return
        logger.info("lifecycle started")

    # -- signalling -------------------------------------------------------------------------

    async def signal(self, event: Envelope[Any], signal: Callable[..., Any]) -> None:
        """Deliver ``event`` to its application's workflow, or dead-letter it if there is none."""
        handle = self._temporal().get_workflow_handle(workflow_id(event.application_id))
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.unknown_grace
        while True:
            try:
                await handle.signal(signal, event)
                return
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
            if await _exists(handle):
                logger.info("event for a lifecycle that has ended; ignored")
                return
            if loop.time() >= give_up_at:
                raise UnknownApplicationError(
                    f"unknown application {event.application_id}: no workflow {handle.id}"
                )
            await asyncio.sleep(min(0.25, self.unknown_grace))

    async def wake_waitlisted(self, event: Envelope[FundsReleased]) -> int:
        """Tell the waitlisted applications of the program that budget was released."""
        program = event.payload.program_code
        if not self.search_attributes or not _SAFE_QUERY_VALUE.match(program):
            return 0
        query = (
            "WorkflowType = 'ExchangeFundingWorkflow' AND ExecutionStatus = 'Running' "
            f"AND GrantflowStage = '{Stage.WAITLISTED.value}' AND GrantflowProgram = '{program}'"
        )
        client = self._temporal()
        woken = 0
        async for execution in client.list_workflows(query):
            if execution.id == workflow_id(event.application_id):
                continue
            try:
                await client.get_workflow_handle(execution.id).signal(
                    ExchangeFundingWorkflow.funds_released, event
                )
                woken += 1
            except RPCError as error:
                if error.status != RPCStatusCode.NOT_FOUND:
                    raise
        return woken

    # -- the subscriber ---------------------------------------------------------------------

    def subscribe(self, broker: KafkaBroker | KafkaRouter) -> None:
        """Consumers for every topic the lifecycle listens to, dispatching by topic.

        Each consumer reads all the topics (one group join per consumer, not per topic: on
        the embedded broker seventeen joins took half a minute). With several consumers
        the partitions are shared out, so events of different applications are handled
        in parallel while one application's events stay in order (its id is the key).
        """
        handlers = {topic: functools.partial(self.handle, topic) for topic in BRIDGED_TOPICS}
        group = self.settings.consumer_group
        for _consumer in range(self.consumers):
            subscribe_by_topic(broker, self.settings, handlers, group_id=group)

    async def handle(self, topic: Topic, event: Envelope[Any]) -> None:
        """Start or signal the application's workflow for one event."""
        with _context(event), _waits_for_temporal():
            if topic is topics.APPLICATION_SUBMITTED:
                await self.start(event)
                return
            if topic is topics.FUNDS_RELEASED:
                await self._wake_waitlisted_if_possible(event)
            await self.signal(event, SIGNALS[topic.name])

    async def _wake_waitlisted_if_possible(self, event: Envelope[FundsReleased]) -> None:
        """Waking is a shortcut (each waitlisted lifecycle asks again on its own timer), so
        it never costs the release its delivery to its own lifecycle: only an unavailable
        Temporal makes the event wait (waking again is harmless: signals are deduplicated)."""
        try:
            await self.wake_waitlisted(event)
        except RPCError as error:
            if error.status in _TEMPORAL_UNAVAILABLE:
                raise
            logger.warning("could not wake the waitlist after a release: %s", error)


BRIDGED_TOPICS: tuple[Topic, ...] = (
    topics.APPLICATION_SUBMITTED,
    topics.APPLICATION_WITHDRAWN,
    topics.APPLICATION_RESUBMITTED,
    topics.AMENDMENT_REQUESTED,
    topics.PARTNER_CONFIRMED,
    topics.REVIEW_COMPLETED,
    topics.REVIEWER_RECUSED,
    topics.REVIEWERS_SHORT,
    topics.REPORT_REVIEWED,
    topics.FUNDS_RESERVED,
    topics.FUNDS_REFUSED,
    topics.FUNDS_RELEASED,
    topics.AWARD_ADJUSTED,
    topics.DISBURSEMENT_SETTLED,
    topics.DISBURSEMENT_FAILED,
    topics.REFUND_REQUESTED,
    topics.REPORT_SUBMITTED,
)
_wf = ExchangeFundingWorkflow
SIGNALS: dict[str, Callable[..., Any]] = {
    topics.APPLICATION_WITHDRAWN.name: _wf.withdrawn,
    topics.APPLICATION_RESUBMITTED.name: _wf.resubmitted,
    topics.AMENDMENT_REQUESTED.name: _wf.amendment_requested,
    topics.PARTNER_CONFIRMED.name: _wf.partner_confirmed,
    topics.REVIEW_COMPLETED.name: _wf.review_completed,
    topics.REVIEWER_RECUSED.name: _wf.reviewer_recused,
    topics.REVIEWERS_SHORT.name: _wf.reviewers_short,
    topics.REPORT_REVIEWED.name: _wf.report_reviewed,
    topics.FUNDS_RESERVED.name: _wf.funds_reserved,
    topics.FUNDS_REFUSED.name: _wf.funds_refused,
    topics.FUNDS_RELEASED.name: _wf.funds_released,
    topics.AWARD_ADJUSTED.name: _wf.award_adjusted,
    topics.DISBURSEMENT_SETTLED.name: _wf.disbursement_settled,
    topics.DISBURSEMENT_FAILED.name: _wf.disbursement_failed,
    topics.REFUND_REQUESTED.name: _wf.refund_requested,
    topics.REPORT_SUBMITTED.name: _wf.report_submitted,
}


def _context(event: Envelope[Any]) -> contextlib.AbstractContextManager[None]:
    return log_context(application_id=event.application_id, correlation_id=event.correlation_id)


@contextlib.contextmanager
def _waits_for_temporal() -> Iterator[None]:
    try:
        yield
    except RPCError as error:
        if error.status in _TEMPORAL_UNAVAILABLE:
            raise DependencyUnavailable(f"Temporal is not answering: {error}") from error
        raise


async def _exists(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True
