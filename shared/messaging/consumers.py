"""A service's Kafka inputs, declared as one table ``{topic: use case}``.

``register_consumers`` subscribes one consumer to every topic of the table (each extra
consumer would join the group once more, and on Tansu every join costs half a session
timeout) and runs each message's use case in one unit of work with:

- the inbox: the event id is stored with the state change, so a redelivered event
  changes nothing;
- the log context: every line logged carries the application and correlation ids;
- command receipts, for topics that carry commands: a command handled before is not
  handled again, its recorded answers are published again instead;
- dead letters: a use case that raises ``InvalidCommandError`` (the message can never be
  processed) sends the message to ``<topic>.dlq`` with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.envelope import Envelope
from shared.contracts.topics import Kind, Topic
from shared.errors import InvalidCommandError
from shared.logging import log_context
from shared.messaging.broker import EventHandler, subscribe_by_topic
from shared.messaging.deadletter import PoisonMessage
from shared.service import Service, Work

UseCase = Callable[[Work, Envelope[Any]], Awaitable[None]]


def by_command_id(payload: Any) -> str:
    return str(payload.command_id)


@dataclass(frozen=True)
class Command:
    """A command's use case, and the subject its answers are filed under.

    By default each command is its own subject; commands about one thing (the requests
    and reassignments of one review round) share one, so that any of them repeated gets
    every answer about that thing.
    """

    use_case: UseCase
    subject: Callable[[Any], str] = by_command_id


ConsumerTable = Mapping[Topic, UseCase | Command]


def register_consumers(
    service: Service,
    table: ConsumerTable,
    *,
    fetch_max_wait_ms: int | None = None,
) -> None:
    """Subscribe one consumer of the service's group to every topic of ``table``."""
    settings = service.runtime.settings
    if fetch_max_wait_ms is not None:
        settings = settings.model_copy(update={"kafka_fetch_max_wait_ms": fetch_max_wait_ms})
    subscribe_by_topic(
        service.runtime.broker,
        settings,
        consumer_handlers(service, table),
        group_id=settings.consumer_group,
    )


def consumer_handlers(service: Service, table: ConsumerTable) -> dict[Topic, EventHandler]:
    """What the consumer runs for each topic of ``table`` (tests call these directly, in
    process: the same inbox, receipts and dead-letter rules as over Kafka)."""
    runtime = service.runtime

    def handler_for(topic: Topic, entry: UseCase | Command) -> EventHandler:
        command = entry if isinstance(entry, Command) else None
        if command is None and topic.kind is Kind.COMMAND:
            command = Command(entry)  # type: ignore[arg-type]
        use_case: UseCase = command.use_case if command is not None else entry  # type: ignore[assignment]
        inbox = runtime.inbox(topic.name)

        async def handle(event: Envelope[Any]) -> None:
            async def change(session: AsyncSession) -> None:
                subject = command.subject(event.payload) if command is not None else None
                work = Work(session, runtime, service.now(), event, subject)
                if command is not None and subject is not None:
                    first = await runtime.receipts.first_time(
                        session,
                        command_id=str(event.payload.command_id),
                        topic=topic.name,
                        subject=subject,
                    )
                    if not first:
                        return
                await use_case(work, event)

            with log_context(
                application_id=event.application_id, correlation_id=event.correlation_id
            ):
                try:
                    await inbox.process(event, topic.name, change)
                except InvalidCommandError as error:
                    raise PoisonMessage(str(error)) from error

        return handle

    return {topic: handler_for(topic, entry) for topic, entry in table.items()}
