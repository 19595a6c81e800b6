"""Every ``workflow.patched`` id of the lifecycle, and the old behaviour kept behind it.

A patch keeps lifecycles that were recorded (or started) before a change replaying the
commands they issued then. Its old branch can go, with the id, once no lifecycle started
before the change runs any more and the histories under tests/workflows/histories/ that
take it are retired.
"""

from __future__ import annotations

from shared.contracts.intake import ApplicationSubmitted

# Screening asks the program rules (``ProgramRules.eligibility_problems``): the matching
# share is of the budget total, not of the requested amount, so the outcome may differ.
SHARED_ELIGIBILITY_RULES = "shared-eligibility-rules"
# Disbursement alone retries finance: a DisbursementFailed is final, and the lifecycle
# escalates at once instead of instructing the payment again up to payment_max_attempts.
PAYMENT_FAILURE_IS_FINAL = "payment-failure-is-final"
# An amendment that arrives is escalated: an officer must approve or refuse it.
AMENDMENT_ESCALATION = "amendment-escalation"
# An officer's re-send of silent commands is announced in a status event, which tells the
# attention list that the escalation of those commands is over.
RESEND_ANNOUNCED = "resend-announced"
# Amendments wait for an officer until the final payment: one that arrives is acknowledged
# in a status event, and one arriving after the exchange is escalated too.
AMENDMENTS_UNTIL_FINAL_PAYMENT = "amendments-until-final-payment"
# An exchange with several partner cities asks each to confirm and waits for every one.
EVERY_PARTNER_CONFIRMS = "every-partner-confirms"
# Reviewers' weighted totals further apart than the program's threshold: an officer decides.
WIDE_SPREAD_TO_OFFICER = "wide-spread-to-officer"
# The lifecycle view is kept in the workflow's memo whenever it changes, so readers take it
# from the server (``describe``) rather than with a query: a query answered by a worker that
# had just restarted could make the worker write a history that no longer replays
# (temporalio 1.35).
LIFECYCLE_IN_MEMO = "lifecycle-in-memo"


def screen_before_shared_rules(application: ApplicationSubmitted) -> list[str]:
    """Screening as it was before ``SHARED_ELIGIBILITY_RULES`` (frozen: replay only)."""
    rules = application.rules
    problems: list[str] = []
    if not application.member_in_good_standing:
        problems.append(f"{application.member_name} is not in good standing (a report is overdue)")
    countries = rules.eligible_partner_countries
    if countries and application.partner.country not in countries:
        problems.append(
            f"partner country {application.partner.country} is not eligible "
            f"(eligible: {', '.join(countries)})"
        )
    if rules.applicant_countries and application.member_country not in rules.applicant_countries:
        problems.append(f"applicant country {application.member_country} is not eligible")
    if application.focus_area not in rules.focus_areas:
        problems.append(f"focus area {application.focus_area} is not funded by {rules.code}")
    if application.exchange_end < application.exchange_start:
        problems.append("the exchange ends before it starts")
    if not (
        rules.exchange_period_start
        <= application.exchange_start
        <= application.exchange_end
        <= rules.exchange_period_end
    ):
        problems.append(
            f"the exchange must take place between {rules.exchange_period_start} "
            f"and {rules.exchange_period_end}"
        )
    if application.requested.currency != rules.currency:
        problems.append(f"the request must be in {rules.currency}")
        return problems
    if application.requested.amount_minor <= 0:
        problems.append("the requested amount must be positive")
    matching_currencies = {
        application.matching_cash.currency,
        application.matching_in_kind.currency,
    }
    if matching_currencies != {rules.currency}:
        problems.append(f"matching funds must be stated in {rules.currency}")
    else:
        matching = application.matching_cash + application.matching_in_kind
        needed = application.requested.percent(rules.min_matching_bp)
        if matching < needed:
            problems.append(f"matching funds {matching} are below the required {needed}")
    if rules.youth_program and application.youth == 0:
        problems.append(f"{rules.code} is a youth program: the delegation needs youth")
    return problems
