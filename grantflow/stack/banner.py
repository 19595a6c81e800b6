"""What ``grantflow up`` prints once everything is ready: where things are, and tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from grantflow.stack.options import StackOptions

DEMO_MEMBER: Final = "demo-member-1"
DEMO_REVIEWER: Final = "demo-reviewer-1"
TOKEN_TTL: Final = timedelta(hours=12)


def ready_banner(options: StackOptions, seconds: float) -> str:
    rows = [("service", "url", "API docs")]
    rows += [(spec.name, spec.url, f"{spec.url}/docs") for spec in options.services]
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [""] + [f"  {a:<{width[0]}}   {b:<{width[1]}}   {c}" for a, b, c in rows]
    extra: list[tuple[str, str]] = []
    if options.temporal_ui_url:
        extra.append(("Temporal UI", options.temporal_ui_url))
    extra += [
        (
            "Temporal",
            f"{options.temporal_address} (namespace {options.settings.temporal_namespace})",
        ),
        ("Kafka", options.kafka_bootstrap_servers),
        ("state", str(options.state_dir)),
        ("pid files", f"{options.run_dir}/<name>.pid"),
    ]
    pages = {spec.name: spec.url for spec in options.services}
    extra += [
        ("applicant portal", f"{pages['intake']}/portal (applicant token)"),
        ("reviewer inbox", f"{pages['review']}/inbox"),
        ("officer console", f"{pages['workflows']}/console (program officer token)"),
        ("dashboard", f"{pages['reporting']}/dashboard (program officer token)"),
    ]
    label_width = max(len(label) for label, _value in extra)
    lines += [""] + [f"  {label:<{label_width}}   {value}" for label, value in extra]
    lines += ["", *token_lines(options), ""]
    lines.append(f"grantflow is ready in {seconds:.1f} s (Ctrl-C stops everything)")
    return "\n".join(lines)


def token_lines(options: StackOptions) -> list[str]:
    settings = options.settings
    if settings.environment == "production":
        return ["Tokens: none in production; get them from the identity provider."]
    if settings.jwt_jwks_url:
        return [
            "Development tokens: none, GRANTFLOW_JWT_JWKS_URL is set; "
            "get tokens from the identity provider."
        ]
    from shared.auth import Role, mint_token

    wanted: list[tuple[str, Role, dict[str, str]]] = [
        (f"applicant ({DEMO_MEMBER})", Role.APPLICANT, {"member_id": DEMO_MEMBER}),
        (f"reviewer ({DEMO_REVIEWER})", Role.REVIEWER, {"reviewer_id": DEMO_REVIEWER}),
        ("program_officer", Role.PROGRAM_OFFICER, {}),
        ("admin", Role.ADMIN, {}),
    ]
    hours = TOKEN_TTL.total_seconds() / 3600
    lines = [
        f"Development tokens (valid {hours:.0f} h; header "
        "'Authorization: Bearer <token>'; more with 'grantflow token'):"
    ]
    label_width = max(len(label) for label, _, _ in wanted)
    for label, role, binding in wanted:
        token = mint_token(settings, role=role, ttl=TOKEN_TTL, **binding)
        lines.append(f"  {label:<{label_width}}   {token}")
    return lines
