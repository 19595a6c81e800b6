"""The ``grantflow`` command."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer

app = typer.Typer(
    help="grantflow: exchange-funding programs for a sister-city network.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
reporting_app = typer.Typer(help="The reporting service's read model.", no_args_is_help=True)
app.add_typer(reporting_app, name="reporting")
dlq_app = typer.Typer(
    help=(
        "Dead letters: the messages each service's consumers gave up on, kept in the "
        "service's database, to read and to replay once their cause is fixed. A dead letter "
        "is named <service>:<number>. Exit codes: 0 done, 1 nothing found or an invalid id, "
        "2 wrong usage."
    ),
    no_args_is_help=True,
)
app.add_typer(dlq_app, name="dlq")


class Service(StrEnum):
    INTAKE = "intake"
    REVIEW = "review"
    DISBURSEMENT = "disbursement"
    REPORTING = "reporting"


class Migrated(StrEnum):
    """Every process that owns tables: the four services and the workflows process."""

    INTAKE = "intake"
    REVIEW = "review"
    DISBURSEMENT = "disbursement"
    REPORTING = "reporting"
    WORKFLOWS = "workflows"


class RoleName(StrEnum):
    APPLICANT = "applicant"
    REVIEWER = "reviewer"
    PROGRAM_OFFICER = "program_officer"
    ADMIN = "admin"


UP_HELP = (
    "Start the whole stack on this machine: broker, Temporal, the services and the worker."
    "\n\n"
    "Every process is supervised: one that exits or is killed is started again, after a "
    "pause that doubles from 0.5 s up to 30 s while it keeps failing (back to 0.5 s once it "
    'ran for a minute), with a log line such as "review was killed by SIGKILL; restart 2 in '
    '1.0 s". The broker restarts empty and gets its topics again; Temporal restarts with its '
    "workflows. Only Ctrl-C (or SIGTERM) stops everything, within 10 s; a failure while "
    "starting ends the command with the reason."
    "\n\n"
    "While a process runs, its pid is in STATE_DIR/run/NAME.pid, e.g. to kill -9 it. "
    "STATE_DIR is GRANTFLOW_STATE_DIR (default .grantflow); NAME is tansu, temporal, intake, "
    "review, disbursement, reporting, workflows or finance-sim."
)


@app.command(help=UP_HELP)
def up(
    external: Annotated[
        bool,
        typer.Option(
            "--external",
            help="Take Kafka, Temporal and the database from settings; start only our processes.",
        ),
    ] = False,
    kafka_port: Annotated[
        int | None, typer.Option(help="Port of the embedded Kafka broker.")
    ] = None,
    temporal_port: Annotated[
        int | None, typer.Option(help="Port of the Temporal frontend.")
    ] = None,
    temporal_ui_port: Annotated[
        int | None, typer.Option(help="Port of the Temporal web UI.")
    ] = None,
    http_port_base: Annotated[
        int | None, typer.Option(help="Services listen on BASE+1 (intake) .. BASE+5 (workflows).")
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Use the demo catalog, whose periods are seconds: a cycle in minutes."
        ),
    ] = False,
    finance_delay: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds the finance simulator takes to settle a payment."),
    ] = 2.0,
) -> None:
    from grantflow.stack.options import StackOptions
    from grantflow.stack.supervisor import run_stack
    from shared.settings import CommonSettings

    if not external and CommonSettings().environment == "production":
        typer.echo(
            "grantflow up: production runs on Kafka, Temporal and PostgreSQL of its own, not "
            "on the embedded broker, Temporal dev server and SQLite: give their addresses in "
            "the settings and run grantflow up --external (or deploy/: compose or Kubernetes)",
            err=True,
        )
        raise typer.Exit(1)
    options = StackOptions.from_settings(
        external=external,
        kafka_port=kafka_port,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        http_port_base=http_port_base,
        demo=demo,
        finance_delay=finance_delay,
    )
    raise typer.Exit(run_stack(options))


DEMO_HELP = (
    "Play a season of applications at a human pace through the public APIs, as their "
    "people would: member cities apply one after another; most are awarded, paid, report "
    "and close, one in each five is declined by its reviewers and one withdrawn. Prints the "
    "applications by stage as they move, then the outcomes per program, the money per "
    "program and currency from the ledger, whether the ledger balances, and where to look."
    "\n\n"
    "Runs against the stack that grantflow up --demo serves from this folder, or with "
    "--start starts one here and leaves it running after the summary (Ctrl-C stops it). "
    "Exit status 0 when every application ended as scripted and the ledger balances."
)


@app.command(help=DEMO_HELP)
def demo(
    applications: Annotated[int, typer.Option(min=1, max=500, help="How many to play.")] = 10,
    pace: Annotated[
        float, typer.Option(min=0.0, help="Seconds between one application and the next.")
    ] = 3.0,
    start: Annotated[
        bool, typer.Option("--start", help="Start grantflow up --demo in this folder first.")
    ] = False,
    http_port_base: Annotated[
        int | None, typer.Option(help="The stack's services listen on BASE+1 .. BASE+5.")
    ] = None,
) -> None:
    from pathlib import Path

    from grantflow.demo import run_demo, start_stack
    from grantflow.driver import Endpoints
    from shared.settings import CommonSettings

    stack = start_stack(Path.cwd(), http_port_base) if start else None
    endpoints = Endpoints.local(CommonSettings().state_dir.resolve(), http_port_base)
    as_scripted = False
    try:
        as_scripted = asyncio.run(run_demo(endpoints, applications, pace, typer.echo))
        if stack is not None:
            typer.echo("the stack keeps running for a look around; Ctrl-C stops it")
            stack.wait()
    except KeyboardInterrupt:
        pass  # Ctrl-C ends the demo; the stack stops below
    finally:
        if stack is not None and stack.poll() is None:
            stack.send_signal(2)
            stack.wait(30)
    raise typer.Exit(0 if as_scripted else 1)


SETUP_HELP = (
    "Prepare an environment before its processes start: every process's tables, every "
    "topic (partitions, replication factor and min.insync.replicas from the settings) with "
    "its dead-letter topic and the broker-epoch marker, the Temporal namespace with its "
    "retention and the workflow's search attributes, and each catalog program's budget for "
    "its cycle where it has none."
    "\n\n"
    "Idempotent: run it on every deployment; it adds only what is missing and prints one line "
    "per thing it found or did. It waits up to --wait seconds for each dependency. Exit "
    "codes: 0 done, 1 a step failed (the message says which and why)."
)


@app.command(help=SETUP_HELP)
def setup(
    wait: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for the database, Kafka and Temporal.")
    ] = 120.0,
    budgets: Annotated[
        bool, typer.Option(help="Create the catalog programs' budgets where they have none.")
    ] = True,
) -> None:
    from grantflow.setup import SetupError
    from grantflow.setup import setup as set_up
    from shared.logging import configure_logging
    from shared.settings import CommonSettings

    settings = CommonSettings()
    configure_logging("setup", "WARNING", "text")
    # While it waits for Kafka, each refused connection would be logged as an error; what
    # still fails after the wait is said once, below.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        asyncio.run(set_up(settings, wait=wait, budgets=budgets, say=typer.echo))
    except SetupError as error:
        typer.echo(f"grantflow setup: {error}", err=True)
        raise typer.Exit(1) from error
    typer.echo("grantflow setup: done")


def _run_app(factory: str, host: str, port: int) -> None:
    """Serve the app that ``factory`` ("module:function") builds."""
    import uvicorn

    # The app configures logging itself (shared.service), so uvicorn must not.
    uvicorn.run(factory, factory=True, host=host, port=port, log_config=None, access_log=False)


@app.command()
def serve(service: Annotated[Service, typer.Argument(help="The service to run.")]) -> None:
    """Run one service's HTTP API and Kafka consumers."""
    from grantflow.services import SETTINGS_BY_SERVICE

    settings = SETTINGS_BY_SERVICE[service.value]()
    _run_app(f"services.{service.value}.app:create_app", settings.http_host, settings.http_port)


@app.command()
def worker() -> None:
    """Run the Temporal worker, the Kafka bridge and the officers' lifecycle API."""
    from workflows.settings import WorkflowsSettings

    settings = WorkflowsSettings()
    _run_app("workflows.funding.worker:create_app", settings.http_host, settings.http_port)


@app.command()
def probe(
    process: Annotated[Migrated, typer.Argument(help="The process to ask.")],
    live: Annotated[
        bool, typer.Option("--live", help="Ask /healthz (alive) instead of /readyz (ready).")
    ] = False,
) -> None:
    """Ask a process on this host whether it is ready (a container's health check).

    Exit codes: 0 ready (or alive), 1 not, with its answer on stderr.
    """
    import httpx

    from grantflow.services import SETTINGS_BY_SERVICE

    port = SETTINGS_BY_SERVICE[process.value]().http_port
    url = f"http://127.0.0.1:{port}/{'healthz' if live else 'readyz'}"
    try:
        response = httpx.get(url, timeout=3.0, trust_env=False)
    except httpx.HTTPError as error:
        typer.echo(f"grantflow probe: {url}: {error!r}", err=True)
        raise typer.Exit(1) from error
    if response.status_code != 200:
        typer.echo(f"grantflow probe: {url}: {response.status_code} {response.text}", err=True)
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(
    services: Annotated[
        list[Migrated] | None, typer.Argument(help="Services to migrate (default: all).")
    ] = None,
) -> None:
    """Apply each service's migrations to its own tables."""
    from grantflow.services import SETTINGS_BY_SERVICE
    from shared.migrations import upgrade

    for service in services or list(Migrated):
        url = SETTINGS_BY_SERVICE[service.value]().effective_database_url()
        upgrade(service.value, url)
        typer.echo(f"{service.value}: migrated ({url.split('@')[-1]})")


@topics_app.command("create")
def topics_create(
    partitions: Annotated[
        int | None, typer.Option(help="Partitions per topic (default: the setting).")
    ] = None,
) -> None:
    """Create every topic, its dead-letter topic and the broker-epoch marker."""
    from shared.messaging.epoch import prepare_broker
    from shared.messaging.topics_admin import all_topic_names
    from shared.service import topic_layout
    from shared.settings import CommonSettings

    settings = CommonSettings()
    if partitions is not None:
        settings = settings.model_copy(update={"kafka_topic_partitions": partitions})
    bootstrap = settings.kafka_bootstrap_servers
    epoch = asyncio.run(prepare_broker(bootstrap, topic_layout(settings), settings.topic_prefix))
    count = len(all_topic_names(settings.topic_prefix))
    typer.echo(f"{count} topics present on {bootstrap}, broker epoch {epoch}")


@topics_app.command("list")
def topics_list() -> None:
    """Print every topic with its owning producer and kind."""
    from shared.contracts.topics import ALL_TOPICS

    for topic in ALL_TOPICS:
        typer.echo(
            f"{topic.name:45} {topic.kind.value:8} {topic.owner.value:13} {topic.payload.__name__}"
        )


@app.command("finance-sim")
def finance_sim(
    delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds before finance answers an instruction.")
    ] = 2.0,
    failure_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of instructions finance refuses.")
    ] = 0.0,
    duplicate_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of settlements delivered twice.")
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Random seed, for repeatable runs.")] = None,
    refund_failure_rate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of refund requests finance fails to collect."),
    ] = 0.0,
    refund_delay: Annotated[
        float | None,
        typer.Option(min=0.0, help="Seconds before a refund arrives (default: --delay)."),
    ] = None,
) -> None:
    """Play a finance system: answer payment instructions with settlements or failures,
    and refund requests with the refund received or not collected."""
    import contextlib

    from services.disbursement.finance_sim import run_finance_sim
    from shared.logging import configure_logging
    from shared.settings import CommonSettings

    settings = CommonSettings()
    configure_logging("finance-sim", settings.log_level, settings.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_finance_sim(
                settings,
                delay_seconds=delay,
                failure_rate=failure_rate,
                duplicate_rate=duplicate_rate,
                seed=seed,
                refund_failure_rate=refund_failure_rate,
                refund_delay_seconds=refund_delay,
            )
        )


@reporting_app.command("rebuild")
def reporting_rebuild(
    database_url: Annotated[
        str | None, typer.Option(help="Rebuild into this database (default: the service's own).")
    ] = None,
) -> None:
    """Rebuild the analytics read model from the topics, from their first offset."""
    from services.reporting.rebuild import rebuild
    from services.reporting.settings import ReportingSettings

    settings = ReportingSettings()
    target = database_url or settings.effective_database_url()
    typer.echo(f"reporting: {asyncio.run(rebuild(settings, target))}")


def _moment(since: str | None) -> datetime | None:
    from grantflow.deadletters import parse_moment

    if since is None:
        return None
    try:
        return parse_moment(since)
    except ValueError as error:
        raise typer.BadParameter(
            f"{since!r} is not a moment: give e.g. 2026-11-30T10:00", param_hint="'--since'"
        ) from error


def _services(service: Migrated | None) -> tuple[str, ...]:
    return (service.value,) if service is not None else tuple(each.value for each in Migrated)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"grantflow dlq: {message}", err=True)
    return typer.Exit(1)


@dlq_app.command("list")
def dlq_list(
    service: Annotated[
        Migrated | None, typer.Option(help="Only this service's (default: every service's).")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Only those read from this topic (or its .dlq topic).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Only those dead-lettered at or after this moment, e.g. 2026-11-30T10:00 "
            "(ISO 8601, UTC unless it names an offset)."
        ),
    ] = None,
    include_replayed: Annotated[
        bool, typer.Option("--all", help="Also those replayed already.")
    ] = False,
) -> None:
    """List dead letters not yet replayed, oldest first: id, when, topic, attempts, reason."""
    from grantflow.deadletters import find_letters, list_line

    letters, problems = asyncio.run(
        find_letters(
            _services(service),
            topic=topic,
            since=_moment(since),
            include_replayed=include_replayed,
        )
    )
    for problem in problems:
        typer.echo(f"grantflow dlq: {problem}", err=True)
    if not letters:
        raise _fail("no dead letters" + ("" if include_replayed else " waiting for a replay"))
    width = max(len(str(letter.id)) for letter in letters)
    for letter in letters:
        typer.echo(list_line(letter, width))


@dlq_app.command("show")
def dlq_show(
    letter_id: Annotated[
        str, typer.Argument(metavar="ID", help="The dead letter, e.g. review:12.")
    ],
) -> None:
    """Show a dead letter: reason, attempts, consumer group, position, headers, the message."""
    from grantflow.deadletters import DeadLetterError, LetterId, describe, find_letter

    try:
        letter = asyncio.run(find_letter(LetterId.parse(letter_id)))
    except DeadLetterError as error:
        raise _fail(str(error)) from error
    typer.echo(describe(letter))


DLQ_REPLAY_HELP = (
    "Put dead letters back on their original topic, once their cause is fixed."
    "\n\n"
    "The message goes into the service's outbox with its original envelope and event id, "
    "and the dead letter is marked replayed; the service publishes it while it runs. Every "
    "consumer processes it at most once. A dead letter is replayed once, unless --again. "
    "With --topic, a message that several services dead-lettered goes back once, and each "
    "of its dead letters is marked replayed."
)


@dlq_app.command("replay", help=DLQ_REPLAY_HELP)
def dlq_replay(
    letter_id: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="The dead letter, e.g. review:12."),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Instead of an ID: every dead letter of this topic.")
    ] = None,
    service: Annotated[
        Migrated | None, typer.Option(help="With --topic: only this service's.")
    ] = None,
    again: Annotated[
        bool, typer.Option("--again", help="Also replay what was replayed before.")
    ] = False,
) -> None:
    from grantflow.deadletters import DeadLetterError, LetterId, replay_letter, replay_topic

    if (letter_id is None) == (topic is None):
        raise typer.BadParameter("give one of the two", param_hint="ID or '--topic'")
    if service is not None and topic is None:
        raise typer.BadParameter(
            "goes with --topic (an ID names its service)", param_hint="'--service'"
        )
    if letter_id is not None:
        try:
            replays = [asyncio.run(replay_letter(LetterId.parse(letter_id), again=again))]
        except DeadLetterError as error:
            raise _fail(str(error)) from error
    else:
        assert topic is not None
        replays, problems = asyncio.run(replay_topic(_services(service), topic, again=again))
        for problem in problems:
            typer.echo(f"grantflow dlq: {problem}", err=True)
        if not replays:
            before = "" if again else " (those replayed before need --again)"
            raise _fail(f"no dead letters of {topic} to replay{before}")
    for replay in replays:
        letter = replay.letter
        if replay.via != letter.id:
            typer.echo(f"{letter.id}: the same message, back on its topic with {replay.via}")
            continue
        typer.echo(
            f"{letter.id}: back on {letter.topic} (event {letter.event_id or 'without id'}, "
            f"outbox row {replay.outbox_row}); the {letter.id.service} service publishes it"
        )


@app.command()
def token(
    role: Annotated[RoleName, typer.Option(help="Role of the token's holder.")],
    member: Annotated[str | None, typer.Option(help="Member id (applicants).")] = None,
    reviewer: Annotated[str | None, typer.Option(help="Reviewer id (reviewers).")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject (default: derived).")] = None,
    hours: Annotated[int, typer.Option(help="Hours until it expires.")] = 12,
) -> None:
    """Mint a development bearer token signed with the configured secret (not in production:
    there, tokens come from the identity provider)."""
    from shared.auth import Role, mint_token
    from shared.settings import CommonSettings

    settings = CommonSettings()
    if settings.environment == "production":
        typer.echo(
            "grantflow token: refused in production; get tokens from the identity provider",
            err=True,
        )
        raise typer.Exit(1)
    try:
        typer.echo(
            mint_token(
                settings,
                role=Role(role.value),
                subject=subject,
                member_id=member,
                reviewer_id=reviewer,
                ttl=timedelta(hours=hours),
            )
        )
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error


@app.command()
def docs(
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the checked-in documents differ from the code.")
    ] = False,
) -> None:
    """Generate the OpenAPI documents and the AsyncAPI document under docs/."""
    from grantflow.apidocs import write_documents

    stale = write_documents(check=check)
    for path in stale:
        typer.echo(f"{'stale' if check else 'wrote'}: {path}")
    if check and stale:
        raise typer.Exit(1)


def main() -> None:
    app()
