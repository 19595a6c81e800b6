"""One trace from an applicant's submission through every part it reaches, and the gauges
that show where the application is.

The four services and the workflows process run in this process, each on its own port as
``grantflow serve`` and ``grantflow worker`` run them, on Tansu and the Temporal dev server,
with tracing into an in-memory exporter. An application is submitted, its partner
confirms, three reviewers score it; once its funds are reserved, the submission's trace is
read back: it crosses intake (the request, the outbox), the workflows process (the bridge,
the workflow and its activity), review (the review request) and disbursement (the
reservation).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from grantflow.driver import Endpoints, Journey, People
from grantflow.setup import prepare_topics
from services.disbursement.app import create_app as disbursement_app
from services.disbursement.settings import DisbursementSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.review.app import create_app as review_app
from services.review.settings import ReviewSettings
from shared.contracts import topics
from shared.settings import CommonSettings
from shared.telemetry.tracing import SERVICE_ATTRIBUTE, use_tracer_provider
from tests.support.processes import Tansu, TemporalDevServer, free_port, migrated_sqlite
from workflows.funding.worker import create_app as workflows_app
from workflows.settings import WorkflowsSettings

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    yield exporter
    use_tracer_provider(None)
    provider.shutdown()


@contextlib.asynccontextmanager
async def serving(apps: dict[str, tuple[FastAPI, int]]) -> AsyncIterator[dict[str, str]]:
    """Each app on its port, as uvicorn serves it in ``grantflow serve``; their URLs."""
    servers = {
        name: uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
        )
        for name, (app, port) in apps.items()
    }
    tasks = [asyncio.create_task(server.serve()) for server in servers.values()]
    try:
        for _ in range(600):
            if all(server.started for server in servers.values()):
                break
            if any(task.done() for task in tasks):
                raise AssertionError("a service did not start")
            await asyncio.sleep(0.1)
        yield {name: f"http://127.0.0.1:{port}" for name, (_app, port) in apps.items()}
    finally:
        for server in servers.values():
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


def trace_of(spans: Sequence[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    assert root.context is not None
    return [
        s for s in spans if s.context is not None and s.context.trace_id == root.context.trace_id
    ]


def tree(spans: list[ReadableSpan]) -> str:
    """The trace as an indented tree (for the test's output)."""
    children: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans if s.context is not None}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in ids else None, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in children.get(parent, []):
            service = (span.attributes or {}).get(SERVICE_ATTRIBUTE, "temporal")
            lines.append(f"{'  ' * depth}{span.name}  [{service}]")
            assert span.context is not None
            walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def served_by(span: ReadableSpan) -> Any:
    return (span.attributes or {}).get(SERVICE_ATTRIBUTE)


async def test_one_trace_crosses_intake_the_workflow_review_and_disbursement(
    tansu: Tansu,
    temporal_dev_server: TemporalDevServer,
    unique: str,
    tmp_path: Path,
    spans: InMemorySpanExporter,
) -> None:
    common: dict[str, Any] = {
        "environment": "development",  # demo reviewers, members and budgets
        "state_dir": tmp_path,
        "kafka_bootstrap_servers": tansu.bootstrap,
        "topic_prefix": f"{unique}.",
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "temporal_address": temporal_dev_server.address,
        "temporal_task_queue": f"{unique}-funding",
        "log_format": "text",
        "log_level": "WARNING",
        "metrics_refresh_ms": 500,
    }
    await prepare_topics(CommonSettings(**common), wait=30)
    ports = {name: free_port() for name in ("intake", "review", "disbursement", "workflows")}

    async def settings_of(kind: type[Any], name: str, **own: Any) -> Any:
        database = await migrated_sqlite(tmp_path, name)
        return kind(**common, http_port=ports[name], service_database_url=database, **own)

    intake = await settings_of(
        IntakeSettings,
        "intake",
        catalog="demo",
        public_url=f"http://127.0.0.1:{ports['intake']}",
    )
    apps = {
        "intake": (intake_app(intake), ports["intake"]),
        "review": (review_app(await settings_of(ReviewSettings, "review")), ports["review"]),
        "disbursement": (
            disbursement_app(await settings_of(DisbursementSettings, "disbursement")),
            ports["disbursement"],
        ),
        "workflows": (
            workflows_app(await settings_of(WorkflowsSettings, "workflows")),
            ports["workflows"],
        ),
    }
    async with serving(apps) as urls:
        people = People(Endpoints(urls=urls, mail_dir=tmp_path / "mail"), step_timeout=90)
        try:
            journey = Journey("traced-member", "Tracetown", "A traced exchange")
            await people.ensure_member(journey.member_id, journey.city)
            application_id = await people.submit(journey)
            await people.confirm_partner(application_id)
            await people.review(application_id, "application", 3)
            stage = await people.reach(application_id, "advance_payment", "awaiting_exchange")
            # The gauges a dashboard reads: the application's stage, the outbox backlog and
            # the consumers' lag (measured every half second here).
            await asyncio.sleep(1.5)
            scraped = {
                name: (await people.http.get(f"{url}/metrics", headers=people.officer())).text
                for name, url in urls.items()
            }
        finally:
            await people.close()
    in_stage = re.search(
        rf'^applications_in_stage{{stage="{stage}"}} (\S+)$', scraped["workflows"], re.M
    )
    assert in_stage is not None and float(in_stage.group(1)) >= 1, scraped["workflows"]
    for name, text in scraped.items():
        assert "\noutbox_backlog " in text, name
        assert "\nconsumer_lag_messages{topic=" in text, name

    finished = spans.get_finished_spans()
    submit = next(s for s in finished if s.kind is SpanKind.SERVER and s.name.endswith("/submit"))
    trace = trace_of(finished, submit)
    print(f"\nthe submission's trace, {len(trace)} spans:\n{tree(trace)}")

    def consumed(topic: topics.Topic, service: str) -> bool:
        return any(
            s.kind is SpanKind.CONSUMER and s.name.endswith(topic.name) and served_by(s) == service
            for s in trace
        )

    assert served_by(submit) == "intake"
    assert any(s.kind is SpanKind.PRODUCER and served_by(s) == "intake" for s in trace)
    assert consumed(topics.APPLICATION_SUBMITTED, "workflows")
    names = {s.name for s in trace}
    assert "RunWorkflow:ExchangeFundingWorkflow" in names, names
    assert "RunActivity:publish" in names, names
    assert consumed(topics.REQUEST_REVIEWS, "review")
    assert consumed(topics.RESERVE_FUNDS, "disbursement")
    # The reviewers' own requests begin traces of their own.
    reviews = [s for s in finished if s.kind is SpanKind.SERVER and s.name.endswith("/review")]
    assert reviews and all(trace_of(finished, s)[0] not in trace for s in reviews)
