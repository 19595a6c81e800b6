"""What the reporting service consumes: each topic and its use case.

One consumer reads every topic (analytics reads most grants topics): one group join and
one fetch loop instead of sixteen. A report request is a command: its answers (the
submission, the standing it restores) are filed under the report, so a request sent
again gets them again.
"""

from __future__ import annotations

from services.reporting.analytics.facts import ANALYTICS_TOPICS
from services.reporting.domain import report_subject
from services.reporting.service import ReportingService
from shared.contracts import topics
from shared.contracts.workflows import RequestReport
from shared.messaging.consumers import Command, ConsumerTable


def consumers(service: ReportingService) -> ConsumerTable:
    def subject(request: RequestReport) -> str:
        return report_subject(request.report_id)

    return {
        **dict.fromkeys(ANALYTICS_TOPICS, service.count),
        topics.REQUEST_REPORT: Command(service.request_report, subject=subject),
        topics.REPORT_OVERDUE: service.report_overdue,
        topics.REPORT_REVIEWED: service.report_reviewed,
    }
