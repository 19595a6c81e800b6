"""Payloads published by the reporting service."""

from __future__ import annotations

from datetime import date
from typing import Literal

from shared.contracts.base import Contract
from shared.contracts.money import Money


class ReportSubmitted(Contract):
    application_id: str
    report_id: str
    member_id: str
    actual_spending: Money
    revision: int = 1


class MemberStandingChanged(Contract):
    member_id: str
    good_standing: bool
    reason: Literal["report_overdue", "report_received", "membership_lapsed", "restored"]
    application_id: str | None = None
    as_of: date
