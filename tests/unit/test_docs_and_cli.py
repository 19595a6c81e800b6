"""The checked-in API documents match the code, and the command lists what it can do."""

from __future__ import annotations

import subprocess
import sys

from grantflow.apidocs import write_documents


def test_checked_in_openapi_and_asyncapi_documents_match_the_code() -> None:
    stale = write_documents(check=True)
    assert stale == [], f"run `make docs` and commit: {[str(path) for path in stale]}"


def test_grantflow_help_lists_every_subcommand() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grantflow", "--help"], capture_output=True, text=True, check=True
    )
    for command in (
        "up",
        "serve",
        "worker",
        "db",
        "topics",
        "token",
        "docs",
        "reporting",
        "finance-sim",
        "dlq",
        "setup",
        "probe",
    ):
        assert f" {command} " in result.stdout, f"{command} missing from --help"


def test_token_command_mints_a_token_the_services_accept() -> None:
    from shared.auth import TokenVerifier
    from shared.settings import CommonSettings

    result = subprocess.run(
        [sys.executable, "-m", "grantflow", "token", "--role", "applicant", "--member", "m-7"],
        capture_output=True,
        text=True,
        check=True,
    )
    principal = TokenVerifier(CommonSettings()).verify(result.stdout.strip())
    assert (principal.role, principal.member_id) == ("applicant", "m-7")


def test_token_command_refuses_an_applicant_without_a_member() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "grantflow", "token", "--role", "applicant"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "member" in result.stderr
