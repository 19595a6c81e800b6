"""review: mail through the shared queue, commands through the shared receipts.

- Mail not sent yet moves from ``review_mail`` to ``review_mail_queue``; ``review_mail``
  goes.
- The reassignments ``review_commands`` remembers become command receipts, so that one
  handled before the upgrade is not handled again; ``review_commands`` goes.
- The answers to the workflow's review commands still in the outbox are filed under their
  subject (the round, or the report), so that a command sent again after the upgrade gets
  them again. The subjects are written out here as the service computed them at this
  revision (``services.review.domain``).
"""

import json

import sqlalchemy as sa
from alembic import op

from services.review.migrations.retired import create_commands_table, create_mail_table
from shared.db import Id

revision = "review_0005"
down_revision = "review_0004"

ANSWERS = ("ReviewCompleted", "ReviewerRecused", "ReviewersShort", "ReportReviewed")
MIGRATED_MAIL_KIND = "review-mail"


def _subject(event_type: str, payload: dict[str, object]) -> str:
    application_id = payload["application_id"]
    report_id = payload.get("report_id")
    if event_type == "ReportReviewed" or report_id:
        return f"report-review:{application_id}:{report_id}"
    return f"review:{application_id}:{payload['round']}"


def _file_answers() -> None:
    connection = op.get_bind()
    outbox = sa.table(
        "review_outbox",
        sa.column("id", Id),
        sa.column("body", sa.Text),
        sa.column("headers", sa.Text),
        sa.column("subject", sa.String(200)),
    )
    rows = connection.execute(
        sa.select(outbox.c.id, outbox.c.body, outbox.c.headers).where(outbox.c.subject.is_(None))
    ).all()
    for row in rows:
        event_type = json.loads(row.headers or "{}").get("event_type")
        if event_type not in ANSWERS:
            continue
        subject = _subject(event_type, json.loads(row.body)["payload"])
        connection.execute(sa.update(outbox).where(outbox.c.id == row.id).values(subject=subject))


def upgrade() -> None:
    op.execute(
        "INSERT INTO review_mail_queue"
        " (kind, recipients, subject, body, application_id, created_at, attempts, last_error)"
        f" SELECT '{MIGRATED_MAIL_KIND}', recipients, subject, body, application_id, created_at,"
        " attempts, last_error FROM review_mail WHERE sent_at IS NULL ORDER BY id"
    )
    op.drop_index("ix_review_mail_unsent", "review_mail")
    op.drop_table("review_mail")
    op.execute(
        "INSERT INTO review_command_receipts (command_id, topic, subject, handled_at)"
        " SELECT command_id, topic, command_id, handled_at FROM review_commands"
        " WHERE command_id NOT IN (SELECT command_id FROM review_command_receipts)"
    )
    op.drop_table("review_commands")
    _file_answers()


def downgrade() -> None:
    create_commands_table()
    op.execute(
        "INSERT INTO review_commands (command_id, topic, handled_at)"
        " SELECT command_id, topic, handled_at FROM review_command_receipts"
        " WHERE topic LIKE '%grants.review.reassign.v1'"
    )
    create_mail_table()
    op.execute(
        "INSERT INTO review_mail"
        " (recipients, subject, body, application_id, created_at, attempts, last_error)"
        " SELECT recipients, subject, body, application_id, created_at, attempts, last_error"
        " FROM review_mail_queue WHERE sent_at IS NULL ORDER BY id"
    )
