"""Fixtures more than one integration module uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import Tansu, free_port


@pytest.fixture
def own_tansu() -> Iterator[Tansu]:
    """A broker of this test's own, so it can be stopped and restarted (empty)."""
    broker = Tansu(port=free_port())
    broker.start()
    yield broker
    broker.stop()
