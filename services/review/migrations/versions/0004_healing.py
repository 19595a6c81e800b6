"""review: command receipts, dead letters, broker epoch, mail queue (shared.messaging)."""

from shared.migrations.messaging import healing_revision

revision = "review_0004"
down_revision = "review_0003"
upgrade, downgrade = healing_revision("review")
