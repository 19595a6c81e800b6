"""What the portal and console browser tests share: an app served on the test's own event
loop (its Temporal client and database live there), the axe-core check, and screenshots."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Page

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
# Fetched by make install (and make test) from npm.
AXE = ROOT / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
SCREENS = ROOT / "docs" / "screens"
SERIOUS = ("serious", "critical")


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on this event loop; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    running = asyncio.create_task(server.serve())
    while not server.started:
        if running.done():
            running.result()  # raises why it stopped
            pytest.fail("the app stopped before it served")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(running, timeout=10)


async def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not await asyncio.to_thread(AXE.exists):
        pytest.fail(f"axe-core is missing at {AXE}: run make install (it fetches it from npm)")
    source = await asyncio.to_thread(AXE.read_text, encoding="utf-8")
    # Evaluated through the DevTools protocol, so the pages' CSP (no script) stays on.
    await page.evaluate(f"() => {{ {source}\n}}")
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
            .map(v => ({id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => n.target.join(" "))}))"""
    )
    return [
        f"{v['impact']} {v['id']}: {v['help']} at {', '.join(v['nodes'][:3])}"
        for v in found
        if v["impact"] in SERIOUS
    ]


async def checked(page: Page, screenshot: str = "") -> None:
    """No serious accessibility violation on ``page``; with GRANTFLOW_SCREENSHOTS set, a PNG
    of it under docs/screens/ (the README's pictures)."""
    assert await serious_violations(page) == [], page.url
    if screenshot and os.environ.get("GRANTFLOW_SCREENSHOTS"):
        await page.screenshot(path=str(SCREENS / f"{screenshot}.png"), full_page=True)
