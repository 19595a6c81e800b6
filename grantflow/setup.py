"""``grantflow setup``: everything an environment needs before its processes start.

Each step is idempotent: run it on every deployment (compose and Kubernetes run it as a
one-shot job before the services; ``grantflow up`` runs the same steps), and it only adds
what is missing and says what it found.

- ``migrate``: every process's tables (``shared.migrations.MIGRATED_SERVICES``);
- ``prepare_topics``: every topic with the configured partitions, replication factor and
  ``min.insync.replicas``, its dead-letter topic, and the broker-epoch marker;
- ``prepare_temporal``: the namespace with its retention, and the funding workflow's
  search attributes (the bridge starts every workflow with them);
- ``prepare_budgets``: each catalog program's budget for its cycle, through the
  disbursement service's own use case, where it has none yet.

Every step waits for what it talks to (up to ``wait`` seconds): a job started with its
dependencies still booting does not fail for that.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import TypeVar

from google.protobuf.duration_pb2 import Duration
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from grantflow.services import SETTINGS_BY_SERVICE
from shared.contracts.money import Money
from shared.settings import CommonSettings

T = TypeVar("T")

DEFAULT_WAIT = 120.0
RETRY_PAUSE = 1.0


class SetupError(Exception):
    """A step could not be done; ``str(error)`` says which and why."""


async def patiently(
    what: str, attempt: Callable[[], Awaitable[T]], wait: float, pause: float = RETRY_PAUSE
) -> T:
    """``attempt`` until it succeeds; after ``wait`` seconds, fail with its last error."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return await attempt()
        except SetupError:
            raise
        except Exception as error:
            if time.monotonic() >= deadline:
                raise SetupError(f"{what}: {type(error).__name__}: {error}") from error
        await asyncio.sleep(pause)


# -- databases ---------------------------------------------------------------------------


def database_urls(settings: CommonSettings | None = None) -> dict[str, str]:
    """Each migrated process's database, as its own settings name it."""
    from shared.migrations import MIGRATED_SERVICES

    urls = {}
    for service in MIGRATED_SERVICES:
        service_settings = SETTINGS_BY_SERVICE[service]()
        if settings is not None:  # the caller's state directory (grantflow up resolves it)
            service_settings = service_settings.model_copy(update={"state_dir": settings.state_dir})
        urls[service] = service_settings.effective_database_url()
    return urls


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def migrate(urls: Mapping[str, str]) -> list[str]:
    """Bring each process's tables to the newest revision; blocking (alembic runs its own
    event loop), so call it in a thread."""
    from shared.migrations import MIGRATED_SERVICES, upgrade

    lines = []
    # One after the other: alembic's ``context`` and ``op`` are process-wide proxies.
    for service in MIGRATED_SERVICES:
        url = urls[service]
        try:
            upgrade(service, url)
        except Exception as error:
            raise SetupError(
                f"migrating {service} ({shown(url)}) failed: {type(error).__name__}: {error}"
            ) from error
        lines.append(f"{service}: tables migrated ({shown(url)})")
    return lines


async def migrate_when_reachable(urls: Mapping[str, str], wait: float) -> list[str]:
    from shared.db import create_engine, ping

    async def reachable(url: str) -> None:
        engine = create_engine(url)
        try:
            await ping(engine)
        finally:
            await engine.dispose()

    for url in dict.fromkeys(urls.values()):
        await patiently(
            f"the database {shown(url)} does not answer", functools.partial(reachable, url), wait
        )
    return await asyncio.to_thread(migrate, urls)


# -- topics ------------------------------------------------------------------------------


async def prepare_topics(settings: CommonSettings, wait: float = DEFAULT_WAIT) -> list[str]:
    """Every topic and the epoch marker; a topic that exists with other partitions than the
    setting is reported, not changed (more partitions move keys: see docs/runbook.md)."""
    from shared.messaging.epoch import prepare_broker
    from shared.messaging.topics_admin import all_topic_names, describe_partitions
    from shared.service import topic_layout

    bootstrap = settings.kafka_bootstrap_servers
    layout = topic_layout(settings)

    async def prepare() -> str:
        return await asyncio.wait_for(
            prepare_broker(bootstrap, layout, settings.topic_prefix), 30.0
        )

    epoch = await patiently(f"could not create the topics on Kafka at {bootstrap}", prepare, wait)
    names = all_topic_names(settings.topic_prefix)
    lines = [
        f"kafka: {len(names)} topics present on {bootstrap} ({layout.partitions} partitions, "
        f"replication factor {layout.replication_factor}, min.insync.replicas "
        f"{layout.min_insync_replicas or 'broker default'}), broker epoch {epoch}"
    ]
    partitions = await describe_partitions(bootstrap, names[:-1])  # the marker has one
    other = sorted(name for name, count in partitions.items() if count != layout.partitions)
    if other:
        counts = sorted({partitions[name] for name in other})
        lines.append(
            f"kafka: {len(other)} topics have {', '.join(map(str, counts))} partitions, not "
            f"{layout.partitions}; left as they are (docs/runbook.md, scaling), e.g. {other[0]}"
        )
    return lines


# -- Temporal ----------------------------------------------------------------------------


async def connect_temporal(settings: CommonSettings, namespace: str | None = None) -> Client:
    return await asyncio.wait_for(
        Client.connect(settings.temporal_address, namespace=namespace or "default"), 10.0
    )


async def ensure_namespace(client: Client, namespace: str, retention: timedelta) -> str:
    """Register ``namespace`` with ``retention``, or set the retention of the one there."""
    service = client.workflow_service
    wanted = Duration()
    wanted.FromTimedelta(retention)
    try:
        described = await service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=10)
        )
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        await service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                description="grantflow: one exchange-funding workflow per application",
                workflow_execution_retention_period=wanted,
            ),
            timeout=timedelta(seconds=10),
        )
        return f"temporal: namespace {namespace} registered, retention {retention.days} days"
    current = described.config.workflow_execution_retention_ttl
    if current.ToTimedelta() == retention:
        return f"temporal: namespace {namespace} present, retention {retention.days} days"
    await service.update_namespace(
        UpdateNamespaceRequest(
            namespace=namespace,
            # Only the fields set are changed: the rest of the namespace stays as it is.
            config=NamespaceConfig(workflow_execution_retention_ttl=wanted),
        ),
        timeout=timedelta(seconds=10),
    )
    return (
        f"temporal: namespace {namespace} retention set to {retention.days} days "
        f"(was {current.ToTimedelta().days})"
    )


async def prepare_temporal(settings: CommonSettings, wait: float = DEFAULT_WAIT) -> list[str]:
    """The namespace with its retention, then the search attributes, usable when it returns."""
    from workflows.funding.search_attributes import (
        SearchAttributeConflictError,
        ensure_search_attributes,
    )

    namespace = settings.temporal_namespace
    retention = timedelta(days=settings.temporal_retention_days)
    address = settings.temporal_address

    async def namespace_step() -> str:
        client = await connect_temporal(settings)
        return await ensure_namespace(client, namespace, retention)

    lines = [await patiently(f"Temporal at {address} did not answer", namespace_step, wait)]

    async def attributes_step() -> str:
        # A namespace just registered takes a moment to reach every frontend.
        client = await connect_temporal(settings, namespace)
        try:
            return await ensure_search_attributes(client)
        except SearchAttributeConflictError as error:
            raise SetupError(str(error)) from error

    lines.append(
        await patiently(f"the search attributes on Temporal at {address}", attributes_step, wait)
    )
    return lines


# -- budgets -----------------------------------------------------------------------------


async def prepare_budgets(wait: float = DEFAULT_WAIT) -> list[str]:
    """Each program of intake's catalog gets its annual budget for its cycle, unless it has
    one: a budget officers changed since is theirs and stays."""
    from services.disbursement.persistence import messaging, metadata
    from services.disbursement.service import DisbursementService
    from services.disbursement.settings import DisbursementSettings
    from services.intake.catalog import load_catalog
    from services.intake.settings import IntakeSettings
    from shared.service import build_runtime

    catalog = load_catalog(IntakeSettings().catalog)
    settings = DisbursementSettings()
    runtime = build_runtime(settings, metadata, messaging)
    service = DisbursementService(runtime, settings)

    async def budget_for(code: str, cycle: str, amount: Money) -> str:
        try:
            async with service.work() as work:
                opened = await service.open_budget(work, code, cycle, amount, catalog.version)
        except IntegrityError:  # another setup created it meanwhile
            opened = False
        if not opened:
            return f"budget: {code} {cycle} present"
        return f"budget: {code} {cycle} opened with {amount}"

    try:
        lines = []
        for rules in catalog.programs.values():
            attempt = functools.partial(budget_for, rules.code, rules.cycle, rules.annual_budget)
            lines.append(await patiently(f"the {rules.code} budget", attempt, wait))
        return lines
    finally:
        await runtime.engine.dispose()


# -- all of it ---------------------------------------------------------------------------


async def setup(
    settings: CommonSettings | None = None,
    *,
    wait: float = DEFAULT_WAIT,
    budgets: bool = True,
    say: Callable[[str], None] = print,
) -> None:
    """Every step: the databases, the broker and Temporal side by side, then the budgets."""
    from grantflow.stack.readiness import all_of

    settings = settings or CommonSettings()

    async def step(lines: Awaitable[list[str]]) -> None:
        for line in await lines:
            say(line)

    await all_of(
        step(migrate_when_reachable(database_urls(settings), wait)),
        step(prepare_topics(settings, wait)),
        step(prepare_temporal(settings, wait)),
    )
    if budgets:
        await step(prepare_budgets(wait))
