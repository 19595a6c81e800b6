"""The disbursement service's tables and its one store, ``DisbursementStore``.

``tables`` declares the tables (migrated by ``services/disbursement/migrations``),
``records`` what the store hands out besides the domain's records, ``store`` every query.
"""

from __future__ import annotations

from services.disbursement.persistence.records import (
    AppliedKey,
    BudgetChangeRow,
    DeadLetter,
    LedgerTransaction,
    Rate,
    Receipt,
    RefundReceipt,
)
from services.disbursement.persistence.store import DisbursementStore
from services.disbursement.persistence.tables import messaging, metadata

__all__ = [
    "AppliedKey",
    "BudgetChangeRow",
    "DeadLetter",
    "DisbursementStore",
    "LedgerTransaction",
    "Rate",
    "Receipt",
    "RefundReceipt",
    "messaging",
    "metadata",
]
