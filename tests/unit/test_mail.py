"""The embedded stack writes mail as .eml files that a mail client can open."""

from __future__ import annotations

import email
from pathlib import Path

from shared.mail import FileMailer, Mail


async def test_file_mailer_writes_a_readable_message(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path / "mail", sender="grants@example.org")
    await mailer.send(
        Mail(
            to=("mayor@kisumu.example",),
            subject="Your application was awarded",
            body="Congratulations.",
            application_id="app-1",
        )
    )
    [path] = mailer.sent()
    message = email.message_from_bytes(path.read_bytes())
    assert message["To"] == "mayor@kisumu.example"
    assert message["Subject"] == "Your application was awarded"
    assert message["X-Grantflow-Application"] == "app-1"
    assert message.get_payload().strip() == "Congratulations."
