"""The officers' lifecycle API: a thin HTTP edge over the workflow's memo and updates.

Reads take the ``LifecycleView`` the workflow keeps in its memo, from the server alone:
no worker takes part, so a read works while the worker restarts, and never makes a cold
worker answer a query (which, in temporalio 1.35, could make it write a history that no
longer replays). Lifecycles started before the memo existed are still asked by query.

Each action is a workflow update whose validator checks it against the lifecycle's state:
answered 200 when the workflow took it up, 409 with the validator's reason when it was
refused, 202 when it was accepted but is still being applied.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.exceptions import FailureError
from temporalio.service import RPCError, RPCStatusCode

from shared.auth import OFFICERS, Principal, require
from shared.contracts.money import Money
from shared.errors import ConflictError, NotFoundError
from shared.http import Offset, limit_query
from workflows.funding.models import (
    LIFECYCLE_MEMO,
    WORKFLOW_ID_PREFIX,
    AmendmentDecision,
    LifecycleView,
    OverrideDecision,
    PartnerDecision,
    ResendCommand,
    Stage,
    UpdateAnswer,
    WithdrawRequest,
    workflow_id,
)
from workflows.funding.search_attributes import MEMBER, PROGRAM, STAGE, STAGE_ENTERED_AT
from workflows.funding.workflow import ExchangeFundingWorkflow

# How long a request waits for the workflow to act before answering 202.
UPDATE_ANSWER_TIMEOUT = 10.0

Officer = Annotated[Principal, Depends(require(*OFFICERS))]
ApplicationId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


async def temporal_client(request: Request) -> Client:
    client: Client | None = getattr(request.app.state, "temporal", None)
    if client is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "not connected to Temporal yet")
    return client


Temporal = Annotated[Client, Depends(temporal_client)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OverrideBody(Body):
    outcome: Literal["awarded", "declined", "revision_requested", "another_review"] = Field(
        description="'another_review' adds one reviewer to the round; only while the "
        "reviewers' scores lie too far apart for the lifecycle to decide."
    )
    reason: str = Field(min_length=1, max_length=2000)
    award: Money | None = Field(default=None, description="With 'awarded': the amount.")


class AmendmentBody(Body):
    approve: bool = Field(default=True, description="False refuses the amendment.")
    reason: str = Field(default="", max_length=2000)


class PartnerDecisionBody(Body):
    proceed: bool = Field(description="True: review without the partner's confirmation.")
    reason: str = Field(min_length=1, max_length=2000)


class ResendBody(Body):
    step: str | None = Field(
        default=None,
        max_length=50,
        description="Only this step's commands (e.g. 'pay', 'reserve'); default: all.",
    )


class WithdrawBody(Body):
    reason: str = Field(min_length=1, max_length=2000)


class StuckApplication(BaseModel):
    application_id: str
    workflow_id: str
    stage: str | None
    stage_entered_at: datetime | None
    program_code: str | None
    member_id: str | None


class StuckApplications(BaseModel):
    stage: Stage | None
    stuck_for_days: int
    entered_before: datetime
    applications: list[StuckApplication]
    limit: int
    offset: int


router = APIRouter(
    prefix="/v1/lifecycle",
    tags=["lifecycle"],
    responses={503: {"description": "Temporal (or the token signing keys) does not answer."}},
)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No lifecycle for this application."}
}
_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"description": "Refused by the lifecycle; the detail says why."},
    202: {"description": "Accepted; the lifecycle is still applying it."},
    **_NOT_FOUND,
}


@router.get(
    "",
    response_model=StuckApplications,
    summary="Applications stuck in a stage",
    description="Running lifecycles that entered their current stage at least "
    "`stuck_for_days` days ago (a visibility query on the Grantflow* search attributes).",
)
async def stuck_applications(
    _officer: Officer,
    client: Temporal,
    stage: Annotated[Stage | None, Query(description="Only this stage.")] = None,
    stuck_for_days: Annotated[int, Query(ge=0, le=3650)] = 0,
    program: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
    limit: int = limit_query(200, 1000),
    offset: Offset = 0,
) -> StuckApplications:
    entered_before = datetime.now(UTC) - timedelta(days=stuck_for_days)
    clauses = [
        "WorkflowType = 'ExchangeFundingWorkflow'",
        "ExecutionStatus = 'Running'",
        f"GrantflowStageEnteredAt <= '{entered_before.strftime('%Y-%m-%dT%H:%M:%SZ')}'",
    ]
    if stage is not None:
        clauses.append(f"GrantflowStage = '{stage.value}'")
    if program is not None:
        clauses.append(f"GrantflowProgram = '{program}'")
    found: list[StuckApplication] = []
    # Visibility queries have no offset (and SQL visibility no custom order): the page is
    # read past the ones before it, in the server's order (the newest start first).
    skipped = 0
    async for execution in client.list_workflows(" AND ".join(clauses), limit=offset + limit):
        if skipped < offset:
            skipped += 1
            continue
        attributes = execution.typed_search_attributes
        found.append(
            StuckApplication(
                application_id=execution.id.removeprefix(WORKFLOW_ID_PREFIX),
                workflow_id=execution.id,
                stage=attributes.get(STAGE),
                stage_entered_at=attributes.get(STAGE_ENTERED_AT),
                program_code=attributes.get(PROGRAM),
                member_id=attributes.get(MEMBER),
            )
        )
    return StuckApplications(
        stage=stage,
        stuck_for_days=stuck_for_days,
        entered_before=entered_before,
        applications=found,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{application_id}",
    response_model=LifecycleView,
    responses=_NOT_FOUND,
    summary="An application's lifecycle",
    description="Stage, deadlines ahead, history of transitions, amounts, commands "
    "waiting for an answer and amendments waiting for an officer.",
)
async def read_lifecycle(
    application_id: ApplicationId, _officer: Officer, client: Temporal
) -> LifecycleView:
    try:
        return await current_view(client.get_workflow_handle(workflow_id(application_id)))
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise NotFoundError(f"no lifecycle for application {application_id}") from error
        raise


async def current_view(handle: WorkflowHandle[Any, Any]) -> LifecycleView:
    """The view the lifecycle last kept in its memo (a query for one started before)."""
    memo = await (await handle.describe()).memo()
    if LIFECYCLE_MEMO in memo:
        return LifecycleView.model_validate(memo[LIFECYCLE_MEMO])
    queried: LifecycleView = await handle.query(ExchangeFundingWorkflow.lifecycle)
    return queried


async def _update(
    client: Client, application_id: str, update: Any, argument: BaseModel, response: Response
) -> UpdateAnswer:
    handle = client.get_workflow_handle(workflow_id(application_id))
    try:
        update_handle = await handle.start_update(
            update, argument, wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        answer: UpdateAnswer = await asyncio.wait_for(
            update_handle.result(), timeout=UPDATE_ANSWER_TIMEOUT
        )
    except WorkflowUpdateFailedError as error:
        raise ConflictError(_reason(error)) from error
    except TimeoutError:
        response.status_code = status.HTTP_202_ACCEPTED
        view = await current_view(handle)
        return UpdateAnswer(stage=view.stage, message="accepted; the lifecycle is applying it")
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        try:
            await handle.describe()
        except RPCError as missing:
            raise NotFoundError(f"no lifecycle for application {application_id}") from missing
        raise ConflictError("the lifecycle has ended") from error
    return answer


def _reason(error: WorkflowUpdateFailedError) -> str:
    """The validator's (or the handler's) message, without the exception type."""
    cause = error.cause
    if isinstance(cause, FailureError):
        return cause.message
    return str(cause or error)


@router.post(
    "/{application_id}/override",
    response_model=UpdateAnswer,
    responses=_REFUSED,
    summary="Override the decision",
    description="Award (optionally a lower amount), decline, ask for a revision, or (when "
    "the reviewers' scores lie too far apart) add another reviewer, with a reason; possible "
    "during review and while a decline can still be overridden.",
)
async def override_decision(
    application_id: ApplicationId,
    body: OverrideBody,
    officer: Officer,
    client: Temporal,
    response: Response,
) -> UpdateAnswer:
    decision = OverrideDecision(
        outcome=body.outcome, reason=body.reason, award=body.award, officer=officer.subject
    )
    return await _update(
        client, application_id, ExchangeFundingWorkflow.override_decision, decision, response
    )


@router.post(
    "/{application_id}/amendments/{amendment_id}/approve",
    response_model=UpdateAnswer,
    responses=_REFUSED,
    summary="Approve (or refuse) an amendment",
    description="Moves dates or changes the award, in any stage from the award to the final "
    "payment (a decision the lifecycle cannot apply at once is held until it can; after the "
    "exchange only the award can change, and a cut below what was paid is refunded); "
    "`approve: false` refuses it. Cancelling the exchange requests a refund of the advance.",
)
async def approve_amendment(
    application_id: ApplicationId,
    amendment_id: Annotated[str, Field(min_length=1, max_length=100)],
    body: AmendmentBody,
    officer: Officer,
    client: Temporal,
    response: Response,
) -> UpdateAnswer:
    decision = AmendmentDecision(
        amendment_id=amendment_id, approve=body.approve, reason=body.reason, officer=officer.subject
    )
    return await _update(
        client, application_id, ExchangeFundingWorkflow.approve_amendment, decision, response
    )


@router.post(
    "/{application_id}/partner-decision",
    response_model=UpdateAnswer,
    responses=_REFUSED,
    summary="Decide on a partner that never confirmed",
)
async def decide_partner(
    application_id: ApplicationId,
    body: PartnerDecisionBody,
    officer: Officer,
    client: Temporal,
    response: Response,
) -> UpdateAnswer:
    decision = PartnerDecision(proceed=body.proceed, reason=body.reason, officer=officer.subject)
    return await _update(
        client, application_id, ExchangeFundingWorkflow.decide_partner, decision, response
    )


@router.post(
    "/{application_id}/resend",
    response_model=UpdateAnswer,
    responses=_REFUSED,
    summary="Re-send a stuck command",
    description="Sends again, with the same command id, the commands still waiting for an "
    "answer; after a payment failed for good, instructs it anew (a new command with the "
    "same idempotency key, so it is paid at most once).",
)
async def resend_command(
    application_id: ApplicationId,
    body: ResendBody,
    officer: Officer,
    client: Temporal,
    response: Response,
) -> UpdateAnswer:
    request = ResendCommand(step=body.step, officer=officer.subject)
    return await _update(
        client, application_id, ExchangeFundingWorkflow.resend_command, request, response
    )


@router.post(
    "/{application_id}/withdraw",
    response_model=UpdateAnswer,
    responses=_REFUSED,
    summary="Withdraw on the applicant's behalf",
    description="Releases the reservation and requests refunds of what was paid; "
    "refused once close-out has started.",
)
async def withdraw(
    application_id: ApplicationId,
    body: WithdrawBody,
    officer: Officer,
    client: Temporal,
    response: Response,
) -> UpdateAnswer:
    request = WithdrawRequest(reason=body.reason, requested_by=officer.subject)
    update = ExchangeFundingWorkflow.withdraw
    return await _update(client, application_id, update, request, response)
