"""The command channel: what the lifecycle says, sends and waits for.

- ``_enter``: a transition (history, search attributes, the status event);
- ``_send``: a command, sent again with the same id and a growing pause until it is
  answered or closed; one without an answer after many sends is escalated;
- ``_escalate``: a question for a program officer, kept in the status events'
  ``waiting_for_officer`` until its cause is resolved;
- ``_wait``: the one way the lifecycle waits. It returns when a condition holds or a
  deadline passes, publishes what the step produced, re-sends what is due, takes up an
  officer's re-send and raises ``Withdrawn`` when the applicant withdraws.

Everything published goes out in one activity per step (``_flush``), in order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.funding.requests import OfficerRequests
from workflows.funding.state import Command, Withdrawn

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from shared.contracts import topics
    from shared.contracts.envelope import deterministic_id
    from shared.contracts.topics import Topic
    from shared.contracts.workflows import (
        ApplicationStatusChanged,
        EscalatedToOfficer,
        EscalationKind,
        ReminderDue,
    )
    from workflows.funding import domain, patches
    from workflows.funding.activities import PUBLISH
    from workflows.funding.models import (
        ESCALATION_STAGES,
        LIFECYCLE_MEMO,
        Outgoing,
        Publication,
        Stage,
        Transition,
    )
    from workflows.funding.search_attributes import MEMBER, PROGRAM, STAGE, STAGE_ENTERED_AT

ACTIVITY_TIMEOUT = timedelta(seconds=30)
# Kafka being down only delays the lifecycle: publishing is retried until it succeeds.
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)

Escalation = tuple[EscalationKind, str]


class CommandChannel(OfficerRequests):
    # -- transitions and what they say --------------------------------------------------

    def _enter(
        self,
        stage: Stage,
        reason: str | None = None,
        *,
        deadlines: dict[str, datetime] | None = None,
        action: str | None = None,
        escalation: Escalation | None = None,
    ) -> None:
        """A transition: state, history, search attributes and the status event.

        An ``escalation`` raised by the transition is in the status event's
        ``waiting_for_officer`` and is published right after it.
        """
        now = workflow.now()
        previous = self._stage
        if stage is not previous:
            self._previous = previous
            self._stage_entered_at = now
        self._stage = stage
        self._stage_reason = reason
        self._deadlines = dict(deadlines or {})
        self._sequence += 1
        self._history.append(
            Transition(
                sequence=self._sequence, stage=stage, previous=previous, at=now, reason=reason
            )
        )
        self._refuse_out_of_stage()
        self._drop_resolved_escalations()
        if escalation is not None:
            self._waiting[escalation[0]] = None
        if self._input.search_attributes:
            workflow.upsert_search_attributes(
                [
                    PROGRAM.value_set(self._rules.code),
                    MEMBER.value_set(self._app.member_id),
                    STAGE.value_set(stage.value),
                    STAGE_ENTERED_AT.value_set(self._stage_entered_at),
                ]
            )
        self._publish(
            topics.APPLICATION_STATUS_CHANGED,
            ApplicationStatusChanged(
                application_id=self._app.application_id,
                member_id=self._app.member_id,
                program_code=self._rules.code,
                stage=stage.value,
                previous_stage=previous.value,
                reason=reason,
                deadlines=self._deadline_list(),
                action_required=action,
                amounts=self._amounts(),
                sequence=self._sequence,
                waiting_for_officer=list(self._waiting),
            ),
            "status",
            str(self._sequence),
        )
        if escalation is not None:
            self._escalate(*escalation)

    def _drop_resolved_escalations(self) -> None:
        """Forget the escalations whose cause is gone: the stage they wait in was left, the
        commands escalated were answered, every amendment was decided."""
        waiting = self._waiting
        for kind in list(waiting):
            if self._stage not in ESCALATION_STAGES[kind]:
                del waiting[kind]
        outstanding = {command.command_id: None for command in self._outstanding()}
        self._unanswered = {key: None for key in self._unanswered if key in outstanding}
        if not self._unanswered:
            waiting.pop("command_unanswered", None)
        if not self._undecided_amendments():
            waiting.pop("amendment_waiting", None)
        if self._spread_round is None:
            waiting.pop("wide_score_spread", None)

    def _escalate(self, kind: EscalationKind, reason: str) -> None:
        """Ask a program officer to act; the kind waits until its cause is resolved."""
        self._waiting[kind] = None
        self._publish_numbered(
            topics.ESCALATED_TO_OFFICER,
            EscalatedToOfficer(
                application_id=self._app.application_id,
                stage=self._stage.value,
                reason=reason,
                kind=kind,
                sequence=self._sequence or None,
                program_code=self._rules.code,
            ),
            "escalation",
        )

    def _remind(self, about: Any, due: datetime, message: str) -> None:
        self._publish_numbered(
            topics.REMINDER_DUE,
            ReminderDue(
                application_id=self._app.application_id,
                member_id=self._app.member_id,
                about=about,
                due_at=due,
                message=message,
            ),
            "reminder",
        )

    def _flush_notices(self) -> None:
        while self._notices:
            notice = self._notices.pop(0)
            self._enter(self._stage, notice, deadlines=dict(self._deadlines))

    # -- publishing -----------------------------------------------------------------------

    def _outgoing(self, topic: Topic, event_id: Any, payload: dict[str, Any]) -> Outgoing:
        return Outgoing(
            topic=topic.name,
            event_id=event_id,
            application_id=self._app.application_id,
            correlation_id=self._correlation_id,
            causation_id=self._cause,
            occurred_at=workflow.now(),
            payload=payload,
        )

    def _publish(self, topic: Topic, payload: BaseModel, *parts: str) -> None:
        event_id = deterministic_id(self._wid, *parts)
        self._outbox.append(self._outgoing(topic, event_id, payload.model_dump(mode="json")))

    def _publish_numbered(self, topic: Topic, payload: BaseModel, name: str) -> None:
        """An event that may happen any number of times: its id counts them."""
        self._events_published += 1
        self._publish(topic, payload, name, str(self._events_published))

    async def _flush(self) -> None:
        """Publish what this step produced, in order, with one activity."""
        if not self._outbox:
            return
        messages, self._outbox = self._outbox, []
        # Publishing waits out a Kafka outage: readers see the state it publishes meanwhile.
        self._show_lifecycle()
        await workflow.execute_activity(
            PUBLISH,
            Publication(messages=messages),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=PUBLISH_RETRY,
        )

    # -- commands -------------------------------------------------------------------------

    def _command_id(self, step: str, *parts: str) -> str:
        return str(deterministic_id(self._wid, step, *parts))

    def _send(
        self,
        topic: Topic,
        step: str,
        payload: BaseModel,
        *,
        resend_after: timedelta | None = None,
        expects_answer: bool = True,
        machine_answered: bool = False,
    ) -> Command:
        """Send a command (its id comes from ``_command_id``) and keep it alive until answered."""
        command_id = str(getattr(payload, "command_id"))  # noqa: B009 - every command has one
        command = self._commands.get(command_id)
        if command is None:
            command = Command(
                command_id=command_id,
                step=step,
                topic=topic,
                payload=payload.model_dump(mode="json"),
                resend_after=(resend_after or self._rules.command_resend_after)
                if expects_answer
                else None,
                first_sent_at=workflow.now(),
                machine_answered=machine_answered,
                # A service answers at once; a person (partner, reviewer, member) may take
                # weeks, so only the former is worth an officer's attention when silent.
                escalated=not machine_answered,
            )
            self._commands[command_id] = command
        self._transmit(command)
        return command

    def _transmit(self, command: Command) -> None:
        command.sends += 1
        # Each send is a new message (a consumer's inbox would drop a copy of the first one,
        # and with it the chance to answer again); the command id inside stays the same.
        event_id = deterministic_id(command.command_id, "send", str(command.sends))
        self._outbox.append(self._outgoing(command.topic, event_id, command.payload))
        if command.resend_after is None:
            return
        if not command.machine_answered and command.sends >= domain.SENDS_TO_PEOPLE:
            # A person's answer may take weeks: enough copies went out against a lost
            # message, and the stage's own deadline takes over from here.
            command.next_send_at = None
            return
        command.next_send_at = workflow.now() + domain.resend_interval(
            command.resend_after, command.sends
        )
        if command.sends >= domain.SENDS_BEFORE_ESCALATION and not command.escalated:
            command.escalated = True
            self._unanswered[command.command_id] = None
            self._escalate(
                "command_unanswered",
                f"{command.step} command {command.command_id} sent {command.sends} times "
                "without an answer",
            )

    # -- waiting --------------------------------------------------------------------------

    def _needs_attention(self, interruptible: bool) -> bool:
        return (
            (interruptible and self._withdrawal_due())
            or bool(self._notices)
            # A handler published something (an escalation): it goes out now.
            or bool(self._outbox)
            or (self._resend is not None and self._stage is not Stage.PAYMENT_ESCALATED)
        )

    async def _wait(
        self,
        done: Callable[[], bool],
        *,
        until: datetime | None = None,
        interruptible: bool = True,
    ) -> bool:
        """Wait until ``done()`` (True) or ``until`` passes (False), keeping commands alive."""
        while True:
            self._flush_notices()
            await self._flush()
            if interruptible and self._withdrawal_due():
                raise Withdrawn
            if done():
                return True
            now = workflow.now()
            if until is not None and now >= until:
                return False
            self._resend_due(now)
            await self._flush()
            wake = until
            for command in self._outstanding():
                if command.next_send_at is not None and (
                    wake is None or command.next_send_at < wake
                ):
                    wake = command.next_send_at
            timeout = None if wake is None else wake - workflow.now()
            if timeout is not None and timeout <= timedelta(0):
                continue
            self._show_lifecycle()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: done() or self._needs_attention(interruptible), timeout=timeout
                )

    def _show_lifecycle(self) -> None:
        """Keep the lifecycle view in the memo, where readers take it without a query."""
        if not workflow.patched(patches.LIFECYCLE_IN_MEMO):
            return
        view = self._lifecycle_view().model_dump(mode="json")
        if view != self._shown_view:
            self._shown_view = view
            workflow.upsert_memo({LIFECYCLE_MEMO: view})

    def _resend_due(self, now: datetime) -> None:
        """Send again what is due, and what an officer asked to (a payment escalated is the
        payment's own to take up)."""
        request = self._resend
        if request is not None and self._stage is not Stage.PAYMENT_ESCALATED:
            self._resend = None
            step = request.value.step
            chosen = [c for c in self._outstanding() if step is None or c.step == step]
            for command in chosen:
                self._transmit(command)
            if chosen:
                message = "re-sent: " + ", ".join(c.step for c in chosen)
                request.accept(message)
                if workflow.patched(patches.RESEND_ANNOUNCED):
                    # The officer has acted: the escalation of the silent commands is over.
                    self._unanswered.clear()
                    who = f" by {request.value.officer}" if request.value.officer else ""
                    self._enter(self._stage, f"{message}{who}", deadlines=dict(self._deadlines))
            else:
                request.refuse("no command is waiting for an answer any more")
        for command in self._outstanding():
            if command.next_send_at is not None and command.next_send_at <= now:
                self._transmit(command)
