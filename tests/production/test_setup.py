"""``grantflow setup`` as an operator runs it: on a fresh environment, and again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from shared.messaging.topics_admin import all_topic_names, describe_partitions
from shared.migrations import MIGRATED_SERVICES
from tests.support.databases import POSTGRES_ADMIN_DSN
from tests.support.processes import Tansu, TemporalDevServer, free_port
from workflows.funding.search_attributes import SEARCH_ATTRIBUTES

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]


def admin(statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@pytest.fixture
def fresh_database() -> Iterator[str]:
    name = f"grantflow_setup_{uuid.uuid4().hex[:10]}"
    admin(f'CREATE DATABASE "{name}"')
    yield name
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("GRANTFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "grantflow", "setup", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_setup_prepares_a_fresh_environment_and_a_second_run_changes_nothing(
    tansu: Tansu, temporal_dev_server: TemporalDevServer, unique: str, fresh_database: str
) -> None:
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    namespace = f"ns-{unique}"
    env = {
        "GRANTFLOW_DATABASE_URL": f"{base}/{fresh_database}",
        "GRANTFLOW_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "GRANTFLOW_TOPIC_PREFIX": f"{unique}.",
        "GRANTFLOW_KAFKA_TOPIC_PARTITIONS": "2",
        "GRANTFLOW_TEMPORAL_ADDRESS": temporal_dev_server.address,
        "GRANTFLOW_TEMPORAL_NAMESPACE": namespace,
        "GRANTFLOW_TEMPORAL_RETENTION_DAYS": "3",
    }

    first = setup(env)
    assert first.returncode == 0, first.stderr
    said = first.stdout
    print(f"\n$ grantflow setup\n{said}")
    for service in MIGRATED_SERVICES:
        assert f"{service}: tables migrated" in said
    assert f"temporal: namespace {namespace} registered, retention 3 days" in said
    assert "search attributes GrantflowMember, GrantflowProgram" in said
    for program in ("AUPAP", "YAP-TNA", "LEADING-ASIA", "SINO-AFRICAN", "CITIZEN"):
        assert f"budget: {program} 2027 opened with" in said
    assert "budget: AUPAP 2027 opened with 250,000.00 USD" in said
    assert said.rstrip().endswith("grantflow setup: done")

    again = setup(env)
    assert again.returncode == 0, again.stderr
    assert f"temporal: namespace {namespace} present, retention 3 days" in again.stdout
    assert f"the {len(SEARCH_ATTRIBUTES)} search attributes are present" in again.stdout
    assert "created" not in again.stdout and "added" not in again.stdout
    assert "budget: AUPAP 2027 present" in again.stdout

    async def what_is_there() -> None:
        names = all_topic_names(f"{unique}.")
        partitions = await describe_partitions(tansu.bootstrap, names)
        assert set(partitions) == set(names)
        assert {partitions[name] for name in names[:-1]} == {2}
        client = await Client.connect(temporal_dev_server.address, namespace=namespace)
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
        retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
        assert retention == timedelta(days=3)
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        assert set(SEARCH_ATTRIBUTES) <= set(listed.custom_attributes)
        dsn = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + f"/{fresh_database}"
        connection = await asyncpg.connect(dsn)
        try:
            for service in MIGRATED_SERVICES:
                assert await connection.fetchval(f"SELECT count(*) FROM alembic_version_{service}")
        finally:
            await connection.close()

    asyncio.run(what_is_there())


def test_setup_says_what_does_not_answer_and_fails(tmp_path: Path) -> None:
    nothing = f"127.0.0.1:{free_port()}"
    result = setup(
        {
            "GRANTFLOW_KAFKA_BOOTSTRAP_SERVERS": nothing,
            "GRANTFLOW_TEMPORAL_ADDRESS": nothing,
            "GRANTFLOW_STATE_DIR": str(tmp_path),
        },
        "--wait",
        "1",
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("grantflow setup: "), result.stderr
    assert nothing in last
