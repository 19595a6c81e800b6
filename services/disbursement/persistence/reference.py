"""The bookkeeping queries of ``DisbursementStore``: idempotency keys, dead letters,
exchange rates and payees."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from services.disbursement.persistence.records import AppliedKey, DeadLetter, Rate
from services.disbursement.persistence.tables import applied_keys, fx_rates, messaging, payees
from shared.persistence import Store


class ReferenceQueries(Store):
    """Applied idempotency keys, dead letters awaiting replay, exchange rates and payees."""

    # Idempotency keys -----------------------------------------------------------------------

    async def applied_key(self, kind: str, idempotency_key: str) -> AppliedKey | None:
        row = (
            await self.session.execute(
                select(
                    applied_keys.c.command_id,
                    applied_keys.c.answer_topic,
                    applied_keys.c.answer_payload,
                ).where(
                    applied_keys.c.kind == kind, applied_keys.c.idempotency_key == idempotency_key
                )
            )
        ).one_or_none()
        return None if row is None else AppliedKey(*row)

    async def record_applied_key(
        self,
        kind: str,
        idempotency_key: str,
        *,
        command_id: str,
        answer_topic: str,
        answer_payload: str,
        now: datetime,
    ) -> None:
        await self.session.execute(
            applied_keys.insert().values(
                kind=kind,
                idempotency_key=idempotency_key,
                command_id=command_id,
                answer_topic=answer_topic,
                answer_payload=answer_payload,
                applied_at=now,
            )
        )

    # Dead letters ---------------------------------------------------------------------------

    async def dead_letters(self, topics: Sequence[str]) -> list[DeadLetter]:
        """Messages on ``topics`` (broker names) dead-lettered and not replayed since.

        A message delivered again is dead-lettered again: it is listed once.
        """
        table = messaging.dead_letters
        rows = (
            await self.session.execute(
                select(table.c.topic, table.c.body_base64, table.c.dead_lettered_at)
                .where(table.c.topic.in_(list(topics)), table.c.replayed_at.is_(None))
                .order_by(table.c.id)
            )
        ).all()
        letters: dict[tuple[str, str], DeadLetter] = {}
        for row in rows:
            letters.setdefault(
                (row.topic, row.body_base64),
                DeadLetter(row.topic, base64.b64decode(row.body_base64), row.dead_lettered_at),
            )
        return list(letters.values())

    # Rates and payees -----------------------------------------------------------------------

    async def rate(self, base: str, quote: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(fx_rates.c.rate).where(
                fx_rates.c.base_currency == base, fx_rates.c.quote_currency == quote
            )
        )
        return value

    async def set_rate(self, rate: Rate) -> None:
        await self._upsert(
            fx_rates,
            {"base_currency": rate.base_currency, "quote_currency": rate.quote_currency},
            {"rate": rate.rate, "updated_at": rate.updated_at, "updated_by": rate.updated_by},
        )

    async def rates(self, *, limit: int | None = None, offset: int = 0) -> list[Rate]:
        rows = (
            await self.session.execute(
                select(fx_rates)
                .order_by(fx_rates.c.base_currency, fx_rates.c.quote_currency)
                .limit(limit)
                .offset(offset)
            )
        ).all()
        return [
            Rate(row.base_currency, row.quote_currency, row.rate, row.updated_at, row.updated_by)
            for row in rows
        ]

    async def payee_currency(self, payee_reference: str) -> str | None:
        value: str | None = await self.session.scalar(
            select(payees.c.currency).where(payees.c.payee_reference == payee_reference)
        )
        return value

    async def set_payee(self, payee_reference: str, currency: str, now: datetime) -> None:
        await self._upsert(
            payees,
            {"payee_reference": payee_reference},
            {"currency": currency, "updated_at": now},
        )
