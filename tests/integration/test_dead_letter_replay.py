"""An operator reads and replays dead letters with ``grantflow dlq``.

A real consumer of the shared plumbing (the workflows process's tables, on SQLite and
PostgreSQL) reads from Tansu with a use case that fails until its cause is fixed; its
dead letters are listed, shown and replayed through the command, and the replayed
message is processed once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from grantflow.cli import app
from shared.contracts.envelope import Envelope
from shared.contracts.intake import ApplicationWithdrawn
from shared.contracts.topics import APPLICATION_WITHDRAWN
from shared.messaging.consumers import register_consumers
from shared.messaging.epoch import prepare_broker
from shared.messaging.outbox import message_headers
from shared.migrations import upgrade
from shared.service import Service, ServiceRuntime, Work, build_runtime, topic_layout
from tests.support.messaging import eventually, on_test_broker, withdrawn
from tests.support.processes import Tansu
from workflows import persistence
from workflows.settings import WorkflowsSettings

SERVICE = "workflows"
# Not UTF-8: no consumer can read it, and the outbox (text) cannot carry it back.
UNREADABLE = b"\xff\xfe the application app-2 was withdrawn? \xff"


class Flaky(Service):
    """Consumes withdrawals, and fails until the cause is fixed."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        super().__init__(runtime)
        self.broken = True
        self.handled: list[str] = []

    async def withdrawn(self, work: Work, event: Envelope[ApplicationWithdrawn]) -> None:
        if self.broken:
            raise RuntimeError("the ledger is closed for the night")
        self.handled.append(event.payload.reason)


@dataclass
class Running:
    service: Flaky
    runtime: ServiceRuntime
    env: dict[str, str]

    @property
    def topic(self) -> str:
        return APPLICATION_WITHDRAWN.qualified(self.runtime.settings.topic_prefix)

    async def publish(self, body: bytes, key: str, headers: dict[str, str]) -> None:
        """As another service would: straight onto the topic."""
        await self.runtime.broker.publish(body, topic=self.topic, key=key.encode(), headers=headers)

    async def publish_event(self, event: Envelope[ApplicationWithdrawn]) -> None:
        await self.publish(event.model_dump_json().encode(), "app-1", message_headers(event))

    async def dlq(self, *args: str) -> Result:
        """``grantflow dlq ...`` as an operator runs it, with the service's settings."""
        runner = CliRunner()
        return await asyncio.to_thread(runner.invoke, app, ["dlq", *args], env=self.env)

    async def dead_letter_ids(self, count: int) -> dict[str, str]:
        """Wait for ``count`` dead letters; their ids by a word of their reason."""
        lines: list[str] = []

        async def listed() -> bool:
            nonlocal lines
            result = await self.dlq("list", "--service", SERVICE, "--all")
            lines = result.stdout.splitlines()
            return len(lines) >= count

        await eventually(listed, timeout=60, interval=0.5)
        ids = {}
        for line in lines:
            letter_id = line.split()[0]
            ids["invalid" if "invalid message" in line else "failed"] = letter_id
        return ids


@pytest.fixture
async def running(
    isolated_database_url: str, tansu: Tansu, unique: str, tmp_path: Path
) -> AsyncIterator[Running]:
    await asyncio.to_thread(upgrade, SERVICE, isolated_database_url)
    prefix = f"{unique}."
    settings = WorkflowsSettings(
        database_url=isolated_database_url,
        state_dir=tmp_path,
        dead_letter_after_attempts=2,
        broker_epoch_check_ms=300,
        **on_test_broker(tansu.bootstrap, prefix),
    )
    # As `grantflow up` does: topics first, or a new consumer may not see them for minutes.
    await prepare_broker(tansu.bootstrap, topic_layout(settings), prefix)
    runtime = build_runtime(settings, persistence.metadata, persistence.messaging)
    service = Flaky(runtime)
    register_consumers(service, {APPLICATION_WITHDRAWN: service.withdrawn})
    await runtime.start()

    async def consumers_settled() -> bool:
        # A service new to the broker's epoch reads its partitions from the start once:
        # wait for that, so each message below is read once.
        return runtime.epoch.consumed is not None

    await eventually(consumers_settled, timeout=60)
    env = {
        "GRANTFLOW_DATABASE_URL": isolated_database_url,
        "GRANTFLOW_TOPIC_PREFIX": prefix,
        "GRANTFLOW_STATE_DIR": str(tmp_path),
    }
    try:
        yield Running(service, runtime, env)
    finally:
        await runtime.stop()


async def test_a_dead_letter_replayed_after_its_cause_is_fixed_is_processed_once(
    running: Running,
) -> None:
    event = withdrawn("app-1", "the partner city cancelled")
    await running.publish_event(event)
    await running.publish(UNREADABLE, "app-2", {"content-type": "application/json"})
    ids = await running.dead_letter_ids(2)
    failed, invalid = ids["failed"], ids["invalid"]
    assert running.service.handled == []

    listed = await running.dlq("list", "--service", SERVICE, "--topic", APPLICATION_WITHDRAWN.name)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert len(lines) == 2
    [failed_line] = [line for line in lines if line.startswith(failed + " ")]
    assert running.topic in failed_line
    assert "attempts 2" in failed_line
    assert "processing failed 2 times: RuntimeError: the ledger is closed" in failed_line
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", failed_line)

    shown = await running.dlq("show", failed)
    assert shown.exit_code == 0, shown.output
    for fact in (
        f"dead letter {failed}",
        "RuntimeError: the ledger is closed for the night",
        f"consumer group  {running.runtime.settings.consumer_group}",
        "partition ",
        f"event_id: {event.event_id}",
        "shown as JSON",
        '"reason": "the partner city cancelled"',
        "replayed        not yet",
    ):
        assert fact in shown.stdout, (fact, shown.stdout)
    unreadable = await running.dlq("show", invalid)
    assert "invalid message" in unreadable.stdout
    assert "shown as text" in unreadable.stdout and "withdrawn? \ufffd" in unreadable.stdout

    running.service.broken = False
    replayed = await running.dlq("replay", failed)
    assert replayed.exit_code == 0, replayed.output
    assert f"{failed}: back on {running.topic} (event {event.event_id}" in replayed.stdout
    await eventually(lambda: _handled(running, ["the partner city cancelled"]))

    refused = await running.dlq("replay", failed)
    assert refused.exit_code == 1
    assert "was replayed at" in refused.stderr and "--again" in refused.stderr
    waiting = await running.dlq("list", "--service", SERVICE)
    assert [line.split()[0] for line in waiting.stdout.splitlines()] == [invalid]
    everything = await running.dlq("list", "--service", SERVICE, "--all")
    assert any(
        line.startswith(failed + " ") and "[replayed 1x]" in line
        for line in everything.stdout.splitlines()
    )

    # Once more on purpose: the consumer's inbox knows the event and drops it. A follower
    # on the same key, sent after it through the same outbox, shows it has been read.
    again = await running.dlq("replay", failed, "--again")
    assert again.exit_code == 0, again.output
    follower = withdrawn("app-1", "the follower")
    async with running.service.work() as work:
        await running.runtime.outbox.add(work.session, APPLICATION_WITHDRAWN, follower)
    await eventually(lambda: _handled(running, ["the partner city cancelled", "the follower"]))
    await asyncio.sleep(0.5)
    assert running.service.handled == ["the partner city cancelled", "the follower"]

    cannot = await running.dlq("replay", invalid)
    assert cannot.exit_code == 1
    assert "not UTF-8" in cannot.stderr


async def test_replay_by_topic_replays_each_waiting_dead_letter(running: Running) -> None:
    for reason in ("first", "second"):
        await running.publish_event(withdrawn("app-1", reason))
    await running.dead_letter_ids(2)
    running.service.broken = False

    nothing = await running.dlq("replay", "--topic", "grants.nothing.v1", "--service", SERVICE)
    assert nothing.exit_code == 1
    assert "no dead letters of grants.nothing.v1" in nothing.stderr
    replayed = await running.dlq(
        "replay", "--topic", f"{APPLICATION_WITHDRAWN.name}.dlq", "--service", SERVICE
    )
    assert replayed.exit_code == 0, replayed.output
    assert len(replayed.stdout.splitlines()) == 2
    await eventually(lambda: _handled(running, ["first", "second"]))
    # Every service by default: those without these tables say so, the rest are listed.
    listed = await running.dlq("list", "--all", "--since", "2020-01-01")
    assert listed.exit_code == 0, listed.output
    assert len(listed.stdout.splitlines()) == 2
    later = await running.dlq("list", "--service", SERVICE, "--all", "--since", "2999-01-01")
    assert later.exit_code == 1 and "no dead letters" in later.stderr


async def _handled(running: Running, reasons: list[str]) -> bool:
    return running.service.handled == reasons


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["show", "review-12"], 1, "not a dead letter's id"),
        (["show", "billing:3"], 1, "not a dead letter's id"),
        (["replay"], 2, "one of the two"),
        (["replay", "review:1", "--topic", "t"], 2, "one of the two"),
        (["replay", "review:1", "--service", "review"], 2, "goes with --topic"),
        (["list", "--since", "yesterday"], 2, "is not a moment"),
    ],
)
def test_dlq_refuses_what_it_cannot_do(args: list[str], code: int, says: str) -> None:
    result = CliRunner().invoke(app, ["dlq", *args])
    assert result.exit_code == code, result.output
    assert says in result.output
