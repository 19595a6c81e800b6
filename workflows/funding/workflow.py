"""ExchangeFundingWorkflow: one application from submission to close-out.

The lifecycle reads top to bottom in ``_lifecycle``; its parts live in the layers it is
built from (see ``workflows.funding.state``): officers' requests, the command channel,
the services' events, money tracking, and the stages before and after the award.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.funding.events import ServiceEvents
from workflows.funding.exchange import ExchangeStages
from workflows.funding.selection import SelectionStages
from workflows.funding.state import Withdrawn

with workflow.unsafe.imports_passed_through():
    from shared.contracts.workflows import Amounts, Deadline
    from workflows.funding import domain
    from workflows.funding.models import (
        FundingInput,
        FundingResult,
        LifecycleView,
        Stage,
        StageView,
        Transition,
    )


@workflow.defn(name="ExchangeFundingWorkflow")
class ExchangeFundingWorkflow(SelectionStages, ExchangeStages, ServiceEvents):
    @workflow.init
    def __init__(self, input: FundingInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: FundingInput) -> FundingResult:
        try:
            await self._lifecycle()
        except Withdrawn:
            await self._undo_for_withdrawal()
        self._finished = True
        self._refuse_all_pending("the lifecycle has ended")
        self._flush_notices()
        await self._flush()
        self._show_lifecycle()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return FundingResult(
            application_id=self._app.application_id,
            stage=self._stage,
            reason=self._stage_reason,
            amounts=self._amounts(),
        )

    async def _lifecycle(self) -> None:
        self._enter(Stage.SCREENING, "checking eligibility against the program rules")
        problems = self._screening_problems()
        if problems:
            self._enter(Stage.INELIGIBLE, "; ".join(problems))
            return
        if not await self._partner_confirmation():
            return
        decision = await self._decide()
        if decision is None:
            return
        award = decision.award or domain.award_for(self._requested, self._rules)
        self._award = award
        self._tranches = self._rules.tranche_plan(award)
        self._enter(Stage.AWARDED, f"awarded {award}: {decision.reason}")
        if not await self._reserve_funds():
            return
        for index, tranche in enumerate(self._rules.tranches, start=1):
            if tranche.due == "after_award":
                await self._pay(index, self._tranches[index - 1], Stage.ADVANCE_PAYMENT)
        if not await self._await_exchange():
            return
        await self._collect_report()
        await self._review_report()
        await self._apply_award_changes()
        await self._close_out()

    # -- queries ---------------------------------------------------------------------------

    @workflow.query
    def stage(self) -> StageView:
        return StageView(
            stage=self._stage,
            entered_at=self._stage_entered_at,
            previous=self._previous,
            reason=self._stage_reason,
        )

    @workflow.query
    def deadlines(self) -> list[Deadline]:
        return self._deadline_list()

    @workflow.query
    def history(self) -> list[Transition]:
        return list(self._history)

    @workflow.query
    def amounts(self) -> Amounts:
        return self._amounts()

    @workflow.query
    def lifecycle(self) -> LifecycleView:
        return self._lifecycle_view()
