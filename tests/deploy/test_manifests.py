"""The deploy files describe every service correctly: compose and Kubernetes, probes, env names, secrets, images."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from schleuse_common.settings import InfraSettings, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose" / "docker-compose.yml"
K8S = DEPLOY / "k8s"
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").is_file())
SINGLETONS = {"ingest"}  # one file tailer per calls volume: no autoscaling
# Env names read outside the settings classes.
EXTRA_ENV = {"SCHLEUSE_CONFIG"}
SECRET_ENV = {"SCHLEUSE_DATABASE_URL", "SCHLEUSE_REDIS_URL", "SCHLEUSE_VAULT_TOKEN"}


def settings_class(service: str) -> type[BaseSettings]:
    """The service's settings class, or the shared base while the service has none yet."""
    try:
        module = importlib.import_module(f"schleuse_{service}.settings")
    except ModuleNotFoundError:
        return ServiceSettings
    found = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, ServiceSettings) and v is not ServiceSettings
    ]
    assert len(found) == 1, f"schleuse_{service}.settings should define one ServiceSettings subclass"
    return found[0]


def allowed_env(service: str) -> set[str]:
    """Every environment variable the service reads: its own prefix + fields, and the infra ones."""
    cls = settings_class(service)
    prefix = f"SCHLEUSE_{service.upper()}_"
    if cls is not ServiceSettings:
        assert str(cls.model_config.get("env_prefix")) == prefix
    own = {prefix + name.upper() for name in cls.model_fields if name != "infra"}
    infra_prefix = str(InfraSettings.model_config.get("env_prefix"))
    return own | {infra_prefix + name.upper() for name in InfraSettings.model_fields} | EXTRA_ENV


def health_port(service: str, env: dict[str, str]) -> int:
    key = f"SCHLEUSE_{service.upper()}_HEALTH_PORT"
    assert key in env, f"{service} does not set {key}"
    return int(env[key])


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.rglob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d["kind"] == kind}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_services_are_discovered() -> None:
    assert {"gateway", "chat", "dlp", "providers", "governance", "analytics", "ingest"} <= set(SERVICES)


# -- compose -------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_compose_runs_the_service_with_readiness_on_its_port(compose: dict[str, Any], service: str) -> None:
    svc = compose["services"].get(service)
    assert svc is not None, f"no compose service for {service}"
    assert svc["command"] == ["python", "-m", f"schleuse_{service}"]
    env = {k: str(v) for k, v in svc["environment"].items()}
    port = health_port(service, env)
    assert env[f"SCHLEUSE_{service.upper()}_HEALTH_HOST"] == "0.0.0.0"
    check = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in check
    assert svc["restart"] in {"unless-stopped", "always"}
    limits = svc["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]
    assert svc["read_only"] is True
    unknown = set(env) - allowed_env(service)
    assert not unknown, f"{service} sets env its settings do not read: {sorted(unknown)}"


def test_compose_has_the_production_infrastructure(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "nats", "redis", "minio", "openbao", "caddy", "prometheus", "grafana"):
        assert name in services, name
    assert "--jetstream" in services["nats"]["command"]
    assert any(str(v).startswith("nats:/") for v in services["nats"]["volumes"])  # JetStream survives restarts
    assert services["gateway"].get("ports") is None  # only Caddy publishes ports
    published = [n for n, s in services.items() if s.get("ports")]
    assert published == ["caddy"]
    caddyfile = (DEPLOY / "compose" / "Caddyfile").read_text(encoding="utf-8")
    assert "reverse_proxy gateway:8080" in caddyfile


def test_prometheus_scrapes_every_service_on_its_health_port(compose: dict[str, Any]) -> None:
    prom = yaml.safe_load((DEPLOY / "compose" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        (name, sd["port"])
        for job in prom["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    for service in SERVICES:
        env = {k: str(v) for k, v in compose["services"][service]["environment"].items()}
        assert (service, health_port(service, env)) in targets, service


def test_grafana_is_provisioned_with_a_dashboard_of_platform_metrics() -> None:
    grafana = DEPLOY / "compose" / "grafana"
    ds = yaml.safe_load((grafana / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8"))
    uid = ds["datasources"][0]["uid"]
    dashboards = list((grafana / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dash = json.loads(path.read_text(encoding="utf-8"))
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        assert any("schleuse_bus_handler_seconds" in e for e in exprs)
        assert all(p["datasource"]["uid"] == uid for p in dash["panels"])


def test_compose_holds_no_plaintext_secrets(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for line in text.splitlines():
        m = re.match(r"\s*\w*(PASSWORD|TOKEN|SECRET)\w*:\s*(\S+)", line)
        if m:
            assert m.group(2).startswith("${"), f"literal secret in compose: {line.strip()}"
    for url in re.findall(r"\w+://[^\s\"']+", text):
        userinfo = url.split("://", 1)[1].split("@")[0] if "@" in url else ""
        assert not userinfo or "${" in userinfo, f"credentials in {url}"
    env_example = (DEPLOY / "compose" / ".env.example").read_text(encoding="utf-8")
    for line in env_example.splitlines():
        if re.match(r"\w*(PASSWORD|TOKEN)=", line):
            assert line.endswith("=CHANGE_ME"), line


# -- Kubernetes ----------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = {str(K8S / r) for r in kustomization["resources"]}
    present = {str(p) for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present
    kinds = {d["kind"] for d in k8s_docs()}
    for kind in (
        "Namespace",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "Ingress",
        "Job",
    ):
        assert kind in kinds, kind


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_deployment_probes_resources_and_security(service: str) -> None:
    dep = by_kind("Deployment").get(service)
    assert dep is not None, f"no Deployment for {service}"
    pod = dep["spec"]["template"]["spec"]
    (ctr,) = pod["containers"]
    assert ctr["command"] == ["python", "-m", f"schleuse_{service}"]
    env = {e["name"]: e for e in ctr["env"]}
    port = health_port(service, {k: str(e.get("value", "")) for k, e in env.items()})
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    assert ports["http"] == port
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert ctr["resources"]["requests"] and ctr["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True
    assert ctr["securityContext"]["allowPrivilegeEscalation"] is False
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)
    unknown = set(env) - allowed_env(service)
    assert not unknown, f"{service} sets env its settings do not read: {sorted(unknown)}"
    for name in SECRET_ENV & set(env):
        assert "secretKeyRef" in env[name].get("valueFrom", {}), f"{name} must come from a Secret"
    svc = by_kind("Service")[service]
    assert svc["spec"]["ports"][0]["port"] == port
    assert by_kind("PodDisruptionBudget")[service]["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": service
    }
    hpa = by_kind("HorizontalPodAutoscaler").get(service)
    if service in SINGLETONS:
        assert hpa is None and dep["spec"]["replicas"] == 1
    else:
        assert hpa is not None and hpa["spec"]["scaleTargetRef"]["name"] == service
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 2


def test_only_the_gateway_takes_ingress() -> None:
    policies = by_kind("NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"]["podSelector"] == {}
    allowed_app_ports = {
        p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name"): p
        for p in policies.values()
        if p["spec"].get("ingress")
    }
    assert set(allowed_app_ports) == {"gateway", None}  # gateway from the controller, all from monitoring only
    monitoring = policies["metrics-from-monitoring"]
    assert monitoring["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    (ingress,) = by_kind("Ingress").values()
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"gateway"}


def test_migration_job_does_not_use_the_dev_stack() -> None:
    job = by_kind("Job")["schleuse-migrate"]
    (ctr,) = job["spec"]["template"]["spec"]["containers"]
    script = " ".join(ctr["command"])
    assert "migrate_all" in script and "devrun migrate" not in script
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True


def test_k8s_holds_no_secret_values() -> None:
    assert "Secret" not in {d["kind"] for d in k8s_docs()}
    for cm in by_kind("ConfigMap").values():
        for key, value in cm["data"].items():
            assert not re.search(r"password|token|secret", key, re.I), key
            assert not re.search(r"\w+://[^/\s]*:[^/\s]*@", value), f"credentials in ConfigMap {key}"


def test_config_sections_are_settings_of_their_service() -> None:
    texts = [(DEPLOY / "compose" / "schleuse.yaml").read_text(encoding="utf-8")]
    texts.append(by_kind("ConfigMap")["schleuse-config"]["data"]["schleuse.yaml"])
    for text in texts:
        config = yaml.safe_load(text)
        for key, value in config.items():
            if isinstance(value, dict):
                assert key in SERVICES, key
                fields = settings_class(key).model_fields
                assert set(value) <= set(fields), f"{key}: {set(value) - set(fields)}"
            else:
                assert key in InfraSettings.model_fields, key


# -- images --------------------------------------------------------------------------------


def _images() -> list[str]:
    compose_images = [s["image"] for s in yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"].values()]
    k8s_images = [
        c["image"]
        for d in k8s_docs()
        if d["kind"] in {"Deployment", "Job"}
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    base = re.findall(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, re.M)
    return compose_images + k8s_images + base


def test_images_are_pinned() -> None:
    images = _images()
    assert len(images) > 10
    for image in images:
        image = re.sub(r"\$\{\w+:-([^}]+)\}", r"\1", image)  # a default in ${VAR:-default}
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image} has no tag"
        assert (tag != "latest" and re.search(r"\d", tag)) or "@sha256:" in image, f"{image} is not pinned"


def test_dockerfile_builds_every_service_as_non_root() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "uv sync --frozen --no-dev --all-packages" in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M)
    assert dockerfile.count("FROM ") >= 2  # multi-stage
    for service in SERVICES:
        assert f"COPY services/{service}/pyproject.toml" in dockerfile, service
