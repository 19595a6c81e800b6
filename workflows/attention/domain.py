"""The attention list's rules: when an escalation is already resolved, and the officers' mail."""

from __future__ import annotations

from shared.contracts.workflows import EscalatedToOfficer, EscalationKind
from shared.mail import Mail
from workflows.persistence import LastStatus

KIND_WORDS: dict[EscalationKind, str] = {
    "partner_unconfirmed": "the partner city never confirmed",
    "reviewers_short": "too few eligible reviewers",
    "reviews_late": "the review deadline passed again and again",
    "payment_failing": "a payment failed for good",
    "report_overdue": "the post-exchange report is overdue",
    "amendment_waiting": "an amendment waits for a decision",
    "wide_score_spread": "the reviewers' scores lie far apart",
    "command_unanswered": "a service does not answer",
    "other": "the lifecycle needs an officer",
}


def resolved_before_arrival(escalation: EscalatedToOfficer, last: LastStatus) -> bool:
    """A status event newer than the escalation already said its kind is not waiting.

    (The two arrive on different topics, so their order is not kept.)
    """
    raised = escalation.sequence or 0
    return last.sequence > raised and escalation.kind not in last.waiting


def officer_mail(escalation: EscalatedToOfficer, officers: list[str]) -> Mail:
    application = escalation.application_id
    program = f" ({escalation.program_code})" if escalation.program_code else ""
    return Mail(
        to=tuple(officers),
        subject=f"Application {application}{program}: {KIND_WORDS[escalation.kind]}",
        body=(
            f"Application {application}{program} needs a program officer.\n\n"
            f"Stage: {escalation.stage}\n"
            f"Why: {escalation.reason}\n\n"
            f"The lifecycle: GET /v1/lifecycle/{application} on the workflows API.\n"
            "Everything waiting for an officer: GET /v1/attention.\n"
        ),
        application_id=application,
    )
