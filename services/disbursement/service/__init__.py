"""The disbursement service's use cases, one method per action, each over the caller's ``Work``.

Split along the seams of the work: the workflow's ledger commands (``ledger``), paying
tranches and finance's answers (``payments``), collecting refunds (``refunds``, under
the ledger commands), what officers set (``admin``) and what
they read (``reconciliation``); ``base`` holds what they share. None of them commits:
the route, consumer or job that opened the work does.
"""

from __future__ import annotations

from services.disbursement.service.admin import Administration
from services.disbursement.service.ledger import LedgerCommands
from services.disbursement.service.reconciliation import PaymentReports


class DisbursementService(LedgerCommands, PaymentReports, Administration):
    """Everything the disbursement service does."""


__all__ = ["DisbursementService"]
