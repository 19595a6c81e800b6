"""The embedded stack writes mail as .eml files that a mail client can open."""

from __future__ import annotations

import email
import email.message
import email.policy
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


async def test_non_ascii_subject_and_body_survive_the_round_trip(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path / "mail", sender="grants@example.org")
    body = "Estimados colegas de Querétaro,\n\nla solicitud fue aprobada — felicidades."
    await mailer.send(
        Mail(to=("alcaldia@queretaro.example",), subject="Aprobación: Querétaro", body=body)
    )
    [path] = mailer.sent()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert str(message["Subject"]) == "Aprobación: Querétaro"
    assert isinstance(message, email.message.EmailMessage)
    assert message.get_content().rstrip("\n") == body
    assert path.read_bytes().isascii()  # any mail transport can carry it
