"""Alert rules, scrape config and dashboards as code, checked with the real promtool.

promtool comes from the Debian package `prometheus`; the tests fail (not skip) without it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from configs import load_config
from configs.schema import Serving
from monitoring import stack
from monitoring.contract import (
    CANARY_METRICS,
    DEPLOY_METRICS,
    KPI_METRICS,
    METRIC_NAMES,
    MONITOR_METRICS,
    SHADOW_METRICS,
    TRITON_METRICS,
)
from monitoring.stack import DASHBOARDS_DIR, MonitoringError, dashboard_queries, render_config
from serving.gateway.metrics import GatewayMetrics

PROMETHEUS_DIR = stack.MONITORING_DIR / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
PROVISIONING = stack.MONITORING_DIR / "grafana" / "provisioning"
DASHBOARD_FILES = sorted(DASHBOARDS_DIR.glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
ALERT_NAMES = {
    "DataDriftDetected",
    "FeatureMissingInWindow",
    "ModelQualityBelowBaseline",
    "AttributionRankingChanged",
    "TritonErrorRateHigh",
    "TritonLatencySLOBreach",
    "MonitorStale",
    "GatewayInferenceLogDropping",
    "GatewayErrorRateHigh",
    "GatewayUpstreamDown",
    "GatewayShadowFailing",
    "GatewayLatencySLOBreach",
    "ArtifactVerificationFailed",
    "CanaryErrorRateHigh",
    "CanaryLatencyHigh",
    "CanaryRolledBack",
}
CONFIGS = sorted((stack.REPO_ROOT / "configs").glob("*.yaml"))


def gateway_families() -> dict[str, set[str]]:
    """The gateway's metric families (serving/gateway/metrics.py, the one definition) and the
    sample names Prometheus stores for each: counters get _total, histograms _bucket/_sum/_count."""
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name: {family.name + suffix for suffix in suffixes[family.type]}
        for family in GatewayMetrics().registry.collect()
    }


GATEWAY_METRIC_NAMES = frozenset().union(*gateway_families().values())


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found on PATH: sudo apt-get install -y prometheus")
    return found


def run_promtool(promtool: str, *args: str | Path) -> str:
    done = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


# -- metric names out of PromQL ----------------------------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^}]*\}|\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def metric_names(promql: str) -> set[str]:
    """Metric names in `promql`: identifiers that are not functions, keywords, labels or numbers."""
    text = _STRINGS.sub('""', promql)
    text = _BRACES.sub(" ", text)  # label matchers, ranges and subqueries
    text = _GROUPING.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def test_metric_name_parser_finds_names_and_nothing_else():
    promql = (
        "sum by (model, version) (rate(a_total{x=\"b{c}\", y=~'d|e'}[5m] offset 1h))"
        " / on (model) group_left (version) b:recorded > bool 1e3"
        " unless histogram_quantile(0.99, c_bucket) or time() - d_seconds"
    )
    assert metric_names(promql) == {"a_total", "b:recorded", "c_bucket", "d_seconds"}


# -- alert rules ---------------------------------------------------------------------------------


def test_promtool_check_rules(promtool):
    found = f"SUCCESS: {len(alert_rules())} rules found"
    assert found in run_promtool(promtool, "check", "rules", ALERTS)


def test_promtool_rule_unit_tests_pass(promtool):
    assert "SUCCESS" in run_promtool(promtool, "test", "rules", ALERTS_TEST)


def test_every_alert_is_tested_firing_and_not_firing():
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert {rule["alert"] for rule in alert_rules()} == ALERT_NAMES
    assert fired == ALERT_NAMES and quiet == ALERT_NAMES


def test_alerts_carry_severity_summary_description_and_runbook():
    runbook = (stack.REPO_ROOT / "docs" / "runbook.md").read_text()
    for rule in alert_rules():
        assert f"\n## {rule['alert']}\n" in runbook, f"no runbook section for {rule['alert']}"
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert annotations["runbook"] == f"docs/runbook.md#{name.lower()}"
        labels = {
            "Gateway": ("$labels.model", "$labels.instance"),  # per model or per replica
            "Triton": ("$labels.model",),
            "Canary": ("$labels.model", "$labels.project"),  # the gateway's or the controller's
        }.get(re.match(r"[A-Z][a-z]+", name).group(), ("$labels.project",))
        label = next((lab for lab in labels if lab in annotations["summary"]), labels[0])
        assert label in annotations["summary"] and label in annotations["description"], name
        assert rule["for"], f"{name} has no for:"


def test_canary_rules_carry_the_labels_the_canary_controller_reads():
    """monitoring.canary rolls a canary back while an alert labelled rollout="canary" fires for
    its model (the served name), so those rules keep `model` and the rollback notice, which
    names a finished rollout, carries no rollout label."""
    rules = {rule["alert"]: rule for rule in alert_rules()}
    rollout = {name for name, rule in rules.items() if "rollout" in rule["labels"]}
    assert rollout == {"CanaryErrorRateHigh", "CanaryLatencyHigh"}
    for name in rollout:
        assert rules[name]["labels"]["rollout"] == "canary", name
        assert re.search(r"\bby \(model(, le)?\)", rules[name]["expr"]), name
        assert "gateway_canary_" in rules[name]["expr"], name
    assert "rollout" not in rules["CanaryRolledBack"]["labels"]
    # A canary answers callers: Triton's rules leave out shadow models only.
    for name in ("TritonErrorRateHigh", "TritonLatencySLOBreach"):
        excluded = set(re.findall(r'model!~"([^"]*)"', rules[name]["expr"]))
        assert excluded == {".*__shadow"}, (name, excluded)


# -- scrape config ------------------------------------------------------------------------------


def test_repo_and_rendered_prometheus_configs_pass_promtool(promtool, tmp_path):
    run_promtool(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    repo_jobs = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["scrape_configs"]
    assert tuple(job["job_name"] for job in repo_jobs) == stack.SCRAPE_JOBS
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(
        render_config(
            prometheus="127.0.0.1:19090",
            pushgateway="127.0.0.1:19091",
            triton="10.0.0.5:18002",
            gateway="10.0.0.5:18003",
            scrape_interval="1s",
        )
    )
    out = run_promtool(promtool, "check", "config", rendered)
    assert "SUCCESS: 1 rule files found" in out
    config = yaml.safe_load(rendered.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: job["static_configs"][0]["targets"] for name, job in jobs.items()}
    assert targets == {
        "prometheus": ["127.0.0.1:19090"],
        "pushgateway": ["127.0.0.1:19091"],
        "triton": ["10.0.0.5:18002"],
        "gateway": ["10.0.0.5:18003"],
    }
    assert jobs["pushgateway"]["honor_labels"] is True
    assert config["rule_files"] == [str(ALERTS)]
    assert config["global"]["scrape_interval"] == config["global"]["scrape_timeout"] == "1s"
    # The gateway's default target is the port `python -m serving.gateway serve` exposes.
    default = yaml.safe_load(render_config(prometheus="a:1", pushgateway="b:2", triton="c:3"))
    (gateway,) = [job for job in default["scrape_configs"] if job["job_name"] == "gateway"]
    assert gateway["static_configs"] == [{"targets": ["127.0.0.1:8003"]}]


def test_render_config_names_the_file_and_the_missing_job(tmp_path):
    template = tmp_path / "prometheus.yml"
    template.write_text("scrape_configs:\n  - job_name: prometheus\n    static_configs: []\n")
    with pytest.raises(MonitoringError, match=rf"{template}: .*no job 'prometheus'"):
        render_config(prometheus="a:1", pushgateway="b:2", triton="c:3", template=template)


def test_a_missing_binary_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MonitoringError, match="apt-get install -y prometheus-pushgateway"):
        stack.find_binary("pushgateway")
    with pytest.raises(MonitoringError, match="prometheus not found on PATH"):
        stack.PrometheusStack(tmp_path / "run").start()


# -- dashboards ---------------------------------------------------------------------------------


def test_dashboards_are_complete_and_point_at_the_prometheus_datasource():
    assert [path.stem for path in DASHBOARD_FILES] == ["kpis", "model-health", "serving"]
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] == path.stem and dashboard["title"]
        assert 36 <= dashboard["schemaVersion"] <= 41, path
        panels = dashboard["panels"]
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{path}: duplicate panel ids {ids}"
        for panel in panels:
            where = f"{path.name}: panel {panel['id']} {panel.get('title')!r}"
            assert panel.get("title") and panel.get("gridPos"), where
            assert panel["datasource"] == DATASOURCE, where
            assert panel["targets"], f"{where} has no target"
            ref_ids = [target["refId"] for target in panel["targets"]]
            assert len(ref_ids) == len(set(ref_ids)), where
            for target in panel["targets"]:
                assert target["datasource"] == DATASOURCE, where
                assert target.get("expr", "").strip(), f"{where}: empty expr"
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"] == DATASOURCE, f"{path.name}: ${variable['name']}"


def test_every_dashboard_expr_is_valid_promql(promtool, tmp_path):
    """promtool parses each panel's PromQL (variables substituted) as a recording rule."""
    queries = dashboard_queries()
    assert len(queries) >= 25
    rules = [
        {"record": f"dashboard:{uid.replace('-', '_')}:{n}", "expr": expr}
        for n, (uid, _, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run_promtool(promtool, "check", "rules", path)
    assert not [expr for _, _, expr in queries if "$" in expr]


def test_dashboard_queries_substitutes_variables_and_rejects_unknown_ones(tmp_path):
    dashboard = {
        "uid": "d",
        "templating": {"list": [{"name": "project", "allValue": "fraud|churn"}, {"name": "m"}]},
        "panels": [
            {
                "title": "row",
                "type": "row",
                "panels": [
                    {
                        "title": "p",
                        "targets": [
                            {"expr": 'rate(x{project=~"$project",m=~"${m}"}[$__rate_interval])'}
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "d.json"
    path.write_text(json.dumps(dashboard))
    assert dashboard_queries(path) == [("d", "p", 'rate(x{project=~"fraud|churn",m=~".*"}[1m])')]
    dashboard["panels"][0]["panels"][0]["targets"][0]["expr"] = "x{a=~'$nope'}"
    path.write_text(json.dumps(dashboard))
    with pytest.raises(ValueError, match=r"d.json: panel 'p': unknown variable \$nope"):
        dashboard_queries(path)


def _used_names() -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for uid, title, expr in dashboard_queries():
        used.setdefault(f"{uid}: {title}", set()).update(metric_names(expr))
    for path in DASHBOARD_FILES:
        for variable in json.loads(path.read_text())["templating"]["list"]:
            query = variable["query"]["query"]
            used[f"{path.stem}: ${variable['name']}"] = set(
                re.findall(r"label_values\(\s*([\w:]+)\s*,", query)
            )
    for rule in alert_rules():
        used[f"alert {rule['alert']}"] = metric_names(rule["expr"])
    return used


def test_dashboards_and_rules_use_only_contract_metric_names():
    known = METRIC_NAMES | GATEWAY_METRIC_NAMES
    used = _used_names()
    unknown = {where: names - known for where, names in used.items() if names - known}
    assert not unknown, f"not in monitoring/contract.py or serving/gateway/metrics.py: {unknown}"
    assert all(used.values()), [where for where, names in used.items() if not names]


def test_every_contract_metric_is_on_a_dashboard():
    on_dashboards = set().union(
        *(names for where, names in _used_names().items() if not where.startswith("alert"))
    )
    families = (MONITOR_METRICS, KPI_METRICS, TRITON_METRICS, DEPLOY_METRICS, SHADOW_METRICS,
                CANARY_METRICS)  # fmt: skip
    assert set().union(*families) == METRIC_NAMES
    assert sorted(METRIC_NAMES - on_dashboards) == []


def test_every_gateway_metric_is_on_the_serving_dashboard():
    """Each family of serving/gateway/metrics.py has a panel (through one of its sample names)."""
    on_serving = set().union(
        *(names for where, names in _used_names().items() if where.startswith("serving: "))
    )
    families = gateway_families()
    assert len(families) >= 10, sorted(families)
    assert sorted(name for name, samples in families.items() if not samples & on_serving) == []


LATENCY_ALERTS = ("TritonLatencySLOBreach", "GatewayLatencySLOBreach", "CanaryLatencyHigh")
LATENCY_PANELS = (
    "Triton: latency p50 / p99",
    "Gateway: latency p50 / p99 (edge and Triton)",
    "Canary: Triton latency p99 by arm",
)


def test_latency_alerts_dashboards_and_runbook_are_the_configs_budget():
    """`serving.p99_budget_ms` is the one latency budget: infra validation holds every project
    to it, and both latency alerts, the two latency panels' red line and the runbook state the
    same number. Prometheus rules are global (one threshold for every model), so a project
    with its own budget fails here rather than being alerted at another one."""
    budget = Serving().p99_budget_ms
    assert CONFIGS, "no project configs found"
    budgets = {path.stem: load_config(path).serving.p99_budget_ms for path in CONFIGS}
    assert set(budgets.values()) == {budget}, budgets
    stated = f"{budget:g} ms"
    rules = {r["alert"]: r for r in alert_rules() if r["alert"] in LATENCY_ALERTS}
    assert set(rules) == set(LATENCY_ALERTS)
    for name, rule in rules.items():
        threshold = re.search(r"\)\s*(?:/|\*)\s*1000\s*>\s*([\d.]+)\s*$", rule["expr"].strip())
        assert threshold and float(threshold.group(1)) == budget, (name, rule["expr"])
        assert stated in rule["annotations"]["summary"], name
        assert stated in rule["annotations"]["description"], name
    panels = {
        panel["title"]: panel
        for panel in json.loads((DASHBOARDS_DIR / "serving.json").read_text())["panels"]
    }
    for title in LATENCY_PANELS:
        steps = panels[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps if s["color"] == "red"] == [budget], title
        assert f"p99 below {stated}" in panels[title]["description"], title
    runbook = (stack.REPO_ROOT / "docs" / "runbook.md").read_text()
    for name in LATENCY_ALERTS:
        section = runbook.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert f"above {stated}" in section or f"above the {stated}" in section, name


def test_grafana_provisioning_points_at_the_datasource_and_a_dashboards_folder():
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert source["url"] == "${PROMETHEUS_URL}"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
