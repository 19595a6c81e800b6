"""``grantflow demo``: a season of applications played at a human pace, as its people would.

Member cities apply one after another (one to a tri-lateral exchange with two partner
cities); most are awarded, paid, report and close, one is declined by its reviewers and
one is withdrawn by its applicant, all through the public
interfaces (``grantflow/driver.py``). A progress line shows the applications by stage
whenever it changes, and a summary at the end gives the outcomes per program, the money
per program and currency from the ledger, whether the ledger balances, and where to look.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grantflow.driver import Endpoints, Journey, Outcome, People, StepTimeoutError

READY_TIMEOUT = 180.0
# The paths the season's applications take, in turn.
PATHS = ("awarded", "declined", "awarded", "withdrawn", "awarded")
# Who applies to what, in turn: Boise's youth delegation goes on a tri-lateral exchange
# with partners in Mexico and Canada.
CITIES = (
    ("demo-denver", "Denver", "AUPAP"),
    ("demo-tulsa", "Tulsa", "AUPAP"),
    ("demo-boise", "Boise", "YAP-TNA"),
    ("demo-savannah", "Savannah", "AUPAP"),
    ("demo-duluth", "Duluth", "AUPAP"),
)
LEDGER_PARTS = ("available", "reserved", "in_payment", "disbursed", "refund_due")

Say = Callable[[str], None]


@dataclass
class Played(Outcome):
    """One scripted application: the path it is to take, and where it is."""

    path: str = "awarded"


async def play(people: People, played: Played) -> None:
    journey = played.journey
    try:
        await people.ensure_member(journey.member_id, journey.city)
        if played.path == "awarded":
            await people.live(journey, played)
            return
        played.application_id = application_id = await people.submit(journey)
        await people.confirm_partners(journey, application_id)
        if played.path == "declined":
            await people.review(application_id, "application", journey.reviewers, approve=False)
            played.stage = await people.reach(application_id, "declined")
        else:
            await people.withdraw(journey.member_id, application_id, "The delegation cannot go.")
            played.stage = await people.reach(application_id, "withdrawn")
    except StepTimeoutError as error:
        played.error = str(error)
        if played.application_id is not None:
            played.stage = await people.stage(played.application_id)


class Progress:
    """The applications by stage, printed whenever that changes."""

    def __init__(self, people: People, season: list[Played], say: Say) -> None:
        self.people, self.season, self.say = people, season, say
        self.started = time.monotonic()
        self.last = ""

    async def show(self) -> None:
        stages: Counter[str] = Counter()
        for played in self.season:
            if played.application_id is None:
                stages["drafting"] += 1
            else:
                stage = played.stage or await self.people.stage(played.application_id)
                stages[stage or "?"] += 1
        line = ", ".join(f"{stage} {count}" for stage, count in sorted(stages.items()))
        if line != self.last:
            self.say(f"[{time.monotonic() - self.started:5.0f} s] {line}")
            self.last = line

    async def watch(self, every: float) -> None:
        while True:
            await self.show()
            await asyncio.sleep(every)


async def summary(people: People, season: list[Played]) -> tuple[list[str], bool]:
    """The closing lines and whether everything ended as scripted with a balanced ledger."""
    lines = ["", "outcomes:"]
    outcomes: Counter[tuple[str, str, str]] = Counter()
    for played in season:
        program = "?"
        if played.application_id is not None:
            view = await people.http.get(
                people.endpoints.url("workflows", f"/v1/lifecycle/{played.application_id}"),
                headers=people.officer(),
            )
            program = view.json().get("program_code", "?") if view.status_code == 200 else "?"
        outcomes[(program, played.path, played.stage or "not started")] += 1
    for (program, path, stage), count in sorted(outcomes.items()):
        lines.append(f"  {program:<8} scripted {path:<9} ended {stage:<12} x{count}")
    budgets: list[dict[str, Any]] = (
        await people.http.get(
            people.endpoints.url("disbursement", "/v1/budgets"), headers=people.officer()
        )
    ).json()
    lines.append("money (minor units), per program budget:")
    balanced = True
    for budget in budgets:
        parts = {part: budget[part]["amount_minor"] for part in LEDGER_PARTS}
        holds = budget["budget"]["amount_minor"] == sum(parts.values())
        balanced = balanced and holds
        lines.append(
            f"  {budget['program_code']}/{budget['cycle']} {budget['currency']}: "
            f"reserved {parts['reserved']}, paid {parts['disbursed']}, "
            f"refund due {parts['refund_due']}, available {parts['available']}"
            f" -> ledger {'balances' if holds else 'DOES NOT BALANCE'}"
        )
    as_scripted = all(
        played.stage == {"awarded": "closed"}.get(played.path, played.path) for played in season
    )
    for played in season:
        if played.error:
            lines.append(f"  {played.journey.title}: {played.error}")
    lines += [
        "where to look:",
        f"  dashboard      {people.endpoints.url('reporting', '/dashboard')}",
        f"  applications   {people.endpoints.url('workflows', '/v1/lifecycle')} (officer token)",
        "  Temporal UI    the address grantflow up printed",
    ]
    return lines, as_scripted and balanced


def season_of(applications: int) -> list[Played]:
    season = []
    for index in range(applications):
        member_id, city, program = CITIES[index % len(CITIES)]
        journey = Journey(member_id, city, f"{city} exchange #{index + 1}", program=program)
        season.append(Played(journey, path=PATHS[index % len(PATHS)]))
    return season


async def run_demo(
    endpoints: Endpoints, applications: int, pace: float, say: Say, *, every: float = 2.0
) -> bool:
    """Play a season against the stack at ``endpoints``; True when it ended as scripted."""
    people = People(endpoints, step_timeout=600.0)
    season = season_of(applications)
    say(f"playing {applications} applications, one every {pace:g} s: " + ", ".join(PATHS))
    progress = Progress(people, season, say)
    watcher = asyncio.create_task(progress.watch(every))
    try:
        players = []
        for played in season:
            players.append(asyncio.create_task(play(people, played)))
            await asyncio.sleep(pace)
        await asyncio.gather(*players)
        watcher.cancel()
        await progress.show()
        lines, ended_as_scripted = await summary(people, season)
    finally:
        watcher.cancel()
        await people.close()
    for line in lines:
        say(line)
    say(f"the season {'ended' if ended_as_scripted else 'did NOT end'} as scripted")
    return ended_as_scripted


def start_stack(state_parent: Path, http_port_base: int | None) -> subprocess.Popen[bytes]:
    """``grantflow up --demo`` in ``state_parent``, once it says it is ready."""
    log_path = state_parent / "grantflow-demo-stack.log"
    ports = [] if http_port_base is None else ["--http-port-base", str(http_port_base)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "grantflow", "up", "--demo", *ports],
            cwd=state_parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    while b"ready in" not in log_path.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"grantflow up --demo did not start; see {log_path}")
        time.sleep(0.5)
    return process
