"""HTTP routes: the officers' budgets, payments and reconciliation, and the finance webhooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError

from services.disbursement.domain import SignatureError, verify_webhook
from services.disbursement.schemas import (
    BudgetReport,
    BudgetUpdate,
    FinanceNotice,
    KnownCurrency,
    PayeeUpdate,
    PayeeView,
    PaymentHistory,
    RateUpdate,
    RateView,
    RefundNotice,
    RefundWebhookAnswer,
    WebhookAnswer,
)
from services.disbursement.service import DisbursementService
from services.disbursement.service.answers import AnswerBook
from shared.auth import OFFICERS, Principal, require
from shared.http import Offset, limit_query
from shared.service import the_service

Disbursement = Annotated[DisbursementService, Depends(the_service)]
Officer = Annotated[Principal, Depends(require(*OFFICERS))]
ProgramCode = Annotated[str, Path(min_length=1, max_length=40, examples=["AUPAP"])]
Cycle = Annotated[str, Path(min_length=1, max_length=20, examples=["2027"])]
CurrencyPath = Annotated[KnownCurrency, Path(examples=["USD"])]


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its local ``$defs`` written in place (the webhook reads a raw body)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    resolved.get("discriminator", {}).pop("mapping", None)
    return resolved


router = APIRouter()


@router.get("/v1/budgets", tags=["budgets"], summary="Every program budget and its balances")
async def list_budgets(
    service: Disbursement,
    _officer: Officer,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> list[BudgetReport]:
    async with service.reading() as work:
        return await service.budget_reports(work, limit=limit, offset=offset)


@router.get(
    "/v1/budgets/{program_code}/{cycle}",
    tags=["budgets"],
    summary="A program budget's balances",
    responses={404: {"description": "no budget for this program and cycle"}},
)
async def read_budget(
    program_code: ProgramCode, cycle: Cycle, service: Disbursement, _officer: Officer
) -> BudgetReport:
    async with service.reading() as work:
        return await service.budget_report(work, program_code, cycle)


@router.put(
    "/v1/budgets/{program_code}/{cycle}",
    tags=["budgets"],
    summary="Set a program's budget for a cycle",
    responses={409: {"description": "below what is committed, or another currency"}},
)
async def set_budget(
    program_code: ProgramCode,
    cycle: Cycle,
    body: BudgetUpdate,
    service: Disbursement,
    _officer: Officer,
) -> BudgetReport:
    async with service.work() as work:
        return await service.set_budget(work, program_code, cycle, body.amount, body.reason)


@router.get(
    "/v1/applications/{application_id}/payments",
    tags=["payments"],
    summary="An application's award, payments, settlements and ledger entries",
    responses={404: {"description": "nothing reserved or paid for this application"}},
)
async def payment_history(
    application_id: Annotated[str, Path(min_length=1, max_length=200)],
    service: Disbursement,
    _officer: Officer,
) -> PaymentHistory:
    async with service.reading() as work:
        return await service.payment_history(work, application_id)


@router.get(
    "/v1/reconciliation",
    tags=["payments"],
    summary="Instructions against settlements, refunds asked against received",
    description="Findings: instructions overdue, duplicate, unknown or mismatched "
    "settlements; refunds still due, receipts held or for unknown refunds. `refunds` (JSON "
    "only) sets the refunds asked of finance against what it received, per currency.",
    responses={200: {"content": {"text/csv": {}}}},
)
async def reconciliation(
    service: Disbursement,
    _officer: Officer,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
) -> Any:
    async with service.reading() as work:
        report = await service.reconciliation(work)
    if format == "csv":
        return Response(
            report.csv(),
            media_type="text/csv",
            headers={"Content-Disposition": 'attachment; filename="reconciliation.csv"'},
        )
    return report


@router.get("/v1/fx-rates", tags=["rates"], summary="The exchange rates used for payments")
async def list_rates(
    service: Disbursement,
    _officer: Officer,
    limit: int = limit_query(100, 500),
    offset: Offset = 0,
) -> list[RateView]:
    async with service.reading() as work:
        return await service.rates(work, limit=limit, offset=offset)


@router.put(
    "/v1/fx-rates/{base_currency}/{quote_currency}",
    tags=["rates"],
    summary="Set the rate from a program currency to a payment currency",
    responses={409: {"description": "a currency pays in itself at 1, a rate that cannot be set"}},
)
async def set_rate(
    base_currency: CurrencyPath,
    quote_currency: CurrencyPath,
    body: RateUpdate,
    service: Disbursement,
    officer: Officer,
) -> RateView:
    async with service.work() as work:
        return await service.set_rate(
            work, base_currency, quote_currency, body.rate, officer.subject
        )


@router.put(
    "/v1/payees/{payee_reference}",
    tags=["rates"],
    summary="Set the currency a payee is paid in",
)
async def set_payee(
    payee_reference: Annotated[str, Path(min_length=1, max_length=200)],
    body: PayeeUpdate,
    service: Disbursement,
    _officer: Officer,
) -> PayeeView:
    async with service.work() as work:
        return await service.set_payee(work, payee_reference, body.currency)


DeliveryId = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        description="The delivery's id, the same when finance delivers it again: a repeated "
        "delivery is answered as before and applied once.",
    ),
]
Timestamp = Annotated[str | None, Header(max_length=20, description="Unix time in seconds.")]
Signature = Annotated[str | None, Header(max_length=200, description="Hex HMAC-SHA256.")]


def _finance_webhook(
    path: str,
    book: Callable[[DisbursementService], AnswerBook[Any, Any, Any]],
    adapter: TypeAdapter[Any],
    **documentation: Any,
) -> None:
    """A signed webhook by which finance answers one kind of request (see ``answers``)."""
    body_schema = _inline_refs(adapter.json_schema())
    documentation["responses"] = {
        401: {"description": "unsigned, wrongly signed or stale"},
        **documentation["responses"],
    }

    @router.post(
        path,
        tags=["finance"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }
        },
        **documentation,
    )
    async def finance_answer(
        request: Request,
        service: Disbursement,
        x_grantflow_delivery: DeliveryId = None,
        x_grantflow_timestamp: Timestamp = None,
        x_grantflow_signature: Signature = None,
    ) -> JSONResponse:
        body, delivery_id, signature = await _signed(
            request, service, x_grantflow_delivery, x_grantflow_timestamp, x_grantflow_signature
        )
        notice = _parsed(adapter, body)

        async def answer() -> tuple[int, dict[str, Any]]:
            async with service.work() as work:
                return await service.answered_on_webhook(
                    work, book(service), delivery_id, signature, notice
                )

        try:
            status_code, answered = await answer()
        except IntegrityError:  # the same delivery at the same moment: the first one's answer
            status_code, answered = await answer()
        return JSONResponse(answered, status_code=status_code)


_finance_webhook(
    "/v1/finance/settlements",
    lambda service: service.payment_answers,
    TypeAdapter(FinanceNotice),
    response_model=WebhookAnswer,
    name="finance_settlement",
    summary="Settlement or failure from a finance system (signed webhook)",
    description=(
        "The alternative to `finance.payment.settled.v1` / `finance.payment.failed.v1`. "
        "Sign with HMAC-SHA256 over `<X-Grantflow-Timestamp>.` followed by the raw body, "
        "hex in `X-Grantflow-Signature`; the timestamp is Unix seconds, at most 5 minutes "
        "from now. Each delivery has an id in `X-Grantflow-Delivery`: a delivery repeated "
        "(the same id, or the same signed request again) gets the first answer and is "
        "applied once. The same settlement sent here and on Kafka counts once. A "
        "settlement whose amount or currency differs from its instruction is not applied: "
        "it is held for reconciliation (409)."
    ),
    responses={
        404: {"description": "no such instruction (recorded for reconciliation)"},
        409: {"description": "another amount or currency than instructed: held, not applied"},
    },
)
_finance_webhook(
    "/v1/finance/refunds",
    lambda service: service.refund_answers,
    TypeAdapter(RefundNotice),
    response_model=RefundWebhookAnswer,
    name="finance_refund",
    summary="Refund received, or not collected, from a finance system (signed webhook)",
    description=(
        "The alternative to `finance.refund.received.v1` / `finance.refund.failed.v1`, "
        "signed and delivered as `/v1/finance/settlements` (the same secret, headers and "
        "delivery ids). Money received moves out of the application's `refund_due` back "
        "into the program's available budget, once per `finance_reference` however often "
        "it is delivered, here or on Kafka; a part leaves the rest due. A receipt for more "
        "than is outstanding, or in another currency, is not applied: it is held for "
        "reconciliation (409)."
    ),
    responses={
        404: {"description": "no such refund (recorded for reconciliation)"},
        409: {"description": "more than outstanding, or another currency: held, not applied"},
    },
)


async def _signed(
    request: Request,
    service: DisbursementService,
    delivery_id: str | None,
    timestamp: str | None,
    signature: str | None,
) -> tuple[bytes, str, str]:
    """The body of a delivery whose signature holds, its delivery id and its signature."""
    body = await request.body()
    try:
        verify_webhook(
            service.settings.finance_webhook_secret.get_secret_value(),
            timestamp=timestamp,
            signature=signature,
            body=body,
            now=service.now(),
        )
    except SignatureError as error:  # authentication, not a refusal: 401 like a bad token
        raise HTTPException(401, detail=str(error)) from error
    assert signature is not None
    if delivery_id is None:  # read after the signature: strangers learn nothing
        raise RequestValidationError(
            [
                {
                    "type": "missing",
                    "loc": ("header", "X-Grantflow-Delivery"),
                    "msg": "each delivery needs its id",
                }
            ]
        )
    return body, delivery_id, signature.strip().lower()


def _parsed(adapter: TypeAdapter[Any], body: bytes) -> Any:
    try:
        return adapter.validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            [
                {"type": problem["type"], "loc": ("body", *problem["loc"]), "msg": problem["msg"]}
                for problem in error.errors(include_url=False, include_context=False)
            ]
        ) from error
