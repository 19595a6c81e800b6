"""Gauges measured every ``GRANTFLOW_METRICS_REFRESH_MS``: what a scrape should not wait for.

- ``outbox_backlog``: outbox rows not yet published (the relay is behind, or held back);
- ``consumer_lag_messages{topic}``: messages the broker holds beyond what the process's
  consumers have fetched, per topic, summed over its partitions;
- extra labelled gauges a process measures itself (the workflows process: applications
  per stage, from Temporal's visibility).

They are served on the app's ``/metrics`` beside the runtime's counters (``serve_gauges``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

Measure = Callable[[], Awaitable[Mapping[str, float]]]


@dataclass
class LabelledGauge:
    """One gauge family with one label, refreshed by ``measure``."""

    name: str
    documentation: str
    label: str
    measure: Measure
    values: dict[str, float] = field(default_factory=dict)


async def consumer_lag(consumers: Iterable[AIOKafkaConsumer]) -> dict[str, float]:
    """Per topic: the broker's high-water marks minus the consumers' positions."""
    lag: dict[str, float] = {}
    for consumer in consumers:
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            if highwater is None:  # nothing fetched from it yet
                continue
            with contextlib.suppress(Exception):
                position = await asyncio.wait_for(consumer.position(partition), 1.0)
                lag[partition.topic] = lag.get(partition.topic, 0.0) + max(highwater - position, 0)
    return lag


class Gauges:
    """Gauges of one process, measured in the background and read by the scrape."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.plain: dict[str, tuple[str, Callable[[], Awaitable[float]]]] = {}
        self.plain_values: dict[str, float] = {}
        self.labelled: list[LabelledGauge] = []

    def add(self, name: str, documentation: str, measure: Callable[[], Awaitable[float]]) -> None:
        self.plain[name] = (documentation, measure)

    def add_labelled(self, name: str, documentation: str, label: str, measure: Measure) -> None:
        self.labelled.append(LabelledGauge(name, documentation, label, measure))

    async def refresh(self) -> None:
        for name, (_documentation, measure) in self.plain.items():
            try:
                self.plain_values[name] = float(await measure())
            except Exception as error:  # the database or Temporal is away: keep the last value
                logger.debug("gauge %s not measured: %r", name, error)
        for gauge in self.labelled:
            try:
                gauge.values = dict(await gauge.measure())
            except Exception as error:
                logger.debug("gauge %s not measured: %r", gauge.name, error)

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)

    def collect(self) -> Iterable[Any]:
        for name, (documentation, _measure) in self.plain.items():
            if name in self.plain_values:
                family = GaugeMetricFamily(name, documentation)
                family.add_metric([], self.plain_values[name])
                yield family
        for gauge in self.labelled:
            family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=[gauge.label])
            for value, count in sorted(gauge.values.items()):
                family.add_metric([value], count)
            yield family


def serve_gauges(app: FastAPI, gauges: Gauges) -> None:
    """Serve ``gauges`` on the app's ``/metrics``, after what ``shared.http`` serves there.

    ``shared.http.add_operational_routes`` has no labelled gauges: its route is replaced, in
    place (the API documents keep their order), by one that adds these families.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(gauges)
    routes = app.router.routes
    for index, route in enumerate(routes):
        if isinstance(route, APIRoute) and route.path == "/metrics":
            # The same route in every other respect: its guard, its documentation.
            routes[index] = APIRoute(
                route.path,
                _adding(route.endpoint, registry),
                methods=sorted(route.methods or {"GET"}),
                tags=route.tags,
                dependencies=route.dependencies,
                summary=route.summary,
                description=route.description,
                response_description=route.response_description,
                responses=route.responses,
                response_class=route.response_class,
                name=route.name,
                operation_id=route.operation_id,
                include_in_schema=route.include_in_schema,
                openapi_extra=route.openapi_extra,
            )
            return
    raise LookupError("the app serves no /metrics to add the gauges to")


def _adding(
    served: Callable[[], Awaitable[Response]], registry: CollectorRegistry
) -> Callable[[], Awaitable[Response]]:
    async def metrics() -> Response:
        response = await served()
        return Response(
            bytes(response.body) + generate_latest(registry), media_type=CONTENT_TYPE_LATEST
        )

    return metrics
