"""The OpenAPI documents of the HTTP services and the AsyncAPI document of the topics.

Both are generated from the code and checked in under docs/; ``grantflow docs --check``
(run by the test suite) fails when they drift.
"""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from shared.contracts.envelope import Envelope
from shared.contracts.topics import ALL_TOPICS

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
HTTP_APPS = {
    "intake": "services.intake.app",
    "review": "services.review.app",
    "disbursement": "services.disbursement.app",
    "reporting": "services.reporting.app",
    "workflows": "workflows.funding.worker",
}


def openapi_documents() -> dict[str, dict[str, Any]]:
    documents = {}
    for name, module in HTTP_APPS.items():
        app = import_module(module).create_app()
        documents[name] = app.openapi()
    return documents


def asyncapi_document() -> dict[str, Any]:
    """Every topic, its owner and its envelope-wrapped payload, as AsyncAPI 3."""
    broker = KafkaBroker("kafka:9092", description="grantflow topics (one producer each)")
    for topic in ALL_TOPICS:
        broker.publisher(
            topic.name,
            title=topic.name,
            description=f"{topic.kind.value} owned by {topic.owner.value}: {topic.description}",
            schema=Envelope[topic.payload],  # type: ignore[name-defined]
        )
    spec = AsyncAPI(
        broker,
        title="grantflow events",
        version="1.0.0",
        description="The event contract between grantflow's services.",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    return document


def _render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_documents(check: bool = False) -> list[Path]:
    """Write (or with ``check`` only compare) every document; return the ones that differ."""
    wanted = {
        DOCS_DIR / "openapi" / f"{name}.json": doc for name, doc in openapi_documents().items()
    }
    wanted[DOCS_DIR / "asyncapi.json"] = asyncapi_document()
    differing = []
    for path, document in wanted.items():
        text = _render(document)
        if path.exists() and path.read_text() == text:
            continue
        differing.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return differing
