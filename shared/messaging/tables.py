"""The messaging tables that every service keeps next to its own tables.

- ``<service>_outbox``: events written with the state change, relayed to Kafka, kept for
  a retention period so that they can be published again when the broker forgets them;
  ``subject`` names the command (or conversation) an event answers, so that a repeated
  command gets the recorded answers again.
- ``<service>_inbox``: ids of the events each consumer has processed.
- ``<service>_command_receipts``: the commands the service has handled, and the subject of their
  answers (``shared.messaging.receipts``).
- ``<service>_consumer_failures``: failed attempts per message, so that a restart does not
  give a failing message a fresh count.
- ``<service>_dead_letters``: what the consumers gave up on, for operators to read and
  replay (``grantflow dlq``).
- ``<service>_broker_epoch``: the broker epochs the service last published into and
  consumed from, per topic prefix (one database may serve several environments' topics).
- ``<service>_mail_queue``: mail to send, written with the state change that causes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import JSON, Column, Index, Integer, MetaData, String, Table, Text

from shared.db import Id, UtcDateTime

# Bounds shared by the tables and the contract.
EVENT_ID_LENGTH = 36
TOPIC_LENGTH = 255
KEY_LENGTH = 255
SUBJECT_LENGTH = 200
CONSUMER_LENGTH = 120


@dataclass(frozen=True)
class MessagingTables:
    service: str
    outbox: Table
    inbox: Table
    commands: Table
    consumer_failures: Table
    dead_letters: Table
    broker_epoch: Table
    mail: Table


def define_messaging_tables(metadata: MetaData, service: str) -> MessagingTables:
    """Add the messaging tables, prefixed with the service's name, to its metadata.

    The prefix lets services share one PostgreSQL database and still never touch each
    other's tables.
    """
    outbox = Table(
        f"{service}_outbox",
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("event_id", String(EVENT_ID_LENGTH), nullable=False, unique=True),
        Column("topic", String(TOPIC_LENGTH), nullable=False),
        Column("message_key", String(KEY_LENGTH), nullable=False),
        Column("body", Text, nullable=False),
        Column("headers", Text, nullable=False, server_default="{}"),
        Column("created_at", UtcDateTime, nullable=False),
        Column("sent_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
        Column("subject", String(SUBJECT_LENGTH), nullable=True),
    )
    Index(f"ix_{service}_outbox_unsent", outbox.c.sent_at, outbox.c.id)
    Index(f"ix_{service}_outbox_subject", outbox.c.subject)
    inbox = Table(
        f"{service}_inbox",
        metadata,
        Column("event_id", String(EVENT_ID_LENGTH), primary_key=True),
        Column("consumer", String(CONSUMER_LENGTH), primary_key=True),
        Column("topic", String(TOPIC_LENGTH), nullable=False),
        Column("processed_at", UtcDateTime, nullable=False),
    )
    commands = Table(
        f"{service}_command_receipts",
        metadata,
        Column("command_id", String(SUBJECT_LENGTH), primary_key=True),
        Column("topic", String(TOPIC_LENGTH), nullable=False),
        Column("subject", String(SUBJECT_LENGTH), nullable=False),
        Column("handled_at", UtcDateTime, nullable=False),
    )
    consumer_failures = Table(
        f"{service}_consumer_failures",
        metadata,
        Column("message_ref", String(SUBJECT_LENGTH + TOPIC_LENGTH), primary_key=True),
        Column("attempts", Integer, nullable=False),
        Column("last_error", Text, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
    )
    dead_letters = Table(
        f"{service}_dead_letters",
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("topic", String(TOPIC_LENGTH), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", Id, nullable=False),
        Column("message_key", String(KEY_LENGTH), nullable=True),
        Column("consumer_group", String(CONSUMER_LENGTH), nullable=True),
        Column("reason", Text, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("headers", Text, nullable=False),
        Column("body_base64", Text, nullable=False),
        Column("event_id", String(EVENT_ID_LENGTH), nullable=True),
        Column("dead_lettered_at", UtcDateTime, nullable=False),
        Column("replayed_at", UtcDateTime, nullable=True),
        Column("replays", Integer, nullable=False, server_default="0"),
    )
    Index(f"ix_{service}_dead_letters_topic", dead_letters.c.topic, dead_letters.c.id)
    broker_epoch = Table(
        f"{service}_broker_epoch",
        metadata,
        Column("name", String(TOPIC_LENGTH), primary_key=True),
        Column("epoch", String(EVENT_ID_LENGTH), nullable=False),
        Column("seen_at", UtcDateTime, nullable=False),
    )
    mail = Table(
        f"{service}_mail_queue",
        metadata,
        Column("id", Id, primary_key=True, autoincrement=True),
        Column("kind", String(60), nullable=False),
        Column("recipients", JSON, nullable=False),
        Column("subject", String(300), nullable=False),
        Column("body", Text, nullable=False),
        Column("application_id", String(KEY_LENGTH), nullable=True),
        Column("created_at", UtcDateTime, nullable=False),
        Column("sent_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text, nullable=True),
    )
    Index(f"ix_{service}_mail_queue_unsent", mail.c.sent_at, mail.c.id)
    return MessagingTables(
        service=service,
        outbox=outbox,
        inbox=inbox,
        commands=commands,
        consumer_failures=consumer_failures,
        dead_letters=dead_letters,
        broker_epoch=broker_epoch,
        mail=mail,
    )
