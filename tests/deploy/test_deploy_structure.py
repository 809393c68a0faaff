"""docker-compose, Kubernetes manifests and the Dockerfile cannot run here (no Docker engine):
check that they parse and that every command, option, port and path they use exists."""

from __future__ import annotations

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
    assert "--appendonly" in services["redis"]["command"]
    for name in ("api", "worker"):
        check_cli_args(services[name]["command"])
        for env in services[name]["environment"]:
            assert env in envvars_of(services[name]["command"][0]), f"{name}: {env} is not read by the command"
    api_cmd = services["api"]["command"]
    port = api_cmd[api_cmd.index("--port") + 1]
    assert services["api"]["ports"] == [f"{port}:{port}"] and int(port) == ApiSettings().port
    worker_cmd = services["worker"]["command"]
    metrics_port = worker_cmd[worker_cmd.index("--metrics-port") + 1]
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["camera-hub-worker"]["dns_sd_configs"][0]["port"] == int(metrics_port)
    assert jobs["camera-hub-api"]["static_configs"][0]["targets"] == [f"api:{port}"]
    assert (DEPLOY / compose["x-hub"]["build"] / "Dockerfile").exists()


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
                    for env in c.get("env", []):
                        assert env["name"] in envvars_of(c["args"][0]), f"{d['metadata']['name']}: {env['name']}"
                    for probe in ("readinessProbe", "livenessProbe"):
                        if probe in c:
                            assert c[probe]["httpGet"]["path"] in {"/readyz", "/healthz"}
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
