"""Officers' requests: workflow updates, each checked by a validator against the lifecycle.

A validator refuses at once what the lifecycle cannot take up now (the lifecycle API
answers 409 with its reason). An accepted request is held as a ``Request`` until the
lifecycle takes it up at its next step, which accepts it, or until a transition makes it
impossible, which refuses it; the update answers then.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.funding.state import LifecycleState, Request

with workflow.unsafe.imports_passed_through():
    from shared.contracts.money import Money
    from workflows.funding import domain
    from workflows.funding.models import (
        AMENDABLE,
        DECIDED_FOR_LATER,
        EXCHANGE_OVER,
        NOT_WITHDRAWABLE,
        OVERRIDABLE,
        AmendmentDecision,
        OverrideDecision,
        PartnerDecision,
        ResendCommand,
        Stage,
        UpdateAnswer,
        WithdrawRequest,
    )


class OfficerRequests(LifecycleState):
    async def _answer_when_done(self, request: Request[Any]) -> UpdateAnswer:
        await workflow.wait_condition(lambda: request.accepted is not None)
        if not request.accepted:
            raise ApplicationError(request.message, type="Refused", non_retryable=True)
        return UpdateAnswer(stage=self._stage, message=request.message)

    @workflow.update
    async def override_decision(self, decision: OverrideDecision) -> UpdateAnswer:
        request = Request(decision)
        self._override = request
        return await self._answer_when_done(request)

    @override_decision.validator
    def _check_override(self, decision: OverrideDecision) -> None:
        if self._stage not in OVERRIDABLE:
            raise ValueError(
                f"a decision can be overridden only during review or after it; "
                f"the application is in stage {self._stage}"
            )
        if self._override is not None:
            raise ValueError("another override is being applied")
        if decision.outcome == "declined" and self._stage is Stage.DECLINED:
            raise ValueError("the application is already declined")
        if decision.outcome == "revision_requested" and self._stage is Stage.REVISION_REQUESTED:
            raise ValueError("a revision is already requested")
        if decision.outcome == "another_review" and self._spread_round is None:
            raise ValueError(
                "another reviewer is asked for only while the reviewers' scores lie too far "
                "apart for the lifecycle to decide"
            )
        if decision.award is not None:
            self._check_award(decision.award)
            if decision.outcome != "awarded":
                raise ValueError("an award amount goes only with outcome 'awarded'")

    def _check_award(self, award: Money) -> None:
        rules = self._rules
        if award.currency != rules.currency:
            raise ValueError(f"the award must be in {rules.currency}, not {award.currency}")
        if award.amount_minor <= 0:
            raise ValueError("the award must be positive")
        if award > rules.max_award:
            raise ValueError(f"the award exceeds the program maximum {rules.max_award}")

    @workflow.update
    async def approve_amendment(self, decision: AmendmentDecision) -> UpdateAnswer:
        request = Request(decision)
        if self._stage in AMENDABLE:
            self._amendment_decision = request
        else:
            self._decide_for_later(request)
        return await self._answer_when_done(request)

    def _decide_for_later(self, request: Request[AmendmentDecision]) -> None:
        """Decided now, applied when the lifecycle can (the exchange wait, or before the final
        payment); the status event says so at once."""
        decision = request.value
        amendment = self._amendments[decision.amendment_id]
        self._amendments_decided[amendment.amendment_id] = decision.approve
        if decision.approve:
            self._approved_for_later.append(amendment)
            when = (
                "before the final payment"
                if self._stage in EXCHANGE_OVER
                else "when the wait for the exchange begins"
            )
            message = f"amendment {amendment.amendment_id} approved; applied {when}"
        else:
            message = f"amendment {amendment.amendment_id} refused: {decision.reason}"
        request.accept(message)
        self._notices.append(message)

    @approve_amendment.validator
    def _check_amendment(self, decision: AmendmentDecision) -> None:
        amendment = self._amendments.get(decision.amendment_id)
        if amendment is None:
            raise ValueError(f"no amendment {decision.amendment_id} was requested")
        if decision.amendment_id in self._amendments_decided:
            raise ValueError(f"amendment {decision.amendment_id} is already decided")
        if self._stage not in AMENDABLE | DECIDED_FOR_LATER:
            raise ValueError(
                f"amendments are decided until the final payment; stage is {self._stage}"
            )
        if self._amendment_decision is not None:
            raise ValueError("another amendment decision is being applied")
        if not decision.approve:
            return
        if self._stage in EXCHANGE_OVER and (
            amendment.cancel_exchange
            or amendment.new_exchange_start is not None
            or amendment.new_exchange_end is not None
        ):
            raise ValueError(
                "the exchange is over: only the award can still change, not its dates, "
                "nor can it be cancelled"
            )
        if amendment.new_award is not None:
            self._check_award(amendment.new_award)
        if amendment.new_exchange_end is not None:
            rules = self._rules
            start = amendment.new_exchange_start or self._app.exchange_start
            if amendment.new_exchange_end < start:
                raise ValueError("the amended exchange would end before it starts")
            if amendment.new_exchange_end > rules.exchange_period_end:
                raise ValueError(
                    f"the exchange must end by {rules.exchange_period_end} under {rules.code}"
                )
            if domain.end_of_day(amendment.new_exchange_end) <= workflow.now():
                raise ValueError("the amended end date has already passed")

    @workflow.update
    async def decide_partner(self, decision: PartnerDecision) -> UpdateAnswer:
        request = Request(decision)
        self._partner_decision = request
        return await self._answer_when_done(request)

    @decide_partner.validator
    def _check_partner_decision(self, decision: PartnerDecision) -> None:
        if self._stage is not Stage.PARTNER_UNCONFIRMED:
            raise ValueError(
                f"there is no unconfirmed partner to decide on; stage is {self._stage}"
            )
        if self._partner_decision is not None:
            raise ValueError("a partner decision is already being applied")

    @workflow.update
    async def resend_command(self, request: ResendCommand) -> UpdateAnswer:
        pending = Request(request)
        self._resend = pending
        return await self._answer_when_done(pending)

    @resend_command.validator
    def _check_resend(self, request: ResendCommand) -> None:
        if self._resend is not None:
            raise ValueError("a re-send is already under way")
        if self._stage is Stage.PAYMENT_ESCALATED and request.step in (None, "pay"):
            return
        waiting = [c for c in self._outstanding() if request.step in (None, c.step)]
        if not waiting:
            which = f" of step {request.step}" if request.step else ""
            raise ValueError(f"no command{which} is waiting for an answer in stage {self._stage}")

    @workflow.update
    async def withdraw(self, request: WithdrawRequest) -> UpdateAnswer:
        pending = Request(request)
        self._withdrawal = pending
        return await self._answer_when_done(pending)

    @withdraw.validator
    def _check_withdraw(self, request: WithdrawRequest) -> None:
        if self._stage in NOT_WITHDRAWABLE:
            raise ValueError(f"too late to withdraw: the application is in stage {self._stage}")
        if self._withdrawal is not None:
            raise ValueError("the application is already being withdrawn")

    # -- requests that can no longer be taken up ------------------------------------------

    def _refuse_out_of_stage(self) -> None:
        stage = self._stage
        if self._override is not None and stage not in OVERRIDABLE:
            self._override.refuse(f"the decision can no longer be overridden in stage {stage}")
            self._override = None
        if self._partner_decision is not None and stage is not Stage.PARTNER_UNCONFIRMED:
            self._partner_decision.refuse(f"the partner question is settled (stage {stage})")
            self._partner_decision = None
        if self._amendment_decision is not None and stage not in AMENDABLE:
            self._amendment_decision.refuse(f"amendments cannot be applied in stage {stage}")
            self._amendment_decision = None
        if self._withdrawal is not None and stage in NOT_WITHDRAWABLE:
            if stage is not Stage.WITHDRAWING:
                message = f"withdrawal refused: too late in stage {stage}"
                self._withdrawal.refuse(message)
                self._notices.append(message)
            self._withdrawal = None

    def _refuse_all_pending(self, message: str) -> None:
        for request in (
            self._override,
            self._partner_decision,
            self._amendment_decision,
            self._resend,
            self._withdrawal,
        ):
            if request is not None and request.accepted is None:
                request.refuse(message)
        self._override = self._partner_decision = self._amendment_decision = None
        self._resend = self._withdrawal = None
