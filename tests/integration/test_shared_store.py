"""The queries every service's store shares (``shared.persistence``), on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select

from shared.db import create_engine, create_session_factory, unit_of_work
from shared.persistence import Store, set_in_filter


@pytest.fixture
async def store_and_table(database_url: str, unique: str) -> AsyncIterator[tuple[Store, Table]]:
    metadata = MetaData()
    table = Table(
        f"{unique}_rates",
        metadata,
        Column("base", String(3), primary_key=True),
        Column("quote", String(3), primary_key=True),
        Column("rate", Integer, nullable=False),
    )
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            yield Store(session), table
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)
        await engine.dispose()


async def test_an_upsert_inserts_a_new_key_and_updates_a_known_one(
    store_and_table: tuple[Store, Table],
) -> None:
    store, table = store_and_table
    key = {"base": "EUR", "quote": "USD"}
    await store._upsert(table, key, {"rate": 108})
    await store._upsert(table, key, {"rate": 110})
    await store._upsert(table, {"base": "GBP", "quote": "USD"}, {"rate": 127})

    rows = await store._all(select(table.c.base, table.c.rate).order_by(table.c.base))
    assert [tuple(row) for row in rows] == [("EUR", 110), ("GBP", 127)]


async def test_a_page_is_the_matching_rows_in_order_with_how_many_match(
    store_and_table: tuple[Store, Table],
) -> None:
    store, table = store_and_table
    for base, rate in [("AUD", 66), ("CAD", 73), ("EUR", 108), ("GBP", 127)]:
        await store._upsert(table, {"base": base, "quote": "USD"}, {"rate": rate})
    await store._upsert(table, {"base": "USD", "quote": "EUR"}, {"rate": 92})

    where = set_in_filter((table.c.quote, "USD"), (table.c.base, None))
    rows, total = await store._page(
        table, *where, order_by=[table.c.rate.desc()], limit=2, offset=1
    )

    assert total == 4
    assert [row.base for row in rows] == ["EUR", "CAD"]


async def test_one_is_the_first_row_found_or_none(store_and_table: tuple[Store, Table]) -> None:
    store, table = store_and_table
    await store._upsert(table, {"base": "EUR", "quote": "USD"}, {"rate": 108})
    query = select(table).where(*set_in_filter((table.c.base, "EUR")))

    found = await store._one(query)
    assert found is not None and found.rate == 108
    assert await store._one(select(table).where(table.c.base == "JPY")) is None
