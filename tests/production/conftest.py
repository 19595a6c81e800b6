"""The production suite: ``grantflow setup``, the deployment files, tracing, and the
production topology (``-m production``, its own CI step: it runs for minutes)."""

from __future__ import annotations

import pytest

PRODUCTION_MARK = "production"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{PRODUCTION_MARK}: the production topology on this machine (make production)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The topology runs only when asked for by its marker, never as part of ``make test``."""
    if PRODUCTION_MARK in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason=f"the production topology runs with -m {PRODUCTION_MARK}")
    for item in items:
        if item.get_closest_marker(PRODUCTION_MARK) is not None:
            item.add_marker(skip)
