"""The real local monitoring stack: Debian's prometheus and prometheus-pushgateway on free ports.

Metrics are pushed with plain HTTP (text exposition format), as the monitor does; Prometheus
scrapes them every second here. The gateway's metrics come from a real exposition: the registry
of serving/gateway/metrics.py served over HTTP by prometheus-client, as
`python -m serving.gateway serve --metrics-port` serves it, scraped as job gateway. Fails (not
skips) when a binary is missing.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import requests
from prometheus_client import start_http_server

from monitoring import stack
from monitoring.contract import CANARY_METRICS, KPI_METRICS, MONITOR_METRICS, SHADOW_METRICS
from monitoring.stack import (
    MonitoringError,
    PrometheusStack,
    dashboard_queries,
    firing_alerts_since,
    query,
    wait_for_query,
    wait_for_targets,
)
from serving.deploy import push_verification
from serving.gateway.metrics import GatewayMetrics
from serving.processes import free_ports, pid_alive, port_free

pytestmark = pytest.mark.integration

FEATURES = ("amount", "merchant")


def exposition(samples: list[tuple[str, dict[str, str], float]], kinds: dict[str, str]) -> str:
    """Prometheus text exposition of `samples` (name, labels, value), one TYPE line a name."""
    lines, typed = [], set()
    for name, labels, value in samples:
        family = name.removesuffix("_sum").removesuffix("_count")
        family = family if family in kinds else name
        if family not in typed:
            lines.append(f"# TYPE {family} {kinds.get(family, 'gauge')}")
            typed.add(family)
        rendered = ",".join(f'{key}="{val}"' for key, val in labels.items())
        lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
    return "\n".join(lines) + "\n"


def monitor_samples(now: float) -> list[tuple[str, dict[str, str], float]]:
    """One window of every monitor metric for a project (grouping label not repeated)."""
    samples = []
    for name, labels in MONITOR_METRICS.items():
        if "feature" in labels:
            for n, feature in enumerate(FEATURES):
                extra = {"feature": feature, **({"method": "psi"} if "method" in labels else {})}
                value = 1 - n if name == "mlops_feature_drift_detected" else 0.1 * (n + 1)
                if "source" in labels:  # attribution: the window's and the reference's
                    for source in ("window", "reference"):
                        samples.append((name, {**extra, "source": source}, value))
                else:
                    samples.append((name, extra, value))
        elif name == "mlops_model_quality":
            for model, value in (("champion", 0.81), ("baseline", 0.62)):
                samples.append((name, {"metric": "pr_auc", "model": model}, value))
        elif name == "mlops_model_quality_vs_baseline_pct":
            samples.append((name, {"metric": "pr_auc", "primary": "true"}, 30.6))
            samples.append((name, {"metric": "roc_auc", "primary": "false"}, -1.5))
        elif name == "mlops_model_quality_interval":
            for model, bounds in (("champion", (0.7, 0.9)), ("baseline", (0.5, 0.7))):
                for bound, value in zip(("low", "high"), bounds, strict=True):
                    samples.append((name, {"metric": "pr_auc", "model": model, "bound": bound},
                                    value))  # fmt: skip
        elif name == "mlops_model_quality_gain":  # the whole interval below 0: the alert's case
            for bound, value in (("estimate", -0.05), ("low", -0.08), ("high", -0.02)):
                samples.append((name, {"metric": "pr_auc", "bound": bound}, value))
        elif name in ("mlops_window_positives", "mlops_quality_evidence_sufficient"):
            samples.append((name, {}, {"mlops_window_positives": 120}.get(name, 1)))
        elif name.endswith("_timestamp_seconds"):
            samples.append((name, {}, now))
        else:
            fixed = {"mlops_drift_share": 0.4, "mlops_dataset_drift": 1,
                     "mlops_attribution_available": 1, "mlops_attribution_rank_changed": 0,
                     "mlops_attribution_rank_correlation": 0.9,
                     "mlops_attribution_top_k_overlap": 0.8}  # fmt: skip
            samples.append((name, {}, fixed.get(name, 7)))
    return samples


def shadow_samples() -> list[tuple[str, dict[str, str], float]]:
    """What the monitor pushes under job `shadow` while challenger v2 shadows champion v1."""
    versions = {"champion": "1", "challenger": "2"}
    samples = [("mlops_shadow_labelled_rows", versions, 300.0),
               ("mlops_shadow_positives", versions, 143.0),
               ("mlops_shadow_evidence_sufficient", versions, 1.0)]  # fmt: skip
    for model, value in (("champion", 0.31), ("challenger", 0.84)):
        samples.append(("mlops_shadow_quality", {"metric": "pr_auc", "model": model, **versions},
                        value))  # fmt: skip
    for bound, value in (("estimate", 0.53), ("low", 0.49), ("high", 0.6)):
        samples.append(("mlops_shadow_gain", {"metric": "pr_auc", "bound": bound, **versions},
                        value))  # fmt: skip
    assert {name for name, _, _ in samples} == set(SHADOW_METRICS)
    return samples


def canary_samples(state: str = "running") -> list[tuple[str, dict[str, str], float]]:
    """What the canary controller pushes under job `canary` after a decision on challenger v4
    beside champion v3: the share it decided and 1 on its `state` (0 on the others)."""
    versions = {"champion": "3", "challenger": "4"}
    samples = [("mlops_canary_share", versions, 0.25 if state == "running" else 0.0)]
    for name in ("running", "promoted", "rolled_back"):
        samples.append(("mlops_canary_state", {"state": name, **versions}, float(name == state)))
    assert {name for name, _, _ in samples} == set(CANARY_METRICS)
    return samples


def kpi_samples() -> list[tuple[str, dict[str, str], float]]:
    values = {"mlops_kpi_projects_total": 2, "mlops_kpi_projects_monitored": 1}
    return [
        (name, {"project": "fraud"} if labels else {}, values.get(name, 0.9))
        for name, labels in KPI_METRICS.items()
    ]


def triton_samples(step: int) -> list[tuple[str, dict[str, str], float]]:
    """What Triton 2.51 exposes for one model (names and labels as the real server's),
    counters advancing with `step`; pushed because this test runs no Triton."""
    model = {"model": "fraud", "version": "1"}
    samples = [
        ("nv_inference_request_success", model, 100.0 * step),
        ("nv_inference_request_failure", {**model, "reason": "BACKEND"}, 1.0 * step),
        ("nv_inference_count", model, 400.0 * step),
        ("nv_inference_exec_count", model, 50.0 * step),
        ("nv_inference_request_duration_us", model, 90_000.0 * step),
        ("nv_inference_queue_duration_us", model, 20_000.0 * step),
        ("nv_inference_compute_infer_duration_us", model, 60_000.0 * step),
    ]
    for family in ("nv_inference_request_summary_us", "nv_inference_queue_summary_us"):
        for quantile in ("0.5", "0.9", "0.95", "0.99", "0.999"):
            samples.append((family, {**model, "quantile": quantile}, 900.0))
        samples += [(f"{family}_count", model, 100.0 * step), (f"{family}_sum", model, 9e4 * step)]
    return samples


TRITON_KINDS = {
    "nv_inference_request_summary_us": "summary",
    "nv_inference_queue_summary_us": "summary",
    **{name: "counter" for name, _, _ in triton_samples(0) if "summary" not in name},
}


GATEWAY_MODEL = "fraud-classifier"


def gateway_traffic(metrics: GatewayMetrics, answered: int) -> None:
    """What the gateway records for `answered` good requests and one of each failure: a
    rejected request (4xx), an unknown model (4xx, model=""), Triton unavailable (503)."""
    metrics.serving(GATEWAY_MODEL)  # as the gateway does: its canary series exist at 0
    for i in range(answered):
        metrics.answered(GATEWAY_MODEL, 200, 0.004 + 0.001 * (i % 5))
        metrics.upstream_seconds.labels(GATEWAY_MODEL).observe(0.002)
        metrics.decisions.labels(GATEWAY_MODEL, "3", str(i % 2)).inc()
    metrics.answered(GATEWAY_MODEL, 422, 0.001)
    metrics.rejections.labels(GATEWAY_MODEL, "shape").inc()
    metrics.answered("", 404, 0.0005)
    metrics.rejections.labels("", "unknown_model").inc()
    metrics.answered(GATEWAY_MODEL, 503, 0.0008)
    metrics.upstream_up.set(1)
    metrics.log_queue_depth.set(answered)
    metrics.log_written.inc(answered)
    metrics.log_dropped.inc()
    metrics.log_write_errors.inc()
    metrics.shadow_mirrored.labels(GATEWAY_MODEL).inc(answered)  # every request mirrored
    metrics.shadow_seconds.labels(GATEWAY_MODEL).observe(0.006)
    metrics.shadow_failures.labels(GATEWAY_MODEL, "timeout").inc()
    # A canary answering a quarter of the requests: one in four routed to it, one fallback.
    metrics.canary_share.labels(GATEWAY_MODEL).set(0.25)
    for i in range(answered):
        arm, seconds = ("canary", 0.012) if i % 4 == 0 else ("champion", 0.004)
        metrics.canary_requests.labels(GATEWAY_MODEL, arm, "ok").inc()
        metrics.canary_upstream_seconds.labels(GATEWAY_MODEL, arm).observe(seconds)
    metrics.canary_requests.labels(GATEWAY_MODEL, "canary", "fallback").inc()


def push(url: str, grouping: str, body: str) -> None:
    response = requests.put(f"{url}/metrics/{grouping}", data=body.encode(), timeout=5)
    assert response.status_code in (200, 202), f"{grouping}: {response.status_code} {response.text}"


@pytest.fixture(scope="module")
def gateway_exposition():
    """The gateway's metrics registry on a free port, served by prometheus-client."""
    metrics = GatewayMetrics()
    (port,) = free_ports(1)
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    try:
        yield metrics, f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def monitoring_stack(tmp_path_factory, gateway_exposition):
    """The stack on free ports; Triton's target is a free port where nothing listens, the
    gateway's the real exposition above."""
    run_dir = tmp_path_factory.mktemp("monitoring") / "run"
    server = PrometheusStack(run_dir)
    (triton_port,) = free_ports(1)
    began = time.monotonic()
    try:
        state = server.start(
            prometheus_port=0,
            pushgateway_port=0,
            triton_metrics=f"127.0.0.1:{triton_port}",
            gateway_metrics=gateway_exposition[1],
            scrape_interval="1s",
            timeout_s=20,
        )
    except MonitoringError as exc:
        pytest.fail(str(exc))
    state["start_seconds"] = time.monotonic() - began
    try:
        yield server, state
    finally:
        server.stop()
    assert not [pid for pid in state["pids"].values() if pid_alive(pid)]


def test_stack_starts_ready_with_its_files_in_the_run_dir(monitoring_stack):
    server, state = monitoring_stack
    assert state["start_seconds"] < 15
    status = server.status()
    assert status["prometheus"]["ready"] and status["pushgateway"]["ready"]
    assert (server.run_dir / "prometheus.yml").is_file()
    assert (server.run_dir / "prometheus-data").is_dir()
    assert all((server.run_dir / f"{name}.pid").is_file() for name in stack.BINARIES)
    with pytest.raises(MonitoringError, match="already runs"):
        server.start(prometheus_port=0, pushgateway_port=0)
    with pytest.raises(MonitoringError, match=f"port {state['prometheus_port']} .* in use"):
        PrometheusStack(server.run_dir.parent / "other").start(
            prometheus_port=state["prometheus_port"], pushgateway_port=0
        )
    assert stack.main(["status", "--run-dir", str(server.run_dir)]) == 0
    # --web.enable-lifecycle: the rules can be reloaded without a restart
    assert requests.post(f"{server.prometheus_url}/-/reload", timeout=10).status_code == 200


def test_pushed_metrics_are_scraped_and_queryable(monitoring_stack):
    server, _ = monitoring_stack
    now = time.time()
    push(server.pushgateway_url, "job/monitor/project/fraud", exposition(monitor_samples(now), {}))
    push(server.pushgateway_url, "job/kpi", exposition(kpi_samples(), {}))
    # a project whose window is far below the baseline on 12 positives: not evidence
    few = [
        ("mlops_model_quality_gain", {"metric": "f1", "bound": "high"}, -0.3),
        ("mlops_window_positives", {}, 12),
        ("mlops_quality_evidence_sufficient", {}, 0),
    ]
    push(server.pushgateway_url, "job/monitor/project/churn", exposition(few, {}))
    # what `serving.deploy --pushgateway` pushes after verifying a version's bytes
    push_verification(server.pushgateway_url, "fraud", "fraud-classifier", "3", failed=False)
    targets = wait_for_targets(server.prometheus_url, ("prometheus", "pushgateway"), timeout_s=15)
    assert {target["labels"]["job"] for target in targets} == {"prometheus", "pushgateway"}

    (drift,) = wait_for_query(server.prometheus_url, "mlops_drift_share", timeout_s=15)
    # honor_labels: the push's job and grouping label, not job="pushgateway"
    assert drift["metric"]["job"] == "monitor" and drift["metric"]["project"] == "fraud"
    assert float(drift["value"][1]) == 0.4
    scores = query(server.prometheus_url, 'mlops_feature_drift_score{project="fraud"}')
    assert {s["metric"]["feature"]: float(s["value"][1]) for s in scores} == {
        "amount": 0.1,
        "merchant": 0.2,
    }
    wait_for_query(server.prometheus_url, 'mlops_kpi_projects_total{job="kpi"} == 2', timeout_s=5)
    with pytest.raises(MonitoringError, match="parse error"):
        query(server.prometheus_url, "sum(")


def test_alert_rules_are_loaded_and_evaluated(monitoring_stack):
    """mlops_dataset_drift=1 was pushed: DataDriftDetected is pending (for: 1m)."""
    server, _ = monitoring_stack
    wait_for_query(server.prometheus_url, "mlops_dataset_drift == 1", timeout_s=15)
    (alert,) = wait_for_query(
        server.prometheus_url, 'ALERTS{alertname="DataDriftDetected"}', timeout_s=10
    )
    assert alert["metric"]["project"] == "fraud" and alert["metric"]["alertstate"] == "pending"
    # Below the baseline with evidence (fraud) is pending; on 12 positives (churn) it is not.
    wait_for_query(server.prometheus_url, 'mlops_window_positives{project="churn"}', timeout_s=10)
    time.sleep(2)  # rules evaluate every 1s here: at least one evaluation saw churn's window
    (quality,) = wait_for_query(
        server.prometheus_url, 'ALERTS{alertname="ModelQualityBelowBaseline"}', timeout_s=10
    )
    assert quality["metric"]["project"] == "fraud" and quality["metric"]["metric"] == "pr_auc"
    body = requests.get(f"{server.prometheus_url}/api/v1/rules", timeout=5).json()
    names = {rule["name"] for group in body["data"]["groups"] for rule in group["rules"]}
    assert {"DataDriftDetected", "TritonErrorRateHigh", "MonitorStale"} <= names
    assert {"GatewayUpstreamDown", "GatewayInferenceLogDropping"} <= names


def test_the_gateway_is_scraped_from_its_real_exposition(monitoring_stack, gateway_exposition):
    server, state = monitoring_stack
    metrics, target = gateway_exposition
    assert state["gateway_metrics"] == target
    (scraped,) = wait_for_targets(server.prometheus_url, ("gateway",), timeout_s=15)
    assert scraped["scrapeUrl"] == f"http://{target}/metrics"
    gateway_traffic(metrics, 5)
    (ok,) = wait_for_query(
        server.prometheus_url,
        f'gateway_requests_total{{job="gateway",model="{GATEWAY_MODEL}",status_class="2xx"}} == 5',
        timeout_s=10,
    )
    assert ok["metric"]["instance"] == target
    # Unknown model names are one series, model="", whatever callers send.
    (unknown,) = query(server.prometheus_url, 'gateway_requests_total{model=""}')
    assert unknown["metric"]["status_class"] == "4xx"


def test_every_dashboard_panel_query_returns_data(monitoring_stack, gateway_exposition):
    server, _ = monitoring_stack
    metrics, _ = gateway_exposition
    for step in (1, 2):  # two scrapes with advancing counters, so rate() has something
        push(
            server.pushgateway_url,
            "job/triton-fixture",
            exposition(triton_samples(step), TRITON_KINDS),
        )
        gateway_traffic(metrics, 10)
        wait_for_query(
            server.prometheus_url, f"nv_inference_request_success == {100 * step}", timeout_s=10
        )
        wait_for_query(
            server.prometheus_url,
            f"gateway_inference_log_written_total == {5 + 10 * step}",
            timeout_s=10,
        )
    wait_for_query(server.prometheus_url, "mlops_kpi_test_coverage_ratio", timeout_s=10)
    push(server.pushgateway_url, "job/shadow/project/fraud", exposition(shadow_samples(), {}))
    wait_for_query(server.prometheus_url, "mlops_shadow_gain", timeout_s=10)
    push(server.pushgateway_url, "job/canary/project/fraud", exposition(canary_samples(), {}))
    wait_for_query(server.prometheus_url, 'mlops_canary_state{project="fraud"}', timeout_s=10)
    empty = [
        f"{uid}: {title}: {expr}"
        for uid, title, expr in dashboard_queries()
        if not query(server.prometheus_url, expr)
    ]
    assert not empty, "panels without data:\n" + "\n".join(empty)
    panels = {title: expr for _, title, expr in dashboard_queries()}
    (batch,) = query(server.prometheus_url, panels["Triton: average batch size"])
    assert float(batch["value"][1]) == pytest.approx(8.0)
    # The gateway's panels compute what was recorded: per round 10 answered, 1 rejected and
    # 1 unavailable for the model, so about 1 in 12 answers was a 5xx (rate() extrapolates
    # each series from its own first sample, hence the margin).
    classes = query(server.prometheus_url, panels["Gateway: requests by status class"])
    assert {s["metric"]["status_class"] for s in classes} == {"2xx", "4xx", "5xx"}
    (share,) = query(server.prometheus_url, panels["Gateway: 5xx share"])
    assert share["metric"]["model"] == GATEWAY_MODEL
    assert 1 / 24 < float(share["value"][1]) < 1 / 6
    versions = query(server.prometheus_url, panels["Gateway: decisions per version"])
    assert {(s["metric"]["version"], s["metric"]["decision"]) for s in versions} == {
        ("3", "0"),
        ("3", "1"),
    }

    # The canary panels: per round 3 of 10 answered by the canary plus 1 fallback (1 in 4 of
    # its requests failed), none of the champion's 7; its p99 in the 10-15 ms bucket.
    def by_arm(title: str) -> dict[str, float]:
        return {s["metric"]["arm"]: float(s["value"][1])
                for s in query(server.prometheus_url, panels[title])}  # fmt: skip

    rates = by_arm("Canary: error rate by arm (errors + fallbacks)")
    assert rates["champion"] == 0 and 0.15 < rates["canary"] < 0.35, rates
    p99 = by_arm("Canary: Triton latency p99 by arm")
    assert 10 < p99["canary"] <= 15 and 3 < p99["champion"] <= 5, p99
    (state,) = query(server.prometheus_url, panels["Canary: rollout state (controller)"])
    assert (state["metric"]["state"], state["metric"]["challenger"]) == ("running", "4")


def test_a_gateway_alert_is_evaluated_on_the_real_prometheus(monitoring_stack, gateway_exposition):
    """Triton unreachable from the gateway: GatewayUpstreamDown goes pending (for: 1m)."""
    server, _ = monitoring_stack
    metrics, target = gateway_exposition
    metrics.upstream_up.set(0)
    try:
        (alert,) = wait_for_query(
            server.prometheus_url, 'ALERTS{alertname="GatewayUpstreamDown"}', timeout_s=15
        )
        assert alert["metric"]["instance"] == target
        assert alert["metric"]["alertstate"] == "pending"
    finally:
        metrics.upstream_up.set(1)


def test_a_rolled_back_canary_alerts_a_person(monitoring_stack):
    """The controller's push after a rollback fires CanaryRolledBack at once (for: 0m)."""
    server, _ = monitoring_stack
    push(server.pushgateway_url, "job/canary/project/churn",
         exposition(canary_samples("rolled_back"), {}))  # fmt: skip
    (alert,) = wait_for_query(
        server.prometheus_url,
        'ALERTS{alertname="CanaryRolledBack",project="churn",alertstate="firing"}',
        timeout_s=15,
    )
    assert (alert["metric"]["challenger"], alert["metric"]["champion"]) == ("4", "3")
    assert "rollout" not in alert["metric"]
    # the controller reads when an alert became active (a predecessor's is older than its canary)
    (active,) = [
        when for labels, when in firing_alerts_since(server.prometheus_url)
        if (labels["alertname"], labels.get("project")) == ("CanaryRolledBack", "churn")
    ]  # fmt: skip
    assert active is not None and abs(datetime.now(UTC) - active) < timedelta(minutes=1)


ATTRIBUTION_PROJECT = "attrdrift"


@pytest.fixture(scope="module")
def explained_version(tracking, tmp_path_factory):
    """A GBDT version registered as the pipeline leaves it: the skops model with its hash tag,
    the drift reference and the explain step's SHAP files in its run; the champion alias."""
    import mlflow

    from configs import load_config
    from features.contract import clean_rows
    from features.fraud_data import generate_transactions
    from features.split import model_inputs, split_data
    from models import registry
    from models.explain import explain_model
    from models.reference import log_reference, reference_frame
    from tests.conftest import write_config
    from tests.unit.conftest import fit_pipeline

    root = tmp_path_factory.mktemp("attribution")
    path = write_config(root / f"{ATTRIBUTION_PROJECT}.yaml", name=ATTRIBUTION_PROJECT,
                        monitoring={"window": "1D", "min_window_rows": 10})  # fmt: skip
    config = load_config(path)
    train, _, test = split_data(
        clean_rows(generate_transactions(6000, seed=5, messy=False), config).clean, config
    )
    model = fit_pipeline(config, train, "gbdt", {"max_iter": 60, "max_leaf_nodes": 15})
    X = model_inputs(train, config)
    explained = model_inputs(test, config).sample(300, random_state=0).reset_index(drop=True)
    explain_model(model, "gbdt", X.sample(100, random_state=0), explained, root / "shap",
                  local_examples=1)  # fmt: skip
    with mlflow.start_run(experiment_id=registry.experiment_id(config.name, root / "art")) as run:
        uri = registry.log_model(model, X.head(5))
        log_reference(reference_frame(train, config, model))
        mlflow.log_artifacts(str(root / "shap"), "reports/shap")
    tags = {registry.SKOPS_SHA256_TAG: registry.logged_skops_sha256(uri)}
    version = registry.register(uri, config.model_name, run.info.run_id, tags).version
    mlflow.MlflowClient().set_registered_model_alias(config.model_name, "champion", version)
    return config, model, model_inputs(test, config), version


def test_the_monitor_pushes_attribution_drift_and_its_alert_goes_pending(
    monitoring_stack, explained_version, tmp_path, monkeypatch
):
    """The real monitor on two logged days of a registered GBDT: an ordinary day keeps the
    training ranking; a day on which every request claims a new device does not. The newest
    window's gauges reach Prometheus through the Pushgateway, and AttributionRankingChanged is
    evaluated on them."""
    from monitoring.monitor import run_monitor
    from serving.inference_log import prediction_frame, write_predictions

    server, _ = monitoring_stack
    config, model, rows, version = explained_version
    monkeypatch.chdir(tmp_path)  # the monitor's MLflow run keeps its artifacts beside the store
    days = {
        "2026-07-01": rows.iloc[:300],
        "2026-07-02": rows.iloc[300:600].assign(is_new_device=1.0),
    }
    for day, features in days.items():
        score = model.predict_proba(features)[:, 1]
        write_predictions(tmp_path / "log", config.model_name, prediction_frame(
            model=config.model_name, version=version, features=features, scores=score,
            decisions=(score >= 0.5).astype(int),
            timestamps=pd.date_range(day, periods=len(features), freq="4min", tz="UTC"),
        ))  # fmt: skip
    began = time.monotonic()
    ordinary, drifted = run_monitor(
        config,
        log_root=tmp_path / "log",
        out_root=tmp_path / "out",
        pushgateway=server.pushgateway_url,
        evidently=False,
    )
    seconds = time.monotonic() - began
    assert ordinary.attribution["state"] == drifted.attribution["state"] == "available"
    assert ordinary.attribution["ranking_changed"] is False
    assert drifted.attribution["ranking_changed"] is True
    assert drifted.attribution["window_top"][0] == "is_new_device"
    assert drifted.attribution["sampled_rows"] == config.monitoring.attribution_sample_rows
    assert seconds < 60, f"two windows took {seconds:.1f} s"

    project = f'project="{ATTRIBUTION_PROJECT}"'
    wait_for_query(server.prometheus_url, f"mlops_attribution_rank_changed{{{project}}} == 1",
                   timeout_s=15)  # fmt: skip
    means = query(
        server.prometheus_url, f'mlops_attribution_mean_abs{{{project},feature="is_new_device"}}'
    )
    by_source = {s["metric"]["source"]: float(s["value"][1]) for s in means}
    assert by_source["window"] == pytest.approx(drifted.attribution["window"]["is_new_device"])
    assert by_source["window"] > 3 * by_source["reference"]
    where = f'{project},source="window",feature="is_new_device"'
    (rank,) = query(server.prometheus_url, f"mlops_attribution_rank{{{where}}}")
    assert float(rank["value"][1]) == 1
    (alert,) = wait_for_query(
        server.prometheus_url,
        f'ALERTS{{alertname="AttributionRankingChanged",{project}}}',
        timeout_s=10,
    )
    assert alert["metric"]["alertstate"] == "pending" and alert["metric"]["job"] == "monitor"


def test_stop_leaves_no_process_and_frees_the_ports(tmp_path):
    server = PrometheusStack(tmp_path / "run")
    state = server.start(prometheus_port=0, pushgateway_port=0, timeout_s=20)
    pids = state["pids"]
    assert stack.main(["down", "--run-dir", str(server.run_dir)]) == 0
    for process in server.processes.values():  # our children: reap them
        process.wait(timeout=10)
    for name, pid in pids.items():
        assert not pid_alive(pid), f"{name} ({pid}) still runs"
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)  # nothing left in its process group either
    for port in (state["prometheus_port"], state["pushgateway_port"]):
        assert port_free("127.0.0.1", port)
    assert stack.main(["status", "--run-dir", str(server.run_dir)]) == 3
    assert server.stop() is False


def test_a_server_that_exits_during_start_is_reported_with_its_log(tmp_path):
    """A rule file Prometheus cannot load: start fails naming it, the Pushgateway is stopped."""
    template = tmp_path / "prometheus.yml"
    template.write_text(
        stack.PROMETHEUS_CONFIG.read_text().replace("- alerts.yml", "- broken_rules.yml")
    )
    (tmp_path / "broken_rules.yml").write_text("groups:\n  - name: g\n    rules:\n      - x: 1\n")
    server = PrometheusStack(tmp_path / "run", template=template)
    with pytest.raises(
        MonitoringError, match=r"prometheus exited with code \d+(.|\n)*broken_rules"
    ):
        server.start(prometheus_port=0, pushgateway_port=0, timeout_s=20)
    assert server.running_pids() == {} and server.processes == {}
