"""Prometheus config, recording/alerting rules (promtool unit tests) and Grafana dashboards."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROM = DEPLOY / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; scripts/setup.sh installs it)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_prometheus_config_is_valid(promtool: str) -> None:
    res = run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert res.returncode == 0, res.stdout + res.stderr


def test_rules_pass_their_unit_tests(promtool: str) -> None:
    res = run(promtool, "test", "rules", str(PROM / "tests" / "camera_hub_rules_test.yml"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_every_alert_rule_has_a_unit_test() -> None:
    rules = yaml.safe_load((PROM / "rules" / "camera_hub.rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROM / "tests" / "camera_hub_rules_test.yml").read_text())
    tested = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", [])}
    assert alerts == tested
    # each alert is shown firing at least once, not only silent
    firing = {a["alertname"] for t in tests["tests"] for a in t.get("alert_rule_test", []) if a.get("exp_alerts")}
    assert alerts == firing


def known_series() -> set[str]:
    from camera_hub import metrics

    names = set()
    for obj in vars(metrics).values():
        if hasattr(obj, "_name") and hasattr(obj, "_type"):
            base = obj._name
            names.add(base + "_total" if obj._type == "counter" else base)
            if obj._type == "histogram":
                names.update({base + "_bucket", base + "_sum", base + "_count"})
    rules = yaml.safe_load((PROM / "rules" / "camera_hub.rules.yml").read_text())
    names.update(r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r)
    return names | {"up"}


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out.append((panel["title"], target["expr"]))
    return out


def test_dashboards_only_query_series_we_export() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 12
    known = known_series()
    functions = {"sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile", "by", "without",
                 "on", "group_left", "le", "bool", "quantile"}
    for title, expr in queries:
        body = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)
        for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", body):
            if name in functions or name in {"camera", "reason", "district", "type", "state", "model", "category",
                                             "unit", "level", "worker"}:
                continue
            assert name in known, f"panel {title!r} queries unknown series {name!r}"


def test_rules_only_use_series_we_export() -> None:
    known = known_series()
    rules = yaml.safe_load((PROM / "rules" / "camera_hub.rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in re.findall(r"\bcamera_hub[a-zA-Z0-9_:]*", rule["expr"]):
                assert name in known, f"rule {rule.get('alert') or rule.get('record')} uses unknown {name}"


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    prov = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "camera-hub.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
