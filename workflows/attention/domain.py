"""The attention list's rules: when an escalation is already resolved, refunds past their
last reminder, and the officers' mail."""

from __future__ import annotations

from shared.contracts.disbursement import RefundOverdue
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
    "refund_overdue": "a refund is still due after the last reminder",
    "other": "the lifecycle needs an officer",
}


# Kinds raised and cleared by disbursement's refund events, not by the lifecycle: a status
# event never lists them as waiting, and must not clear them.
REFUND_OVERDUE: EscalationKind = "refund_overdue"
NOT_CLEARED_BY_STATUS: tuple[EscalationKind, ...] = (REFUND_OVERDUE,)
# The stage shown for a refund item: disbursement does not know the lifecycle's stage.
REFUND_STAGE = "refund_due"


def refund_escalation(overdue: RefundOverdue) -> EscalatedToOfficer:
    """A refund past its last reminder, as the escalation the officers' mail describes."""
    return EscalatedToOfficer(
        application_id=overdue.application_id,
        stage=REFUND_STAGE,
        reason=f"refund {overdue.refund_id}: {overdue.reason}",
        kind=REFUND_OVERDUE,
        program_code=overdue.program_code,
    )


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
