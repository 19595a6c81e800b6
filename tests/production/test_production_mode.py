"""What production mode refuses: development secrets, short secrets, SQLite, links to
nowhere, the embedded stack, and development tokens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from grantflow.stack.banner import token_lines
from grantflow.stack.options import StackOptions
from services.disbursement.settings import DisbursementSettings
from services.intake.settings import IntakeSettings
from services.review.settings import ReviewSettings
from shared.settings import (
    DEVELOPMENT_JWT_SECRET,
    DEVELOPMENT_LINK_SECRET,
    DEVELOPMENT_WEBHOOK_SECRET,
    CommonSettings,
)

SECRET = "s" * 32
POSTGRES = "postgresql+asyncpg://grantflow@db.example.org/grantflow"
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "jwt_secret": SECRET,
    "link_secret": "l" * 40,
    "event_id_secret": "e" * 40,
    "database_url": POSTGRES,
}


def refusal(kind: type[CommonSettings], **values: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        kind(**{**PRODUCTION, **values})
    return str(raised.value)


def test_production_accepts_long_secrets_postgresql_and_public_urls() -> None:
    assert IntakeSettings(**PRODUCTION, public_url="https://grants.example.org")
    assert ReviewSettings(**PRODUCTION)
    assert DisbursementSettings(**PRODUCTION, finance_webhook_secret="w" * 32)


@pytest.mark.parametrize(
    "secret",
    ["jwt_secret", "link_secret", "event_id_secret"],
    ids=["token secret", "link secret", "event id secret"],
)
@pytest.mark.parametrize(
    "value", [DEVELOPMENT_JWT_SECRET, DEVELOPMENT_LINK_SECRET, DEVELOPMENT_WEBHOOK_SECRET, ""]
)
def test_production_refuses_any_development_value_for_any_secret(secret: str, value: str) -> None:
    said = refusal(ReviewSettings, **{secret: value})
    assert f"{secret} must be set in production (GRANTFLOW_{secret.upper()})" in said


def test_production_refuses_secrets_shorter_than_32_bytes() -> None:
    said = refusal(ReviewSettings, link_secret="x" * 31)
    assert "link_secret (GRANTFLOW_LINK_SECRET) must be at least 32 bytes in production" in said
    # Bytes, not characters: 16 two-byte characters are enough.
    assert ReviewSettings(**{**PRODUCTION, "link_secret": "é" * 16})


def test_the_webhook_secret_follows_the_same_rule_as_every_secret() -> None:
    said = refusal(DisbursementSettings, finance_webhook_secret="short")
    assert "GRANTFLOW_DISBURSEMENT_FINANCE_WEBHOOK_SECRET) must be at least 32 bytes" in said
    said = refusal(DisbursementSettings)
    assert "finance_webhook_secret must be set in production" in said


def test_an_identity_provider_replaces_the_token_secret_but_not_the_link_secret() -> None:
    jwks = {"jwt_jwks_url": "https://id.example.org/jwks", "jwt_secret": ""}
    assert ReviewSettings(**{**PRODUCTION, **jwks})
    said = refusal(ReviewSettings, **jwks, link_secret=DEVELOPMENT_LINK_SECRET)
    assert "link_secret must be set" in said and "jwt_secret" not in said


def test_production_refuses_sqlite() -> None:
    said = refusal(ReviewSettings, database_url=None)
    assert "review needs PostgreSQL in production, not SQLite" in said
    said = refusal(ReviewSettings, service_database_url="sqlite+aiosqlite:///review.db")
    assert "GRANTFLOW_REVIEW_SERVICE_DATABASE_URL" in said


def test_production_refuses_links_that_would_point_at_the_bind_address() -> None:
    said = refusal(IntakeSettings)
    assert "public_url must be set in production (GRANTFLOW_INTAKE_PUBLIC_URL)" in said


def test_every_problem_is_said_at_once() -> None:
    said = refusal(IntakeSettings, jwt_secret="short", database_url=None)
    for problem in ("jwt_secret", "SQLite", "public_url"):
        assert problem in said


def run_grantflow(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRANTFLOW_")}
    env |= {
        "GRANTFLOW_ENVIRONMENT": "production",
        "GRANTFLOW_JWT_SECRET": SECRET,
        "GRANTFLOW_LINK_SECRET": SECRET,
        "GRANTFLOW_EVENT_ID_SECRET": SECRET,
        "GRANTFLOW_DATABASE_URL": POSTGRES,
        "GRANTFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    return subprocess.run(
        [sys.executable, "-m", "grantflow", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_refuses_in_production(tmp_path: Path) -> None:
    result = run_grantflow(tmp_path, "token", "--role", "program_officer")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "refused in production" in result.stderr


def test_up_refuses_the_embedded_stack_in_production(tmp_path: Path) -> None:
    result = run_grantflow(tmp_path, "up")
    assert result.returncode == 1
    assert "grantflow up --external" in result.stderr
    assert not (tmp_path / "state").exists(), "something was started"


def test_up_prints_no_tokens_in_production() -> None:
    options = StackOptions.from_settings(
        external=True, settings=CommonSettings(**{**PRODUCTION, "database_url": POSTGRES})
    )
    lines = token_lines(options)
    assert lines == ["Tokens: none in production; get them from the identity provider."]
