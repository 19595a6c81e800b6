"""Recorded histories of every lifecycle path replay against the current workflow code.

A change that would break running workflows (a different command, timer or activity at
the same point of a recorded history) fails here; such a change needs ``workflow.patched``.
Re-record after an intended, compatible change with
``GRANTFLOW_RECORD_HISTORIES=1 pytest tests/workflows/test_lifecycle_paths.py -k cached``.
"""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.funding.workflow import ExchangeFundingWorkflow

HERE = Path(__file__).parent
HISTORIES = HERE / "histories"


def path_test_names() -> set[str]:
    tree = ast.parse((HERE / "test_lifecycle_paths.py").read_text())
    return {
        node.name.removeprefix("test_")
        for node in tree.body
        if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_")
    }


def test_every_lifecycle_path_has_a_recorded_history() -> None:
    recorded = {path.stem for path in HISTORIES.glob("*.json")}
    assert recorded == path_test_names()


async def test_recorded_histories_replay_without_nondeterminism() -> None:
    histories = {
        path.stem: WorkflowHistory.from_json(f"application-{path.stem}", path.read_text())
        for path in sorted(HISTORIES.glob("*.json"))
    }
    names = {history.run_id: name for name, history in histories.items()}

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories.values():
            yield history

    replayer = Replayer(workflows=[ExchangeFundingWorkflow], data_converter=pydantic_data_converter)
    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    failures = {names[run_id]: repr(error) for run_id, error in results.replay_failures.items()}
    assert not failures


def test_longest_path_stays_far_below_the_history_limit() -> None:
    sizes = {
        path.stem: len(WorkflowHistory.from_json(path.stem, path.read_text()).events)
        for path in HISTORIES.glob("*.json")
    }
    assert max(sizes.values()) < 1_000, sizes
