"""disbursement: outbox and inbox tables."""

from shared.migrations.messaging import messaging_revision

revision = "disbursement_0001"
down_revision = None
upgrade, downgrade = messaging_revision("disbursement")
