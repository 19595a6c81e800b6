"""A consumer in its own process, so a test can SIGKILL it mid-batch.

Usage: python -m tests.support.consumer_process DATABASE_URL BOOTSTRAP NAME
"""

from __future__ import annotations

import asyncio
import signal
import sys

from shared.contracts.envelope import Envelope
from shared.contracts.intake import ApplicationWithdrawn
from tests.support.messaging import Harness


async def main(database_url: str, bootstrap: str, name: str) -> None:
    harness = await Harness.create(database_url, bootstrap, name)

    async def slow(_event: Envelope[ApplicationWithdrawn]) -> None:
        await asyncio.sleep(0.02)  # keeps the batch in flight long enough to be killed

    await harness.start_consumer(before=slow)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await harness.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
