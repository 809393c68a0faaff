"""docker-compose, Kubernetes manifests and the Dockerfile: check that they parse and that every
command, option, port and path they use exists. (The compose stack is run for real under Podman
by deploy/compose_check.py, a command, not a test: minutes and system installs; README, Deployment.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
import yaml

from camera_hub.cli import app
from camera_hub.config import ApiSettings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CLI = typer.main.get_command(app)


def check_cli_args(args: list[str]) -> None:
    """The subcommand exists and every --option it is given is one the command accepts."""
    cmd = CLI.commands.get(args[0])  # type: ignore[attr-defined]
    assert cmd is not None, f"unknown command {args[0]!r} in {args}"
    accepted = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
    for arg in args[1:]:
        if arg.startswith("--"):
            assert arg.split("=")[0] in accepted, f"`camera-hub {args[0]}` has no option {arg}"


def envvars_of(command: str) -> set[str]:
    params = CLI.commands[command].params  # type: ignore[attr-defined]
    return {p.envvar for p in params if isinstance(getattr(p, "envvar", None), str)}


def k8s_docs() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_compose_commands_ports_and_env_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("redis", "api", "worker", "prometheus", "grafana"):
        assert name in services
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and '--requirepass "$$REDIS_PASSWORD"' in redis_cmd
    assert "ports" not in services["redis"]  # reachable from the project's containers only
    for name in ("api", "worker"):  # they connect with the password Redis requires
        assert services[name]["environment"]["CAMERA_HUB_REDIS_URL"].startswith("redis://:${CAMERA_HUB_REDIS_PASSWORD:?")
    for name in ("api", "worker"):
        check_cli_args(services[name]["command"])
        for env in services[name]["environment"]:
            assert env in envvars_of(services[name]["command"][0]), f"{name}: {env} is not read by the command"
    check_cli_args(services["sim"]["command"])
    assert services["sim"]["profiles"] == ["sim"]  # only on request: it is not part of a deployment
    api_cmd = services["api"]["command"]
    port = api_cmd[api_cmd.index("--port") + 1]
    # the host side may be moved (CAMERA_HUB_API_PORT), the container side is the API's port
    assert services["api"]["ports"] == [f"${{CAMERA_HUB_API_PORT:-{port}}}:{port}"] and int(port) == ApiSettings().port
    worker_cmd = services["worker"]["command"]
    metrics_port = worker_cmd[worker_cmd.index("--metrics-port") + 1]
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["camera-hub-worker"]["dns_sd_configs"][0]["port"] == int(metrics_port)
    assert jobs["camera-hub-api"]["static_configs"][0]["targets"] == [f"api:{port}"]
    build = compose["x-hub"]["build"]
    assert (DEPLOY / build["context"] / "Dockerfile").exists()
    dockerfile = (DEPLOY / build["context"] / "Dockerfile").read_text()
    for arg in build["args"]:  # every build argument is one the Dockerfile declares
        assert f"ARG {arg}=" in dockerfile, arg


def test_kubernetes_manifests() -> None:
    docs = k8s_docs()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "camera-hub-worker") in kinds and ("Deployment", "camera-hub-api") in kinds
    assert ("Service", "camera-hub-api") in kinds and ("StatefulSet", "redis") in kinds
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            spec = d["spec"]
            assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
            for c in spec["template"]["spec"]["containers"]:
                if c["image"] == "camera-hub":
                    check_cli_args(c["args"])
                    envs = c.get("env", [])
                    # a variable only other values expand ($(NAME)) need not be read by the command
                    expanded = {n for e in envs for n in re.findall(r"\$\((\w+)\)", e.get("value", ""))}
                    for env in envs:
                        assert env["name"] in envvars_of(c["args"][0]) | expanded, \
                            f"{d['metadata']['name']}: {env['name']}"
                    by_name = {e["name"]: e for e in envs}
                    # Redis wants a password: the URL carries it from the secret
                    assert by_name["CAMERA_HUB_REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@redis:6379/0"
                    assert by_name["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "camera-hub-redis"
                    assert "livenessProbe" in c and c["resources"]["requests"], d["metadata"]["name"]
                    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                        if probe in c and "httpGet" in c[probe]:
                            assert c[probe]["httpGet"]["path"] in {"/readyz", "/healthz"}
                        elif probe in c:  # the worker serves no HTTP route of its own: its metrics port
                            assert c[probe]["tcpSocket"]["port"] in {p["name"] for p in c["ports"]}
    redis = next(d for d in docs if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "redis")
    assert "--requirepass" in " ".join(redis["spec"]["template"]["spec"]["containers"][0]["command"])
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    assert policies["redis-from-camera-hub-only"]["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "redis"}
    kustom = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    for res in kustom["resources"]:
        assert (DEPLOY / "kubernetes" / res).exists()
    for f in kustom["configMapGenerator"][0]["files"]:
        assert (DEPLOY / "kubernetes" / f.split("=", 1)[1]).resolve().exists(), f


@pytest.mark.parametrize("line", [ln for ln in (REPO / "Dockerfile").read_text().splitlines()
                                  if ln.startswith("COPY ")])
def test_dockerfile_copies_existing_paths(line: str) -> None:
    *sources, _dest = line.split()[1:]
    for src in sources:
        assert (REPO / src).exists(), line


def test_dockerfile_exposes_the_ports_used() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert f"EXPOSE {ApiSettings().port} 9101" in text


def test_kubernetes_manifests_validate_against_the_kubernetes_schemas() -> None:
    """Every resource against the Kubernetes OpenAPI schemas (kubernetes-validate bundles them),
    strict: an unknown or misspelt field fails."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for d in k8s_docs():
        kubernetes_validate.validate(d, kubernetes_validate.latest_version(), strict=True)
