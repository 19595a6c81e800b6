"""The disbursement service's tables and its one store, ``DisbursementStore``.

``tables`` declares the tables (migrated by ``services/disbursement/migrations``),
``records`` what the store hands out besides the domain's records, ``store`` every query:
the store is built from parts over one session (``shared.persistence.Store``), ``ledger``,
``payments`` and ``reference``.
"""

from __future__ import annotations

from services.disbursement.persistence.records import (
    AppliedKey,
    BudgetChangeRow,
    DeadLetter,
    FinanceNotice,
    FinanceReceipt,
    LedgerTransaction,
    Rate,
    subject_of,
)
from services.disbursement.persistence.store import DisbursementStore
from services.disbursement.persistence.tables import messaging, metadata, refund_receipts
from services.disbursement.persistence.tables import receipts as payment_receipts

__all__ = [
    "AppliedKey",
    "BudgetChangeRow",
    "DeadLetter",
    "DisbursementStore",
    "FinanceNotice",
    "FinanceReceipt",
    "LedgerTransaction",
    "Rate",
    "messaging",
    "metadata",
    "payment_receipts",
    "refund_receipts",
    "subject_of",
]
