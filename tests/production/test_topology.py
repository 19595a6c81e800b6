"""The production topology, proven on this machine (``make production``).

``grantflow setup`` prepares a fresh PostgreSQL database, an external broker and a Temporal
server; two replicas of every service and of the worker run in production mode as the
manifests run them, behind one address per kind. Applications go from draft to close-out
through the public APIs while one replica of each kind is killed with SIGKILL and, a while
later, replaced; then a program officer checks that every application closed, every
tranche was paid once, the ledger balances and the analytics equal the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grantflow.driver import Journey, People
from shared.settings import CommonSettings
from tests.faults.harness import check_end_state, fast_catalog
from tests.production.topology import EVENT_ID_SECRET, KINDS, NAMESPACE, SECRET, Topology

pytestmark = [pytest.mark.production, pytest.mark.postgres, pytest.mark.timeout(900)]

APPLICATIONS = 8
# Long enough for every application to be past its submission and in the middle of its life.
KILL_AFTER = 8.0
# How long the kind runs on one replica before the killed one is replaced.
REPLACE_AFTER = 10.0


@pytest.fixture
async def topology(tmp_path: Path) -> AsyncIterator[Topology]:
    running = Topology(tmp_path, catalog=fast_catalog(tmp_path))
    try:
        await running.create()
        yield running
    finally:
        await running.destroy()


async def test_two_replicas_of_everything_survive_a_kill_of_one_of_each(
    topology: Topology,
) -> None:
    began = time.monotonic()
    said = await asyncio.to_thread(topology.setup)
    print(f"\n$ grantflow setup\n{said}")
    topology.start_all()
    await topology.wait_ready()
    ready = time.monotonic() - began
    print(f"setup and ten replicas ready after {ready:.1f} s")

    settings = CommonSettings(
        jwt_secret=SECRET,
        link_secret=SECRET + "-links",
        event_id_secret=EVENT_ID_SECRET,
        environment="production",
    )
    people = People(topology.endpoints(), settings, step_timeout=240)
    try:
        await topology.register_reviewers(people.officer())
        journeys = [
            Journey(f"prod-member-{index}", f"Prodtown {index}", f"Production #{index}")
            for index in range(APPLICATIONS)
        ]
        await asyncio.gather(*(people.ensure_member(j.member_id, j.city) for j in journeys))
        started = time.monotonic()
        lives = [asyncio.create_task(people.live(journey)) for journey in journeys]

        await asyncio.sleep(KILL_AFTER)
        killed = [f"{kind}-a" for kind in KINDS]
        for name in killed:
            topology.kill(name)
        print(f"killed {', '.join(killed)} {time.monotonic() - started:.1f} s in")
        await asyncio.sleep(REPLACE_AFTER)
        for name in killed:
            topology.start(topology.replicas[name])
        await topology.wait_ready([topology.replicas[name] for name in killed])
        print(f"replaced them {time.monotonic() - started:.1f} s in")

        outcomes = await asyncio.gather(*lives)
        seconds = sorted(o.seconds or 0.0 for o in outcomes)
        print(
            f"{len(outcomes)} applications: {sum(o.stage == 'closed' for o in outcomes)} "
            f"closed; each took {seconds[0]:.0f} to {seconds[-1]:.0f} s; all done "
            f"{time.monotonic() - started:.1f} s after the first submission"
        )
        try:
            assert topology.temporal is not None
            await check_end_state(
                people,
                outcomes,
                topology.temporal.address,
                namespace=NAMESPACE,
                event_id_secret=EVENT_ID_SECRET,
            )
        except AssertionError:
            for replica in topology.every():
                print(topology.tail(replica))
            raise
    finally:
        await people.close()
    for replica in topology.replicas.values():
        assert replica.process is not None and replica.process.poll() is None, replica.name
