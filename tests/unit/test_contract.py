"""The contract: the envelope, the topic registry and the settings guard."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from services.disbursement.settings import DisbursementSettings
from services.intake.settings import IntakeSettings
from shared.contracts.envelope import Envelope, deterministic_id, new_envelope
from shared.contracts.intake import ApplicationWithdrawn
from shared.contracts.topics import ALL_TOPICS, DEAD_LETTER_SUFFIX, broker_topic_names


def withdrawn() -> ApplicationWithdrawn:
    return ApplicationWithdrawn(application_id="app-1", member_id="m-1", reason="postponed")


def test_every_topic_is_versioned_and_named_once() -> None:
    names = [topic.name for topic in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(name.rsplit(".", 1)[-1].startswith("v") for name in names)


def test_every_payload_forbids_unknown_fields() -> None:
    for topic in ALL_TOPICS:
        assert topic.payload.model_config.get("extra") == "forbid", topic.name


def test_dead_letter_topics_are_created_with_their_topics() -> None:
    names = broker_topic_names("ci.")
    for topic in ALL_TOPICS:
        assert f"ci.{topic.name}" in names
        assert f"ci.{topic.name}{DEAD_LETTER_SUFFIX}" in names


def test_a_caused_message_inherits_the_correlation_id() -> None:
    cause = new_envelope(withdrawn(), producer="intake", application_id="app-1")
    effect = new_envelope(
        withdrawn(), producer="workflows", application_id="app-1", causation=cause
    )  # type: ignore[arg-type]
    assert effect.correlation_id == cause.correlation_id == str(cause.event_id)
    assert effect.causation_id == str(cause.event_id)
    assert effect.event_type == "ApplicationWithdrawn"


def test_envelope_round_trips_through_json_and_refuses_unknown_fields() -> None:
    envelope = new_envelope(withdrawn(), producer="intake", application_id="app-1")
    text = envelope.model_dump_json()
    assert Envelope[ApplicationWithdrawn].model_validate_json(text) == envelope
    with pytest.raises(ValidationError):
        Envelope[ApplicationWithdrawn].model_validate_json(
            text.replace('"reason"', '"surprise":1,"reason"')
        )


def test_deterministic_ids_repeat_for_the_same_step_only() -> None:
    first = deterministic_id("application-1", "reserve-funds", "1")
    assert first == deterministic_id("application-1", "reserve-funds", "1")
    assert first != deterministic_id("application-1", "reserve-funds", "2")
    assert isinstance(first, uuid.UUID)


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ValidationError, match="jwt_secret must be set in production"):
        IntakeSettings(environment="production")
    with pytest.raises(ValidationError, match="finance_webhook_secret"):
        DisbursementSettings(environment="production", jwt_secret="a-real-secret")
    with pytest.raises(ValidationError, match="event_id_secret must be set in production"):
        IntakeSettings(environment="production", jwt_secret="j" * 32, link_secret="l" * 32)
    assert IntakeSettings(
        environment="production",
        jwt_secret="j" * 32,
        link_secret="l" * 32,
        event_id_secret="e" * 32,
        database_url="postgresql+asyncpg://grantflow@db/grantflow",
        public_url="https://grants.example.org",
    )


def test_service_settings_read_their_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRANTFLOW_INTAKE_HTTP_PORT", "9999")
    monkeypatch.setenv("GRANTFLOW_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    settings = IntakeSettings()
    assert settings.http_port == 9999
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.effective_database_url().endswith("data/intake.db")


def test_derived_event_ids_are_keyed_with_the_deployments_secret() -> None:
    from shared.contracts.envelope import configure_event_ids, deterministic_id

    public = deterministic_id("application-app-1", "reserve-funds", "1")
    try:
        configure_event_ids("a-secret-of-this-deployment-only-0123456789")
        keyed = deterministic_id("application-app-1", "reserve-funds", "1")
        assert keyed == deterministic_id("application-app-1", "reserve-funds", "1")
        assert keyed != public
        configure_event_ids("another-deployments-secret-0123456789abcdef")
        assert deterministic_id("application-app-1", "reserve-funds", "1") != keyed
    finally:
        configure_event_ids(None)
    # Without a secret (development, and the recorded histories): the ids as they were.
    assert deterministic_id("application-app-1", "reserve-funds", "1") == public
