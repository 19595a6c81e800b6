"""The console's decision forms: each read into the lifecycle API's own body, described in
a sentence for the confirmation step, and run through the API's own handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from fastapi import Response, status
from pydantic import BaseModel, ValidationError
from temporalio.client import Client

from shared.auth import Principal
from shared.contracts.money import Money
from shared.web.forms import Problems, minor_units
from workflows.funding import api
from workflows.funding.models import LifecycleView, UpdateAnswer

OUTCOMES: Final = {
    "awarded": "award",
    "declined": "decline",
    "revision_requested": "ask for a revision",
    "another_review": "add another reviewer (scores too far apart)",
}


class FormProblemsError(Exception):
    def __init__(self, problems: Problems) -> None:
        super().__init__("; ".join(m for ms in problems.values() for m in ms))
        self.problems = problems


@dataclass(frozen=True)
class Decision:
    """A decision form as the API takes it: its body, and what it does in words."""

    action: str
    body: BaseModel
    words: str
    run: Callable[[Principal, Client, Response], Awaitable[UpdateAnswer]]

    async def __call__(self, officer: Principal, client: Client) -> str:
        response = Response()
        answer = await self.run(officer, client, response)
        if response.status_code == status.HTTP_202_ACCEPTED:
            return f"Accepted: the lifecycle is still applying it (now {answer.stage.value})."
        return f"Done: {answer.message}."


def _body(model: type[BaseModel], **fields: Any) -> Any:
    try:
        return model(**fields)
    except ValidationError as error:
        raise FormProblemsError(Problems.of_validation(error)) from error


def _reason(form: dict[str, str]) -> str:
    return form.get("reason", "").strip()


def decision(action: str, form: dict[str, str], view: LifecycleView) -> Decision:
    """The decision ``form`` asks for; ``FormProblemsError`` says what is wrong with it."""
    app_id = view.application_id
    if action == "override":
        outcome = form.get("outcome", "")
        award: Money | None = None
        if outcome == "awarded" and form.get("award", "").strip():
            currency = view.amounts.requested.currency
            try:
                award = Money(amount_minor=minor_units(form["award"], currency), currency=currency)
            except ValueError as error:
                raise FormProblemsError(Problems({"award": [f"The award {error}."]})) from error
        override = _body(api.OverrideBody, outcome=outcome, reason=_reason(form), award=award)
        amount = f" {award}" if award else ""
        return Decision(
            action,
            override,
            f"Override the decision: {OUTCOMES[override.outcome]}{amount}.",
            lambda who, client, answer: api.override_decision(
                app_id, override, who, client, answer
            ),
        )
    if action == "partner-decision":
        partner = _body(
            api.PartnerDecisionBody, proceed=form.get("proceed") == "yes", reason=_reason(form)
        )
        words = (
            "Review the application without the partner's confirmation."
            if partner.proceed
            else "Close the application: the partner never confirmed."
        )
        return Decision(
            action,
            partner,
            words,
            lambda who, client, answer: api.decide_partner(app_id, partner, who, client, answer),
        )
    if action == "amendment":
        amendment_id = form.get("amendment_id", "")
        approve = form.get("approve") == "yes"
        amendment = _body(api.AmendmentBody, approve=approve, reason=_reason(form))
        verb = "Approve" if approve else "Refuse"
        return Decision(
            action,
            amendment,
            f"{verb} amendment {amendment_id}.",
            lambda who, client, answer: api.approve_amendment(
                app_id, amendment_id, amendment, who, client, answer
            ),
        )
    if action == "resend":
        resend = _body(api.ResendBody, step=form.get("step", "").strip() or None)
        which = f"the {resend.step} commands" if resend.step else "every waiting command"
        return Decision(
            action,
            resend,
            f"Send {which} again.",
            lambda who, client, answer: api.resend_command(app_id, resend, who, client, answer),
        )
    if action == "withdraw":
        withdraw = _body(api.WithdrawBody, reason=_reason(form))
        return Decision(
            action,
            withdraw,
            "Withdraw the application on the applicant's behalf: the reservation is "
            "released and what was paid is asked back.",
            lambda who, client, answer: api.withdraw(app_id, withdraw, who, client, answer),
        )
    raise FormProblemsError(Problems({"": [f"There is no decision called {action!r}."]}))
