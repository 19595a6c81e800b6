"""disbursement: command receipts, dead letters, broker epoch, mail queue (shared.messaging)."""

from shared.migrations.messaging import healing_revision

revision = "disbursement_0003"
down_revision = "disbursement_0002"
upgrade, downgrade = healing_revision("disbursement")
