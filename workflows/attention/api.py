"""The officers' attention list over HTTP (program officers and admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from shared.auth import OFFICERS, Principal, require
from shared.contracts.workflows import EscalationKind
from shared.http import Offset, limit_query
from shared.service import the_service
from workflows.attention.schemas import AttentionPage
from workflows.attention.service import AttentionService

Officer = Annotated[Principal, Depends(require(*OFFICERS))]
Attention = Annotated[AttentionService, Depends(the_service)]

router = APIRouter(prefix="/v1/attention", tags=["attention"])


@router.get(
    "",
    response_model=AttentionPage,
    summary="What waits for a program officer",
    description="Escalated applications, oldest first: partner never confirmed, reviewers "
    "short, reviews late, payment failed for good, report overdue, amendment waiting, a "
    "service not answering, a refund still due after the last reminder. An item is cleared "
    "when its cause is resolved (a refund item when the refund is received); cleared items "
    "are listed only with `include_cleared=true`.",
)
async def attention_list(
    _officer: Officer,
    service: Attention,
    program: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$", description="Only this program.")
    ] = None,
    kind: Annotated[EscalationKind | None, Query(description="Only this kind.")] = None,
    include_cleared: Annotated[bool, Query(description="Also the resolved items.")] = False,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> AttentionPage:
    async with service.reading() as work:
        return await service.attention(
            work,
            program_code=program,
            kind=kind,
            include_cleared=include_cleared,
            limit=limit,
            offset=offset,
        )
