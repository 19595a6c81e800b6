"""Complete lifecycles per second, through Kafka and without it.

Runs N applications from submission to close-out on the Temporal dev server, with the
real workflows process (worker and bridge) and stand-in services answering its commands
over Tansu; then, in the same run, N bare workflows with the same number of activities and
signals and no Kafka (each activity signals the answer straight back). Prints lifecycles
per second, p50/p99 time per lifecycle and the CPU seconds per lifecycle of each process
for both, their ratio, and the most the Kafka path could reach on this machine's cores if
the Python side cost nothing (Temporal's and Tansu's own CPU per lifecycle set that bound).

    python -m bench.lifecycle --lifecycles 50
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client

with workflow.unsafe.imports_passed_through():
    from bench.common import cpu_seconds, percentile
    from bench.standins import KafkaStandIns, program_rules, submission
    from grantflow.stack.infrastructure import Tansu, TemporalDevServer, free_port
    from shared.contracts import topics
    from shared.contracts.topics import broker_topic_names
    from shared.messaging.broker import create_broker
    from shared.messaging.outbox import message_headers
    from shared.messaging.topics_admin import ensure_topics
    from shared.migrations import upgrade
    from workflows.funding.models import FundingResult, workflow_id
    from workflows.funding.search_attributes import SEARCH_ATTRIBUTES
    from workflows.funding.worker import create_app
    from workflows.settings import WorkflowsSettings

# The approved path's shape (see tests/workflows/histories/approved_...json): publishing
# activities and the answers signalled back to the workflow.
ACTIVITIES = 9
SIGNALS = 8


class BareInput(BaseModel):
    activities: int
    signals: int


class BareStep(BaseModel):
    step: int
    answer: bool


@workflow.defn(name="BareLifecycle")
class BareLifecycleWorkflow:
    """The lifecycle's skeleton: activities whose answers come back as signals."""

    def __init__(self) -> None:
        self.answers = 0

    @workflow.run
    async def run(self, shape: BareInput) -> int:
        for step in range(shape.activities):
            answer = step < shape.signals
            await workflow.execute_activity(
                "bare_step",
                BareStep(step=step, answer=answer),
                start_to_close_timeout=timedelta(seconds=30),
            )
            if answer:
                await workflow.wait_condition(functools.partial(self._answered_beyond, step))
        return self.answers

    def _answered_beyond(self, step: int) -> bool:
        return self.answers > step

    @workflow.signal
    def answered(self) -> None:
        self.answers += 1


@dataclass
class BareAnswers:
    client: Client

    @activity.defn(name="bare_step")
    async def bare_step(self, step: BareStep) -> None:
        if step.answer:
            handle = self.client.get_workflow_handle(str(activity.info().workflow_id))
            await handle.signal(BareLifecycleWorkflow.answered)


@dataclass
class CpuMeter:
    """The CPU seconds each process spends while a phase is timed."""

    pids: dict[str, int]
    _before: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) - self._before[name] for name, pid in self.pids.items()}


@dataclass
class Figures:
    name: str
    count: int
    elapsed: float
    latencies: list[float]
    cpu: dict[str, float]

    @property
    def per_second(self) -> float:
        return self.count / self.elapsed

    def cpu_per_lifecycle(self, name: str) -> float:
        return self.cpu[name] / self.count

    def line(self) -> str:
        used = ", ".join(f"{name} {self.cpu_per_lifecycle(name):.3f}" for name in self.cpu)
        busy = sum(self.cpu.values()) / self.elapsed / (os.cpu_count() or 1)
        return (
            f"{self.name:28} {self.count} in {self.elapsed:6.2f}s = {self.per_second:7.2f}/s; "
            f"per lifecycle p50 {percentile(self.latencies, 0.5) * 1000:7.1f} ms, "
            f"p99 {percentile(self.latencies, 0.99) * 1000:7.1f} ms\n"
            f"{'':28} CPU seconds per lifecycle: {used}; these processes kept "
            f"{busy:.0%} of the {os.cpu_count()} cores busy"
        )


async def full_lifecycles(
    tansu: Tansu, server: TemporalDevServer, count: int, meter: CpuMeter
) -> Figures:
    unique = f"b{uuid.uuid4().hex[:8]}"
    settings = WorkflowsSettings(
        environment="test",
        kafka_bootstrap_servers=tansu.bootstrap,
        topic_prefix=f"{unique}.",
        kafka_session_timeout_ms=2000,
        kafka_heartbeat_interval_ms=300,
        temporal_address=server.address,
        temporal_task_queue=f"{unique}-funding",
        log_level="WARNING",
        log_format="text",
        database_url=f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/workflows.db",
    )
    await asyncio.to_thread(upgrade, "workflows", settings.effective_database_url())
    await ensure_topics(tansu.bootstrap, broker_topic_names(settings.topic_prefix))
    today = datetime.now(UTC).date()
    rules = program_rules(
        today,
        exchange_period_start=today - timedelta(days=30),
        report_reminders_before=[],
        report_reminders_after=[],
    )
    applications = [
        submission(
            rules=rules,
            exchange_start=today - timedelta(days=3),
            exchange_end=today - timedelta(days=1),
        )
        for _ in range(count)
    ]
    app = create_app(settings)
    stand_ins = KafkaStandIns(settings)
    publisher, _ = create_broker(settings, client_id=f"{unique}-intake")
    async with app.router.lifespan_context(app):
        await stand_ins.start()
        await publisher.start()
        client: Client = app.state.temporal
        await asyncio.sleep(2)  # let the consumer groups settle before timing
        latencies: list[float] = []

        async def one(application: Any) -> None:
            started = time.perf_counter()
            await publisher.publish(
                application.model_dump_json().encode(),
                topic=topics.APPLICATION_SUBMITTED.qualified(settings.topic_prefix),
                key=application.application_id.encode(),
                headers=message_headers(application),
            )
            handle = client.get_workflow_handle(
                workflow_id(application.application_id), result_type=FundingResult
            )
            while True:
                try:
                    result = await handle.result()
                    break
                except Exception:  # not started yet: the bridge has not seen it
                    await asyncio.sleep(0.05)
            assert result.stage == "closed", result
            latencies.append(time.perf_counter() - started)

        meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(one(application) for application in applications))
        elapsed = time.perf_counter() - started
        cpu = meter.stop()
        await publisher.stop()
        await stand_ins.stop()
    return Figures("lifecycle over Kafka", count, elapsed, latencies, cpu)


async def bare_lifecycles(
    server: TemporalDevServer, count: int, meter: CpuMeter | None = None
) -> Figures:
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Worker

    # Imported by name (not from __main__): the workflow sandbox re-imports its module.
    from bench.lifecycle import BareAnswers, BareInput, BareLifecycleWorkflow

    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    queue = f"bare-{uuid.uuid4().hex[:8]}"
    answers = BareAnswers(client)
    async with Worker(
        client, task_queue=queue, workflows=[BareLifecycleWorkflow], activities=[answers.bare_step]
    ):
        latencies: list[float] = []

        async def one(index: int) -> None:
            started = time.perf_counter()
            await client.execute_workflow(
                BareLifecycleWorkflow.run,
                BareInput(activities=ACTIVITIES, signals=SIGNALS),
                id=f"{queue}-{index}",
                task_queue=queue,
            )
            latencies.append(time.perf_counter() - started)

        meter = meter or CpuMeter({})
        meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(one(index) for index in range(count)))
        elapsed = time.perf_counter() - started
        cpu = meter.stop()
    return Figures("bare workflow, no Kafka", count, elapsed, latencies, cpu)


async def main(count: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as state:
        tansu = Tansu(port=free_port())
        server = TemporalDevServer(
            port=free_port(), ui_port=free_port(), db_file=Path(state) / "temporal.db"
        )
        tansu.start()
        server.start(SEARCH_ATTRIBUTES)
        assert tansu.process is not None and server.process is not None
        pids = {"bench": os.getpid(), "temporal": server.process.pid}
        try:
            await asyncio.sleep(2)  # the dev server registers its namespace after listening
            full = await full_lifecycles(
                tansu, server, count, CpuMeter(pids | {"tansu": tansu.process.pid})
            )
            bare = await bare_lifecycles(server, count, CpuMeter(pids))
        finally:
            server.stop()
            tansu.stop()
    print(full.line())
    print(bare.line())
    print(
        f"ratio (bare / over Kafka): throughput {bare.per_second / full.per_second:.2f}x, "
        f"p50 latency {percentile(full.latencies, 0.5) / percentile(bare.latencies, 0.5):.2f}x"
    )
    # The servers' own work per lifecycle bounds the Kafka path on these cores, whatever
    # the Python side costs: the bench process runs the worker, the bridge and stand-ins.
    servers = full.cpu_per_lifecycle("temporal") + full.cpu_per_lifecycle("tansu")
    bound = (os.cpu_count() or 1) / servers
    print(
        f"bound: Temporal and Tansu alone use {servers:.3f} CPU s per lifecycle over Kafka, "
        f"so on {os.cpu_count()} cores the Kafka path cannot pass {bound:.2f}/s "
        f"({bound / bare.per_second:.0%} of bare) even if the Python side cost nothing"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lifecycles", type=int, default=50)
    asyncio.run(main(parser.parse_args().lifecycles))
