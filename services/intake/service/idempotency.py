"""Requests with an Idempotency-Key: the first answer is kept, and a repeat gets it again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from services.intake.persistence import IntakeStore, StoredAnswer
from services.intake.service.base import IntakeBase
from shared.errors import ConflictError
from shared.service import Work


@dataclass(frozen=True)
class Outcome:
    """An answer to a request with an Idempotency-Key; ``replayed`` when it was stored."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


class IdempotentRequests(IntakeBase):
    async def idempotent(
        self,
        work: Work,
        *,
        scope: str,
        key: str | None,
        fingerprint: str,
        action: Callable[[], Awaitable[BaseModel]],
        status_code: int,
        refuses_repeats: bool = False,
    ) -> Outcome:
        """Run ``action`` once per key; a repeat replays the first answer, another body is a 409.

        Only successful answers are kept: a refused request may be corrected and sent again
        with the same key. An action that ``refuses_repeats`` raises ConflictError when its
        work is done already (an application cannot be submitted twice): the stored answer
        is then read only on that refusal, which saves a read on every first request.
        """
        if key is None:
            return Outcome(status_code, (await action()).model_dump(mode="json"))
        store = IntakeStore(work.session)
        if not refuses_repeats:
            stored = await store.stored_answer(scope, key)
            if stored is not None:
                return _replay(stored, fingerprint)
        try:
            body = (await action()).model_dump(mode="json")
            await store.store_answer(
                StoredAnswer(scope, key, fingerprint, status_code, body, work.now)
            )
        except ConflictError:
            # A repeat, or a concurrent request with the same key that won the race (the
            # application's row lock made this one wait, and it now finds the work done):
            # answer as the first did.
            stored = await _stored_answer(store, scope, key)
            if stored is not None:
                return _replay(stored, fingerprint)
            raise
        except IntegrityError as error:
            raise ConflictError(
                "this Idempotency-Key belongs to another request, finished or still running; "
                "repeat that request as it was, or use a new key"
            ) from error
        return Outcome(status_code, body)


async def _stored_answer(store: IntakeStore, scope: str, key: str) -> StoredAnswer | None:
    try:
        return await store.stored_answer(scope, key)
    except SQLAlchemyError:  # the transaction failed (e.g. a unique index refused a write)
        return None


def _replay(stored: StoredAnswer, fingerprint: str) -> Outcome:
    if stored.fingerprint != fingerprint:
        raise ConflictError(
            "this Idempotency-Key was already used for a different request; use a new key"
        )
    return Outcome(stored.status_code, dict(stored.response), replayed=True)
