"""``grantflow demo`` as a user runs it: next to ``grantflow up --demo`` in the same folder,
it plays a season through the public APIs and ends with a summary that adds up."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_up import Output, Ports, clean_env

pytestmark = pytest.mark.timeout(300)

DEMO_CATALOG = Path(__file__).resolve().parents[2] / "services/intake/catalog/programs-demo.json"


def quick_catalog(directory: Path) -> Path:
    """The demo catalog with a two-second exchange: the season in a minute, not five."""
    catalog = json.loads(DEMO_CATALOG.read_text())
    catalog["defaults"]["demo_exchange_ends_after"] = "PT2S"
    path = directory / "catalog.json"
    path.write_text(json.dumps(catalog))
    return path


def test_demo_plays_a_season_to_a_summary_that_adds_up(tmp_path: Path) -> None:
    ports = Ports()
    env = {**clean_env(), "GRANTFLOW_INTAKE_CATALOG": str(quick_catalog(tmp_path))}
    stack = subprocess.Popen(
        [sys.executable, "-m", "grantflow", "up", "--demo", "--finance-delay", "0.5",
         *ports.args()],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    assert stack.stdout is not None
    output = Output(stack.stdout, marker="ready in")
    try:
        assert output.seen.wait(120), output.text()[-3000:]
        demo = subprocess.run(
            [sys.executable, "-m", "grantflow", "demo", "--applications", "5", "--pace", "0.5",
             "--http-port-base", str(ports.http_base)],
            cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(30)
    shown = demo.stdout + demo.stderr
    assert demo.returncode == 0, shown
    # The progress line moved through the stages and ended with every application done.
    progress = [line for line in demo.stdout.splitlines() if line.startswith("[")]
    assert len(progress) >= 3, shown
    assert progress[-1].endswith("closed 3, declined 1, withdrawn 1"), progress
    # Outcomes per program: three awarded and closed (one a tri-lateral Young Ambassadors
    # exchange whose two partner cities each confirmed), one declined, one withdrawn.
    assert re.search(r"AUPAP\s+scripted awarded\s+ended closed\s+x2", shown), shown
    assert re.search(r"YAP-TNA\s+scripted awarded\s+ended closed\s+x1", shown), shown
    assert re.search(r"AUPAP\s+scripted declined\s+ended declined\s+x1", shown), shown
    assert re.search(r"AUPAP\s+scripted withdrawn\s+ended withdrawn\s+x1", shown), shown
    # The money: three awards paid in full less what they did not spend; the ledger balances.
    ledger = re.search(r"AUPAP/demo USD: reserved (\d+), paid (\d+), .*-> ledger (\w+)", shown)
    assert ledger is not None, shown
    assert ledger.group(1) == "0" and int(ledger.group(2)) == 2 * 1_000_000, shown
    assert ledger.group(3) == "balances", shown
    youth = re.search(r"YAP-TNA/demo USD: reserved (\d+), paid (\d+), .*-> ledger (\w+)", shown)
    assert youth is not None and youth.groups() == ("0", "1000000", "balances"), shown
    assert "the season ended as scripted" in shown
