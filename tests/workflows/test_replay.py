"""Recorded histories of every lifecycle path replay against the current workflow code.

A change that would break running workflows (a different command, timer or activity at
the same point of a recorded history) fails here; such a change needs ``workflow.patched``.
Record a new path's history with
``GRANTFLOW_RECORD_HISTORIES=1 pytest tests/workflows/test_<...>_paths.py -k "<name> and cached"``;
never re-record an existing one over a change that needs a patch: the old history is what
proves that lifecycles started before the change still replay.
"""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.funding import patches
from workflows.funding.workflow import ExchangeFundingWorkflow

HERE = Path(__file__).parent
HISTORIES = HERE / "histories"
# Paths the lifecycle no longer takes, recorded before the patch that changed them: they
# replay the old branch, as lifecycles started before the patch do.
RETIRED_PATHS = {
    # patches.PAYMENT_FAILURE_IS_FINAL: the lifecycle instructed a failed payment again.
    "payment_failure_is_instructed_again_and_settles",
    "payment_failing_for_good_escalates_to_an_officer",
}


def path_test_names() -> set[str]:
    names: set[str] = set()
    for module in sorted(HERE.glob("test_*_paths.py")):
        tree = ast.parse(module.read_text())
        names |= {
            node.name.removeprefix("test_")
            for node in tree.body
            if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_")
        }
    return names


def test_every_lifecycle_path_has_a_recorded_history() -> None:
    recorded = {path.stem for path in HISTORIES.glob("*.json")}
    assert recorded == path_test_names() | RETIRED_PATHS
    assert not path_test_names() & RETIRED_PATHS


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


def patches_taken(history: WorkflowHistory) -> set[str]:
    taken = set()
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_patch":
            (payload,) = marker.details["patch-data"].payloads
            taken.add(json.loads(payload.data)["id"])
    return taken


def test_every_patch_has_a_recorded_history_that_takes_it() -> None:
    """Each patch's new branch is replayed too (its old one is in the histories before it)."""
    patch_ids = {
        value for name, value in vars(patches).items() if name.isupper() and isinstance(value, str)
    }
    histories = [
        WorkflowHistory.from_json(path.stem, path.read_text()) for path in HISTORIES.glob("*.json")
    ]
    assert set().union(*(patches_taken(history) for history in histories)) == patch_ids


def test_longest_path_stays_far_below_the_history_limit() -> None:
    sizes = {
        path.stem: len(WorkflowHistory.from_json(path.stem, path.read_text()).events)
        for path in HISTORIES.glob("*.json")
    }
    assert max(sizes.values()) < 1_000, sizes
