"""Each submission rule with a passing and a failing case, the catalog, and the partner link."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.intake.catalog import CatalogError, load_catalog
from services.intake.domain import (
    DRAFT_EXAMPLE,
    REQUIRED_FIELDS,
    DraftFields,
    MemberFacts,
    check_amendment,
    check_submission,
    partner_confirmation_subject,
    read_partner_link,
    sign_partner_link,
)
from shared.contracts.money import Money

CATALOG = load_catalog("default")
TODAY = date(2026, 11, 27)
RATES = {("KES", "USD"): "0.0077", ("CNY", "USD"): "0.1385", ("MXN", "USD"): "0.0520"}
DENVER = MemberFacts(
    member_id="demo-member-1",
    name="Denver",
    country="US",
    membership_active=True,
    good_standing=True,
)


def usd(dollars: float) -> dict[str, Any]:
    return {"amount_minor": round(dollars * 100), "currency": "USD"}


def fields_wrong(
    *,
    member: MemberFacts = DENVER,
    today: date = TODAY,
    lead_days: int = 1,
    catalog_name: str = "default",
    **changes: Any,
) -> list[str]:
    """The fields the checks complain about for the example draft with ``changes``."""
    body = copy.deepcopy(DRAFT_EXAMPLE)
    body.update(changes)
    draft = DraftFields.model_validate(body)
    catalog = CATALOG if catalog_name == "default" else load_catalog(catalog_name)
    checked = check_submission(
        draft,
        member=member,
        rules=catalog.get(draft.program_code),
        rates=RATES,
        today=today,
        exchange_lead_days=lead_days,
    )
    return [problem.field for problem in checked.problems]


def messages(**changes: Any) -> str:
    body = copy.deepcopy(DRAFT_EXAMPLE)
    body.update(changes)
    checked = check_submission(
        DraftFields.model_validate(body),
        member=DENVER,
        rules=CATALOG.get(body["program_code"]),
        rates=RATES,
        today=TODAY,
        exchange_lead_days=1,
    )
    return " | ".join(problem.message for problem in checked.problems)


def test_the_example_draft_passes_every_check() -> None:
    assert fields_wrong() == []


def test_program_window_must_be_open() -> None:
    assert fields_wrong(today=date(2027, 3, 31)) == []
    assert fields_wrong(today=date(2027, 4, 1)) == ["program_code"]
    assert fields_wrong(today=date(2026, 9, 30), lead_days=0) == ["program_code"]
    assert "closed on 2027-03-31" in " ".join(
        p.message
        for p in check_submission(
            DraftFields.model_validate(DRAFT_EXAMPLE),
            member=DENVER,
            rules=CATALOG.get("AUPAP"),
            rates=RATES,
            today=date(2027, 4, 2),
            exchange_lead_days=1,
        ).problems
    )


def test_partner_country_must_be_eligible_for_the_program() -> None:
    partner = {**DRAFT_EXAMPLE["partner"], "country": "FR", "name": "Lyon"}
    assert fields_wrong(partner=partner) == ["partner.country"]
    assert "partners in FR are not eligible for AUPAP" in messages(partner=partner)
    # CITIZEN takes partners anywhere.
    assert fields_wrong(program_code="CITIZEN", partner=partner, **citizen_money()) == []


def citizen_money() -> dict[str, Any]:
    # CITIZEN: maximum 10,000 USD, matching at least 50% of 15,080 USD.
    return {"matching_cash": usd(6_540), "matching_in_kind": usd(1_000), "requested": usd(7_540)}


def partner(name: str, country: str, email: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "country": country,
        "contact_name": f"{name} office",
        "contact_email": email or f"twinning@{name.lower()}.example.org",
    }


SINO_MONEY: dict[str, Any] = {
    "matching_cash": usd(4_524),
    "matching_in_kind": usd(0),
    "requested": usd(10_556),
}


def test_sino_african_needs_a_chinese_and_an_african_partner() -> None:
    china, nairobi = partner("Kunming", "CN"), partner("Nairobi", "KE")
    mexico = partner("Cuernavaca", "MX")
    sino: dict[str, Any] = {"program_code": "SINO-AFRICAN", **SINO_MONEY}
    assert fields_wrong(**sino, partner=china, other_partners=[nairobi]) == []
    assert fields_wrong(**sino, partner=nairobi, other_partners=[china]) == []
    assert fields_wrong(**sino, partner=china) == ["partners"]
    assert "a partner in an African country is required" in messages(**sino, partner=china)
    assert "a partner in CN is required" in messages(**sino, partner=nairobi)
    # Each partner is judged where it stands: the third city is the one at fault.
    assert fields_wrong(**sino, partner=china, other_partners=[nairobi, mexico]) == [
        "other_partners[1].country"
    ]
    assert fields_wrong(**sino, partner=mexico, other_partners=[china, nairobi]) == [
        "partner.country"
    ]


def test_partners_beyond_the_first_are_checked_field_by_field() -> None:
    nairobi = DRAFT_EXAMPLE["partner"]
    body = {**DRAFT_EXAMPLE, "other_partners": [partner("Kisumu", "KE"), {"name": "Mombasa"}]}
    with pytest.raises(ValueError, match=r"other_partners\.1\.country"):
        DraftFields.model_validate(body)
    too_many = [partner(f"Town{i}", "KE") for i in range(10)]
    with pytest.raises(ValueError, match="other_partners"):
        DraftFields.model_validate({**DRAFT_EXAMPLE, "other_partners": too_many})
    # The answer names a partner by its contact's e-mail: two partners cannot share one.
    same = partner("Kisumu", "KE", email=nairobi["contact_email"].upper())
    assert fields_wrong(other_partners=[partner("Kisumu", "KE"), same]) == [
        "other_partners[1].contact_email"
    ]
    assert "its own contact e-mail" in messages(other_partners=[same])
    assert fields_wrong(other_partners=[partner("Kisumu", "KE"), partner("Eldoret", "KE")]) == []


def test_the_required_partners_wait_for_the_first_partner() -> None:
    checked = check_submission(
        DraftFields(program_code="YAP-TNA"),
        member=DENVER,
        rules=CATALOG.get("YAP-TNA"),
        rates=RATES,
        today=TODAY,
        exchange_lead_days=1,
    )
    fields = [problem.field for problem in checked.problems]
    assert "partner" in fields and "partners" not in fields


def test_youth_program_is_for_us_applicants_only() -> None:
    youth = youth_draft()
    assert fields_wrong(**youth) == []
    toronto = MemberFacts("m", "Toronto", "CA", membership_active=True, good_standing=True)
    assert fields_wrong(member=toronto, **youth) == ["program_code"]


def test_the_trilateral_program_needs_a_partner_in_canada_and_one_in_mexico() -> None:
    youth = youth_draft()
    assert fields_wrong(**{**youth, "other_partners": None}) == ["partners"]
    assert "a partner in CA is required" in messages(**{**youth, "other_partners": None})
    both_mexican = [partner("Puebla", "MX")]
    assert "a partner in CA is required" in messages(**{**youth, "other_partners": both_mexican})
    nairobi = [partner("Guelph", "CA"), partner("Nairobi", "KE")]
    assert fields_wrong(**{**youth, "other_partners": nairobi}) == ["other_partners[1].country"]


def youth_draft(adults: int = 2, youth: int = 10) -> dict[str, Any]:
    return {
        "program_code": "YAP-TNA",
        "focus_area": "youth_and_education",
        "partner": partner("Cuernavaca", "MX"),
        "other_partners": [partner("Guelph", "CA")],
        "delegation": {"adults": adults, "youth": youth},
        # YAP-TNA: maximum 15,000 USD, matching at least 20%.
        "matching_cash": usd(3_080),
        "matching_in_kind": usd(1_000),
        "requested": usd(11_000),
    }


def test_focus_area_must_be_one_the_program_funds() -> None:
    assert fields_wrong(focus_area="business_and_trade") == []
    assert fields_wrong(focus_area="youth_and_education") == ["focus_area"]
    assert "AUPAP funds community development and business and trade" in messages(
        focus_area="youth_and_education"
    )


def test_requested_amount_is_at_most_the_program_maximum() -> None:
    big_budget = [
        {"category": "travel", "description": "Flights", "amount": usd(40_000)},
    ]
    at_max = {"matching_cash": usd(15_000), "matching_in_kind": usd(0), "requested": usd(25_000)}
    over = {"matching_cash": usd(14_999), "matching_in_kind": usd(0), "requested": usd(25_001)}
    assert fields_wrong(budget_lines=big_budget, **at_max) == []
    assert fields_wrong(budget_lines=big_budget, **over) == ["requested"]
    assert "more than the program's maximum award of 25,000.00 USD" in messages(
        budget_lines=big_budget, **over
    )


def test_requested_amount_equals_budget_total_minus_matching_funds() -> None:
    assert fields_wrong(requested=usd(11_000)) == []
    assert fields_wrong(requested=usd(11_000.01)) == ["requested"]
    assert (
        "must equal the budget total (15,080.00 USD) minus matching funds (4,080.00 USD), "
        "which is 11,000.00 USD"
    ) in messages(requested=usd(11_000.01))


def test_matching_share_is_at_least_the_program_minimum() -> None:
    # AUPAP needs 25% of 15,080 USD = 3,770 USD.
    exactly = {"matching_cash": usd(3_770), "matching_in_kind": usd(0), "requested": usd(11_310)}
    short = {
        "matching_cash": usd(3_769.99),
        "matching_in_kind": usd(0),
        "requested": usd(11_310.01),
    }
    assert fields_wrong(**exactly) == []
    assert fields_wrong(**short) == ["matching_cash"]
    assert "the program requires at least 25%" in messages(**short)


def test_request_matching_and_budget_rates_use_the_program_currency() -> None:
    euros = {"amount_minor": 300_000, "currency": "EUR"}
    assert fields_wrong(matching_cash=euros) == ["matching_cash"]
    assert fields_wrong(matching_in_kind=euros) == ["matching_in_kind"]
    assert fields_wrong(requested={"amount_minor": 1_100_000, "currency": "EUR"}) == ["requested"]
    assert "must be in the program's currency USD, not EUR" in messages(matching_in_kind=euros)
    lines = [
        *DRAFT_EXAMPLE["budget_lines"],
        {
            "category": "meals",
            "description": "Meals",
            "amount": {"amount_minor": 9, "currency": "GHS"},
        },
    ]
    assert fields_wrong(budget_lines=lines) == ["budget_lines[2].amount"]
    assert "no exchange rate from GHS to USD" in messages(budget_lines=lines)


def test_exchange_dates_are_in_the_future_ordered_and_inside_the_exchange_period() -> None:
    assert fields_wrong(exchange_start="2027-01-01", exchange_end="2027-12-31") == []
    assert fields_wrong(exchange_start="2027-05-24", exchange_end="2027-05-24") == ["exchange_end"]
    assert fields_wrong(exchange_start="2027-05-10", exchange_end="2028-01-02") == ["exchange_end"]
    assert fields_wrong(exchange_start="2026-12-20", exchange_end="2027-01-05") == [
        "exchange_start"
    ]
    # In the future: tomorrow at the earliest (the demo catalog allows today).
    in_period = {"today": date(2027, 2, 1), "exchange_end": "2027-02-10"}
    assert fields_wrong(exchange_start="2027-02-02", **in_period) == []
    assert fields_wrong(exchange_start="2027-02-01", **in_period) == ["exchange_start"]
    assert fields_wrong(exchange_start="2027-02-01", lead_days=0, **in_period) == []


def test_youth_programs_need_youth_and_one_adult_chaperone_per_five() -> None:
    assert fields_wrong(**youth_draft(adults=2, youth=10)) == []
    assert fields_wrong(**youth_draft(adults=2, youth=11)) == ["delegation.adults"]
    assert fields_wrong(**youth_draft(adults=4, youth=0)) == ["delegation.youth"]
    assert "11 youth need at least 3 adult chaperones" in " ".join(
        p.message
        for p in check_submission(
            DraftFields.model_validate({**DRAFT_EXAMPLE, **youth_draft(adults=2, youth=11)}),
            member=DENVER,
            rules=CATALOG.get("YAP-TNA"),
            rates=RATES,
            today=TODAY,
            exchange_lead_days=1,
        ).problems
    )


def test_member_must_be_active_and_in_good_standing() -> None:
    lapsed = MemberFacts("m", "Dayton", "US", membership_active=False, good_standing=True)
    overdue = MemberFacts(
        "m", "Charlotte", "US", True, good_standing=False, standing_reason="report_overdue"
    )
    assert fields_wrong(member=lapsed) == ["member"]
    assert fields_wrong(member=overdue) == ["member"]
    body = DraftFields.model_validate(DRAFT_EXAMPLE)
    checked = check_submission(
        body, member=overdue, rules=CATALOG.get("AUPAP"), rates=RATES, today=TODAY,
        exchange_lead_days=1,
    )  # fmt: skip
    assert checked.problems[0].message == (
        "Charlotte is not in good standing: a report from an earlier grant is overdue"
    )


def test_a_draft_may_be_incomplete_but_submission_names_every_missing_field() -> None:
    checked = check_submission(
        DraftFields(title="Just an idea"),
        member=DENVER,
        rules=None,
        rates=RATES,
        today=TODAY,
        exchange_lead_days=1,
    )
    fields = {problem.field for problem in checked.problems}
    assert {"program_code", "partner", "exchange_start", "budget_lines", "requested"} <= fields
    assert "title" not in fields
    assert not checked.ready


def test_a_draft_is_judged_on_what_it_says_so_far() -> None:
    lyon = {**DRAFT_EXAMPLE["partner"], "country": "FR", "name": "Lyon"}
    checked = check_submission(
        DraftFields.model_validate({"program_code": "AUPAP", "partner": lyon}),
        member=DENVER,
        rules=CATALOG.get("AUPAP"),
        rates=RATES,
        today=TODAY,
        exchange_lead_days=1,
    )
    missing = dict(REQUIRED_FIELDS)
    judged = [p.field for p in checked.problems if missing.get(p.field) != p.message]
    assert judged == ["partner.country"]


def test_unknown_program_is_named() -> None:
    assert fields_wrong(program_code="NOPE") == ["program_code"]


def test_amendments_keep_dates_in_the_exchange_period_and_awards_under_the_maximum() -> None:
    rules = CATALOG.programs["AUPAP"]
    common = {"rules": rules, "current_start": date(2027, 5, 10), "current_end": date(2027, 5, 24)}
    none: dict[str, Any] = {"new_start": None, "new_end": None, "new_award": None}
    assert (
        check_amendment(**common, **{**none, "new_end": date(2027, 6, 1)}, cancel_exchange=False)
        == []
    )
    assert [p.field for p in check_amendment(**common, **none, cancel_exchange=False)] == [
        "amendment"
    ]
    assert check_amendment(**common, **none, cancel_exchange=True) == []
    late = check_amendment(**common, **{**none, "new_end": date(2028, 1, 5)}, cancel_exchange=False)
    assert [p.field for p in late] == ["new_exchange_end"]
    too_much = Money(amount_minor=2_500_001, currency="USD")
    over = check_amendment(**common, **{**none, "new_award": too_much}, cancel_exchange=False)
    assert [p.field for p in over] == ["new_award"]


# --- the catalog ----------------------------------------------------------------------


def test_catalog_has_the_five_programs_open_for_the_2027_cycle() -> None:
    assert list(CATALOG.programs) == ["AUPAP", "YAP-TNA", "LEADING-ASIA", "SINO-AFRICAN", "CITIZEN"]
    assert {rules.cycle for rules in CATALOG.programs.values()} == {"2027"}
    assert {rules.currency for rules in CATALOG.programs.values()} == {"USD"}
    assert len(CATALOG.open_programs(TODAY)) == 5
    assert CATALOG.open_programs(date(2027, 4, 1)) == []
    yap = CATALOG.programs["YAP-TNA"]
    assert (yap.eligible_partner_countries, yap.applicant_countries) == (["CA", "MX"], ["US"])
    assert yap.youth_program and yap.focus_areas == ["youth_and_education"]
    assert [r.countries for r in yap.required_partners] == [["CA"], ["MX"]]
    sino = CATALOG.programs["SINO-AFRICAN"]
    china, africa = sino.required_partners
    assert china.countries == ["CN"] and africa.describe() == "an African country"
    assert set(africa.countries) == set(sino.eligible_partner_countries) - {"CN"}
    others = ("AUPAP", "LEADING-ASIA", "CITIZEN")
    assert all(CATALOG.programs[code].required_partners == [] for code in others)
    assert CATALOG.programs["CITIZEN"].eligible_partner_countries == []
    assert "KE" in CATALOG.programs["AUPAP"].eligible_partner_countries
    assert "CN" in CATALOG.programs["LEADING-ASIA"].eligible_partner_countries
    assert {rules.catalog_version for rules in CATALOG.programs.values()} == {CATALOG.version}


def test_demo_catalog_runs_a_cycle_in_seconds() -> None:
    demo = load_catalog("demo")
    assert list(demo.programs) == list(CATALOG.programs)
    for rules in demo.programs.values():
        periods = [
            rules.partner_confirmation_period,
            rules.review_period,
            rules.revision_period,
            rules.payment_settlement_period,
            rules.command_resend_after,
            rules.report_due_after,
            rules.report_overdue_after,
            rules.report_review_period,
            rules.report_changes_period,
            *rules.report_reminders_before,
            *rules.report_reminders_after,
        ]
        assert all(timedelta(0) < period <= timedelta(minutes=5) for period in periods)
    assert CATALOG.programs["AUPAP"].review_period == timedelta(days=30)


def test_a_catalog_that_does_not_fit_the_snapshot_format_is_refused(tmp_path: Path) -> None:
    document = json.loads((load_catalog().source).read_text())
    document["programs"][1]["tranches"] = [{"share_bp": 7000, "due": "after_award"}]
    broken = tmp_path / "programs.json"
    broken.write_text(json.dumps(document))
    with pytest.raises(CatalogError, match=r"(?s)program YAP-TNA: .*10000 basis points"):
        load_catalog(str(broken))


# --- the partner's one-time link ------------------------------------------------------


def test_partner_link_is_signed_and_any_change_breaks_it() -> None:
    expires = datetime(2026, 12, 18, tzinfo=UTC)
    token = sign_partner_link("secret", "a" * 32, expires)
    read = read_partner_link("secret", token)
    assert read is not None and read.link_id == "a" * 32
    link_id, stamp, signature = token.split(".")
    assert read_partner_link("other-secret", token) is None
    assert read_partner_link("secret", f"{'b' * 32}.{stamp}.{signature}") is None
    assert read_partner_link("secret", f"{link_id}.{int(stamp) + 86400}.{signature}") is None
    assert read_partner_link("secret", f"{link_id}.{stamp}.{signature[:-2]}xx") is None
    assert read_partner_link("secret", "not-a-token") is None


def test_each_partner_has_its_own_confirmation_subject() -> None:
    app = "0b6f3c1e-5b0e-4c53-9f8e-2f0b6b3c9d11"
    first = partner_confirmation_subject(app, "twinning@guelph.example.org")
    # The same partner however its address is capitalised; another partner, another subject.
    assert first == partner_confirmation_subject(app, "Twinning@Guelph.example.org")
    assert first != partner_confirmation_subject(app, "twinning@puebla.example.org")
    # Receipts and links recorded when an application had one partner keep their subject.
    assert partner_confirmation_subject(app) == f"partner-confirmation:{app}"
    longest = partner_confirmation_subject("a" * 64, "x" * 240 + "@example.org")
    assert len(longest) <= 200
