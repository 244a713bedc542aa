"""The whole monitoring loop for real, on small data: nothing here is faked. kfp.local trains a
deliberately weak first champion (2,500 rows of the normal period); a real Triton serves it
behind the real gateway; the simulator replays the drifted period through the gateway, which
writes the inference log, and labels arrive late; the monitor pushes to a real Pushgateway that
a real Prometheus scrapes with the repo's rules; every dashboard panel's PromQL returns data;
the drift alert fires; the loop retrains on the labelled log, the gate and infra validation
pass, Triton swaps versions; the next drifted week is no longer drift for the new model (its
reference is the drifted data it learned from).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from configs import load_config
from models.registry import champion_version
from monitoring import kpi, monitor, simulate
from monitoring.loop import firing_alerts, run_loop
from monitoring.stack import PrometheusStack, dashboard_queries, query, wait_for_query
from pipelines import run_local
from serving import deploy, launcher
from serving.client import ModelClient
from serving.deploy import SERVING_REPOSITORY
from serving.gateway import cli as gateway
from serving.inference_log import read_log
from serving.processes import free_ports
from tests.conftest import write_config

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

PROJECT = "loop"
MODEL = f"{PROJECT}-classifier"
SIMULATION = {"rows": 20_000, "days": 28, "rate_per_s": 20_000, "batch_rows": 200,
              "label_delay_s": 0.5}  # fmt: skip


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory, tracking):
    root = tmp_path_factory.mktemp("loop")
    config_path = write_config(
        root / "loop.yaml",
        name=PROJECT,
        data={"rows": 2_500, "seed": 3},
        tuning={"n_trials": 2},
        gate={"min_gain_over_baseline": -1.0, "min_slice_metric": 0.0},
        monitoring={
            "window": "7D",
            "min_window_rows": 200,
            "retrain_lookback_days": 60,
            "retrain_trials": 3,
            "simulation": SIMULATION,
        },  # fmt: skip
    )
    cwd = os.getcwd()
    os.chdir(root)
    triton = launcher.TritonServer(
        run_dir=root / "tritonserver-run"
    )  # not "triton/": torch imports that
    stack = PrometheusStack(run_dir=root / "prometheus")
    try:
        assert run_local.main(["--project", str(config_path), "--reports", "reports/first"]) == 0
        assert champion_version(MODEL) == "1"
        config = load_config(config_path)
        http, grpc, metrics, prom, push, public, public_metrics = free_ports(7)
        triton.start(root / SERVING_REPOSITORY, http_port=http, grpc_port=grpc,
                     metrics_port=metrics, model_control="poll", poll_seconds=1)  # fmt: skip
        gateway_args = [
            "start", "--run-dir", str(root / "gateway-run"), "--port", str(public),
            "--upstream", f"http://127.0.0.1:{http}", "--metrics-port", str(public_metrics),
            "--log-root", str(root / config.monitoring.log_path),
        ]  # fmt: skip
        assert gateway.main(gateway_args) == 0
        stack.start(prometheus_port=prom, pushgateway_port=push, scrape_interval="1s",
                    triton_metrics=f"127.0.0.1:{metrics}",
                    gateway_metrics=f"127.0.0.1:{public_metrics}")  # fmt: skip
        yield SimpleNamespace(
            root=root,
            config_path=config_path,
            config=config,
            url=f"127.0.0.1:{public}",
            prometheus=stack.prometheus_url,
            pushgateway=stack.pushgateway_url,
        )
    finally:
        stack.stop()
        gateway.main(["stop", "--run-dir", str(root / "gateway-run")])
        triton.stop()
        os.chdir(cwd)


COVERAGE_XML = '<?xml version="1.0" ?><coverage line-rate="0.91" version="7"></coverage>'


def run_monitor_and_kpis(world) -> list[monitor.WindowReport]:
    reports = monitor.run_monitor(world.config, pushgateway=world.pushgateway)
    coverage = world.root / "coverage.xml"  # input fixture: what `make test` leaves behind
    coverage.write_text(COVERAGE_XML)
    report = kpi.build_report([str(world.config_path)], coverage)
    kpi.write_report(report)
    kpi.push(world.pushgateway, "kpi", kpi.samples(report), {}, kpi.KPI_METRICS)
    return reports


@pytest.fixture(scope="module")
def first_week(world):
    args = ["--project", str(world.config_path), "--url", world.url]
    assert simulate.main(args) == 0
    # `make serve` verifies the served bytes and reports it (the deploy panel and alert)
    repo = str(world.root / SERVING_REPOSITORY)
    deploy_args = ["--project", str(world.config_path), "--repo", repo,
                   "--pushgateway", world.pushgateway]  # fmt: skip
    assert deploy.main(deploy_args) == 0
    # production traffic has its share of broken requests: refused at the edge, counted
    broken = requests.post(f"http://{world.url}/v2/models/{MODEL}/infer", data=b"{", timeout=10)
    assert broken.status_code == 400 and broken.json()["rule"] == "json"
    # The gauges first, without Evidently's reports (seconds): DataDriftDetected's `for: 1m`
    # starts now and runs while the full pass below renders the reports, instead of after it.
    monitor.run_monitor(world.config, pushgateway=world.pushgateway, evidently=False)
    return run_monitor_and_kpis(world)


def test_traffic_is_logged_with_late_labels(world, first_week):
    log = read_log(world.root / world.config.monitoring.log_path, MODEL)
    assert len(log) == SIMULATION["rows"]  # every row sent was logged, once
    assert log["label"].notna().all()  # every label arrived (after the delay)
    assert set(log["model_version"]) == {"1"}
    assert log["request_id"].is_unique


def test_drifted_weeks_are_flagged_against_the_training_data(first_week):
    assert len(first_week) >= 4
    assert all(w.drift["dataset_drift"] for w in first_week)
    assert all(w.quality["champion"]["positives"] > 0 for w in first_week)
    folder = Path(first_week[-1].report_dir)
    for name in ("drift.html", "drift.json", "classification.html", "summary.json"):
        assert (folder / name).is_file(), name


def test_attributions_are_measured_per_window_and_shown_beside_drift(world, first_week):
    """The served version's SHAP on sampled logged rows against its training run's: the
    drifted weeks' amounts are 1.5x, and so is what `amount` moves the score."""
    for w in first_week:
        found = w.attribution
        assert found["state"] == "available", found.get("error")
        assert set(found["window"]) == set(found["reference"]) == set(world.config.features)
        assert found["window"]["amount"] > found["reference"]["amount"]
    page = (world.root / "reports/kpi/kpi.md").read_text()
    assert "attribution drift (newest window of v1)" in page and "attribution ranking" in page


def test_every_dashboard_panel_returns_data(world, first_week):
    queries = dashboard_queries()
    assert len(queries) >= 20
    # This loop runs no shadow challenger and no canary controller, so nothing pushes a shadow
    # comparison or a canary state: those panels are checked with data in
    # tests/integration/test_monitoring_stack.py. (The gateway's own canary series exist at 0
    # for every served model, so its canary panels are checked here.)
    shadow_only = [q for q in queries if "mlops_shadow_" in q[2]]
    assert len(shadow_only) == 6
    canary_only = [q for q in queries if "mlops_canary_" in q[2]]
    assert len(canary_only) == 2
    empty = []
    for dashboard, title, expr in (q for q in queries if q not in shadow_only + canary_only):
        try:
            wait_for_query(world.prometheus, expr, timeout_s=20)
        except Exception as exc:  # noqa: BLE001 - collect them all
            empty.append(f"{dashboard} / {title}: {expr} ({exc})")
    assert not empty, "\n".join(empty)


def test_drift_alert_fires(world, first_week):
    firing = wait_until(lambda: firing_alerts(world.prometheus, PROJECT), 120, "drift alert")
    assert "DataDriftDetected" in firing


def test_alert_retrains_and_triton_swaps_to_the_winner(world, first_week):
    wait_until(lambda: firing_alerts(world.prometheus, PROJECT), 120, "drift alert")
    outcome = run_loop(world.config, prometheus=world.prometheus)
    assert outcome.triggered_by and outcome.retrained
    assert outcome.rows == SIMULATION["rows"]  # the whole labelled log
    assert outcome.promoted and outcome.deployed, outcome.reasons
    assert champion_version(MODEL) == outcome.version == "2"
    client = ModelClient(MODEL, world.url)
    rows = simulate.traffic(world.config, 50, 7).drop(columns=["request_id", "timestamp", "label"])

    def serves_new_version():
        client.predict(rows)
        return client.last_version == "2"

    wait_until(serves_new_version, 60, "the endpoint to serve version 2")
    client.close()


def test_the_next_drifted_week_is_no_longer_drift(world, first_week):
    assert champion_version(MODEL) == "2", "needs the retraining test before it"
    args = ["--project", str(world.config_path), "--url", world.url, "--seed-offset", "2"]
    assert simulate.main(args) == 0
    windows = world.root / "reports/monitoring" / PROJECT
    first_summaries = {p: p.stat().st_mtime_ns for p in windows.glob("*_v1/summary.json")}
    reports = run_monitor_and_kpis(world)
    # version 1's windows got no new rows or labels: taken from their reports, not redone
    assert first_summaries
    assert {p: p.stat().st_mtime_ns for p in first_summaries} == first_summaries
    after = [w for w in reports if w.version == "2" and w.rows >= 1000]
    before = [w for w in reports if w.version == "1"]
    assert after and before
    assert not any(w.drift["dataset_drift"] for w in after)
    assert max(w.drift["drift_share"] for w in after) < min(w.drift["drift_share"] for w in before)
    wait_for_query(
        world.prometheus, f'mlops_dataset_drift{{project="{PROJECT}"}} == 0', timeout_s=30
    )
    assert query(world.prometheus, f'mlops_serving_model_version{{project="{PROJECT}"}}')
    page = (world.root / "reports" / "kpi" / "kpi.md").read_text()
    assert "1/1 projects deployed and monitored" in page
    assert "| Test coverage | 91.0% (coverage.xml of " in page
    history = json.loads((world.root / "reports/monitoring" / PROJECT / "history.json").read_text())
    assert {w["version"] for w in history} == {"1", "2"}
