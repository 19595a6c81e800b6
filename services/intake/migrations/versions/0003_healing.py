"""intake: command receipts, dead letters, broker epoch, mail queue (shared.messaging)."""

from shared.migrations.messaging import healing_revision

revision = "intake_0003"
down_revision = "intake_0002"
upgrade, downgrade = healing_revision("intake")
