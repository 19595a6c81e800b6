"""Finance's answers to what disbursement asked of it, one way in for every kind.

Disbursement asks finance two things: to pay an instruction (answered settled or failed)
and to collect a refund (answered received or failed). Either answer may come on Kafka
or through the signed webhook, once or many times. Whichever way it comes, it is
recorded as a receipt and applied under the program's lock by the kind's own rule, which
counts a repeat as a duplicate; a webhook delivery seen before gets its first answer.
An answer about something never asked is refused on Kafka (dead-lettered) and answered
404 on the webhook; reconciliation lists both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import ValidationError
from sqlalchemy import Table

from services.disbursement.domain import Disposition
from services.disbursement.persistence import (
    DeadLetter,
    DisbursementStore,
    FinanceNotice,
    FinanceReceipt,
    subject_of,
)
from services.disbursement.service.base import DisbursementBase
from shared.contracts.envelope import Envelope
from shared.contracts.topics import Topic
from shared.errors import InvalidCommandError
from shared.service import Work


class _InAProgram(Protocol):
    @property
    def program_code(self) -> str: ...

    @property
    def cycle(self) -> str: ...


Asked = TypeVar("Asked", bound=_InAProgram)
Done = TypeVar("Done", bound=FinanceNotice)
Undone = TypeVar("Undone", bound=FinanceNotice)


@dataclass(frozen=True)
class AnswerBook(Generic[Asked, Done, Undone]):
    """One kind of request to finance: where it is found, how each of finance's two
    answers (it did what was asked, or it could not) applies to it, where the answers
    are recorded and how the webhook words its answer."""

    noun: str
    topics: tuple[Topic, ...]
    receipts: Table
    find: Callable[[DisbursementStore, str, bool], Awaitable[Asked | None]]
    done: type[Done]
    apply_done: Callable[[Work, Asked, Done], Awaitable[Disposition]]
    apply_undone: Callable[[Work, Asked, Undone], Awaitable[Disposition]]
    answer_key: str
    held: str

    async def apply(self, work: Work, asked: Asked, notice: Done | Undone) -> Disposition:
        if isinstance(notice, self.done):
            return await self.apply_done(work, asked, notice)
        # The book's notices are of its two kinds, so what is not done is undone.
        return await self.apply_undone(work, asked, cast(Undone, notice))

    def webhook_answer(
        self, notice: Done | Undone, disposition: Disposition
    ) -> tuple[int, dict[str, Any]]:
        """404 for something never asked (recorded for reconciliation), 409 for an answer
        that cannot be applied (held), else 200."""
        subject = subject_of(notice)
        if disposition is Disposition.UNKNOWN:
            return 404, {"detail": f"no {self.noun} {subject}"}
        if disposition is Disposition.MISMATCH:
            return 409, {"detail": self.held.format(subject)}
        return 200, {self.answer_key: subject, "disposition": disposition.value}


class FinanceAnswers(DisbursementBase):
    async def answered_on_kafka(
        self, work: Work, book: AnswerBook[Asked, Done, Undone], event: Envelope[Done | Undone]
    ) -> None:
        notice = event.payload
        subject = subject_of(notice)
        if await book.find(DisbursementStore(work.session), subject, False) is None:
            # Dead-lettered for operators; reconciliation lists it from there.
            raise InvalidCommandError(f"no {book.noun} {subject}")
        await self.record_answer(work, book, notice, channel="kafka", event_id=str(event.event_id))

    async def answered_on_webhook(
        self,
        work: Work,
        book: AnswerBook[Asked, Done, Undone],
        delivery_id: str,
        signature: str,
        notice: Done | Undone,
    ) -> tuple[int, dict[str, Any]]:
        """Apply a notice posted to the webhook, once per delivery: a delivery seen before
        (its id, or its signature: the same signed request replayed) gets its first answer.
        """
        store = DisbursementStore(work.session)
        earlier = await store.delivery(delivery_id, signature)
        if earlier is not None:
            return earlier.status_code, earlier.answer
        disposition = await self.record_answer(work, book, notice, channel="webhook")
        status_code, answer = book.webhook_answer(notice, disposition)
        await store.add_delivery(delivery_id, signature, status_code, answer, work.now)
        return status_code, answer

    async def record_answer(
        self,
        work: Work,
        book: AnswerBook[Asked, Done, Undone],
        notice: Done | Undone,
        *,
        channel: str,
        event_id: str | None = None,
    ) -> Disposition:
        """Apply an answer from finance once, whichever way it arrives."""
        store = DisbursementStore(work.session)
        subject = subject_of(notice)
        found = await book.find(store, subject, False)
        if found is None:
            disposition = Disposition.UNKNOWN
        else:
            await store.lock_program(found.program_code, found.cycle)
            locked = await book.find(store, subject, True)
            assert locked is not None
            disposition = await book.apply(work, locked, notice)
        receipt = FinanceReceipt.of(notice, disposition, channel=channel, received_at=work.now)
        await store.add_receipt(book.receipts, receipt, event_id=event_id)
        return disposition

    async def dead_lettered_answers(
        self, store: DisbursementStore, book: AnswerBook[Asked, Done, Undone]
    ) -> list[FinanceReceipt]:
        """Finance's answers on Kafka about something never asked (dead-lettered)."""
        prefix = self.settings.topic_prefix
        topics = {topic.qualified(prefix): topic for topic in book.topics}
        found = []
        for letter in await store.dead_letters(list(topics)):
            notice = _notice(letter, topics[letter.topic].payload)
            if notice is None or await book.find(store, subject_of(notice), False) is not None:
                continue
            found.append(
                FinanceReceipt.of(
                    notice,
                    Disposition.UNKNOWN,
                    channel="kafka",
                    received_at=letter.dead_lettered_at,
                )
            )
        return found


def _notice(letter: DeadLetter, payload: type[Any]) -> FinanceNotice | None:
    """The notice in a dead letter; None when it was dead-lettered for not being one."""
    try:
        notice = Envelope[payload].model_validate_json(letter.body).payload  # type: ignore[valid-type]
    except ValidationError:
        return None
    assert isinstance(notice, FinanceNotice)
    return notice
