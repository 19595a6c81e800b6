"""Every query of the disbursement service, over one unit of work's session.

``DisbursementStore`` is the one store; its queries are kept in parts by what they touch,
each a ``shared.persistence.Store`` over the same session: ``ledger`` (budgets and balances,
the waitlist, postings, awards, ledger history), ``payments`` (payment instructions,
finance's receipts and webhook deliveries, refunds) and ``reference`` (idempotency keys,
dead letters, exchange rates and payees).
"""

from __future__ import annotations

from services.disbursement.persistence.ledger import LedgerQueries
from services.disbursement.persistence.payments import PaymentQueries
from services.disbursement.persistence.reference import ReferenceQueries


class DisbursementStore(LedgerQueries, PaymentQueries, ReferenceQueries):
    """The queries of one unit of work."""
