"""The monitor's pure core (windows, assess, gauges) and its edges (exposition, loop data)."""

import math

import numpy as np
import pandas as pd
import pytest

from configs import load_config
from monitoring import kpi
from monitoring.contract import MONITOR_METRICS
from monitoring.loop import LoopError, firing_alerts, retrain_config, retrain_dataset
from monitoring.monitor import MonitorError, WindowReport, _Version, assess, run_monitor, samples
from monitoring.monitor import windows as cut_windows
from monitoring.pushgateway import PushError, Sample, exposition, push
from serving.inference_log import label_frame, prediction_frame, write_labels, write_predictions
from tests.conftest import write_config


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("cfg") / "mon.yaml", name="mon",
                        monitoring={"window": "1D", "min_window_rows": 10})  # fmt: skip
    return load_config(path)


def frame(config, n: int, *, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {c: rng.normal(10 + shift, 2, n) for c in config.numeric_features}
    cats = {"merchant_category": ["grocery", "fuel"], "channel": ["pos", "online"],
            "country": ["us", "gb"], "device_type": ["mobile", "desktop"]}  # fmt: skip
    data |= {c: rng.choice(cats[c], n) for c in config.categorical_features}
    out = pd.DataFrame(data)
    out["label"] = (rng.random(n) < 0.3).astype(float)
    out["score"] = np.clip(out["label"] * 0.5 + rng.random(n) * 0.5, 0, 1)
    return out


def logged(config, current: pd.DataFrame, start="2026-07-01", version="1") -> pd.DataFrame:
    out = current.copy()
    out["timestamp"] = pd.date_range(start, periods=len(out), freq="10min", tz="UTC")
    out["model_version"] = version
    out["decision"] = (out["score"] >= 0.5).astype(int)
    return out


def test_windows_split_by_time_and_serving_version(config):
    rows = logged(config, frame(config, 300))  # 300 x 10 min = ~2.1 days
    rows.loc[rows.index[-20:], "model_version"] = "2"
    cut = [(str(start.date()), version, len(part)) for start, version, part in
           cut_windows(rows, "1D")]  # fmt: skip
    assert cut == [
        ("2026-07-01", "1", 144),
        ("2026-07-02", "1", 136),
        ("2026-07-02", "2", 8),
        ("2026-07-03", "2", 12),
    ]
    weekly = list(cut_windows(rows, "W"))
    assert len(weekly) >= 1 and sum(len(p) for *_, p in weekly) == 300


def test_assess_finds_drift_missing_values_and_unseen_categories(config):
    reference = frame(config, 3000)
    current = logged(config, frame(config, 500, shift=3.0, seed=1))
    current.loc[:9, "amount"] = np.nan
    current.loc[:4, "channel"] = "teleport"  # a category never seen in training: scored, counted
    current.loc[current.index[250:], "label"] = np.nan  # labels not yet arrived
    result = assess(current, _Version(reference=reference), config)
    drifted = {c["column"] for c in result["drift"]["columns"] if c["drifted"]}
    assert set(config.numeric_features) <= drifted
    assert result["drift"]["dataset_drift"] is True
    assert result["missing_values"]["amount"] == 10
    assert result["unseen_categories"] == {"merchant_category": 0, "channel": 5, "country": 0,
                                           "device_type": 0}  # fmt: skip
    assert result["labelled_rows"] == 250
    assert set(result["quality"]) == {"champion"} and result["vs_baseline_pct"] == {}
    assert 0 < result["quality"]["champion"]["pr_auc"] <= 1


def test_same_distribution_is_not_drift(config):
    reference = frame(config, 3000)
    result = assess(logged(config, frame(config, 2000, seed=2)), _Version(reference), config)
    assert result["drift"]["drift_share"] == 0 and not result["drift"]["dataset_drift"]


def test_gauges_follow_the_contract(config):
    reference = frame(config, 3000)
    result = assess(logged(config, frame(config, 500, seed=3)), _Version(reference), config)
    report = WindowReport(project="mon", model="mon-classifier", version="4",
                          start="2026-07-01T00:00:00+00:00", end="2026-07-02T00:00:00+00:00",
                          rows=500, **result)  # fmt: skip
    gauges = samples(report, "pr_auc")
    assert {s.name for s in gauges} <= set(MONITOR_METRICS)
    text = exposition(gauges, MONITOR_METRICS)
    assert 'mlops_feature_drift_detected{feature="amount"} 0.0' in text
    assert "mlops_serving_model_version{} 4.0" in text
    assert text.count("# TYPE mlops_feature_drift_score gauge") == 1


def test_exposition_refuses_names_and_labels_outside_the_contract():
    with pytest.raises(ValueError, match="'mlops_typo' is not in the contract"):
        exposition([Sample("mlops_typo", 1.0)], MONITOR_METRICS)
    with pytest.raises(ValueError, match=r"label\(s\) \['model'\] not in"):
        exposition([Sample("mlops_drift_share", 1.0, {"model": "x"})], MONITOR_METRICS)
    nan = exposition([Sample("mlops_drift_share", math.nan)], MONITOR_METRICS)
    assert "mlops_drift_share" not in nan  # no data is not zero
    quoted = exposition([Sample("mlops_feature_drift_detected", 1, {"feature": 'a"b'})],
                        MONITOR_METRICS)  # fmt: skip
    assert 'feature="a\\"b"' in quoted


def test_push_to_an_unreachable_gateway_names_the_url():
    with pytest.raises(PushError, match=r"http://127.0.0.1:9/metrics/job/monitor/project/x"):
        push("http://127.0.0.1:9", "monitor", [], {"project": "x"})


def test_loop_alert_check_needs_prometheus():
    with pytest.raises(LoopError, match="cannot read alerts from http://127.0.0.1:9/api/v1/alerts"):
        firing_alerts("http://127.0.0.1:9", "fraud")


def write_log(config, root, rows: pd.DataFrame, labelled: int) -> None:
    write_predictions(root, config.model_name, prediction_frame(
        model=config.model_name, version="1", features=rows[list(config.features)],
        scores=rows["score"], decisions=(rows["score"] > 0.5).astype(int),
        request_ids=[f"id{i}" for i in range(len(rows))],
        timestamps=pd.date_range("2026-07-01", periods=len(rows), freq="1h", tz="UTC"),
    ))  # fmt: skip
    ids = [f"id{i}" for i in range(labelled)]
    write_labels(root, config.model_name, label_frame(ids, rows["label"].iloc[:labelled]))


def test_retrain_dataset_is_the_recent_labelled_rows_in_the_config_layout(config, tmp_path):
    write_log(config, tmp_path, frame(config, 100), labelled=80)
    data = retrain_dataset(config, tmp_path, lookback_days=2)
    assert list(data.columns) == [config.id_column, config.time_column, *config.features,
                                  config.target]  # fmt: skip
    assert data[config.target].isin([0, 1]).all()
    assert data[config.time_column].min() == pd.Timestamp("2026-07-03 04:00")
    assert len(data) == 28  # hours 52..79: within 48 h of the newest row (99) and labelled
    derived = retrain_config(config, tmp_path / "data.parquet")
    assert derived.data.source == "file" and derived.name == config.name
    assert derived.positive_label == 1


def test_retrain_without_a_log_says_so(config, tmp_path):
    with pytest.raises(LoopError, match="no predictions of mon-classifier"):
        retrain_dataset(config, tmp_path, lookback_days=2)


def test_monitor_without_traffic_says_what_to_do(config, tmp_path):
    with pytest.raises(MonitorError, match=r"no predictions of mon-classifier"):
        run_monitor(config, log_root=tmp_path)


def test_kpi_page_renders_markdown_and_html(tmp_path):
    project = kpi.ProjectKpi(project="p", champion="2", deployed=True, monitored=True,
                             primary_metric="pr_auc", champion_value=0.4, baseline_value=0.3,
                             vs_baseline_pct=33.3, lead_time_s=12.5)  # fmt: skip
    report = kpi.KpiReport([project, kpi.ProjectKpi("q", None, False, False, "f1")], 0.93, 11)
    assert report.readiness == 0.5
    text = kpi.markdown(report, {})
    assert "1/2 projects deployed and monitored (50%)" in text
    assert "pr_auc 0.400 vs baseline 0.300 (+33.3%)" in text and "| 93.0% |" in text
    html = kpi.to_html(text)
    assert html.count("<table>") == 2 and "<th>KPI</th>" in html and "<h1>KPI report</h1>" in html
    assert {s.name for s in kpi.samples(report)} >= {"mlops_kpi_production_readiness_ratio"}
    (tmp_path / "coverage.xml").write_text('<coverage line-rate="0.875"/>')
    assert kpi.coverage_ratio(tmp_path / "coverage.xml") == 0.875
    assert math.isnan(kpi.coverage_ratio(tmp_path / "none.xml"))


def window_report(config, current: pd.DataFrame, reference: pd.DataFrame) -> WindowReport:
    result = assess(logged(config, current), _Version(reference), config)
    return WindowReport(project="mon", model="mon-classifier", version="1",
                        start="2026-07-01T00:00:00+00:00", end="2026-07-02T00:00:00+00:00",
                        rows=len(current), **result)  # fmt: skip


@pytest.mark.parametrize(
    ("feature", "breakage"),
    [("amount", "removed"), ("amount", "all NaN"), ("channel", "removed"), ("channel", "all NaN")],
)
def test_a_feature_without_any_value_is_drifted_and_counted_missing(config, feature, breakage):
    """No ValueError from the drift core: the feature drifts, its missing share is 1."""
    reference = frame(config, 3000)
    current = frame(config, 400, seed=5)
    if breakage == "removed":
        current = current.drop(columns=feature)
    else:
        current[feature] = np.nan if feature == "amount" else None
    report = window_report(config, current, reference)
    drifted = {c["column"]: c["method"] for c in report.drift["columns"] if c["drifted"]}
    assert drifted == {feature: "missing"}  # the other features are still tested, not drifted
    assert report.missing_values[feature] == report.rows == 400
    assert report.drift["drift_share"] == 1 / len(config.features)
    text = exposition(samples(report, "pr_auc"), MONITOR_METRICS)
    assert f'mlops_feature_drift_detected{{feature="{feature}"}} 1.0' in text
    assert f'mlops_feature_drift_score{{feature="{feature}",method="missing"}} 1.0' in text
    assert f'mlops_input_missing_values{{feature="{feature}"}} 400.0' in text


def test_evidently_reports_a_window_with_a_removed_and_an_all_nan_feature(config, tmp_path):
    from monitoring.monitor import evidently_reports

    reference = frame(config, 400)
    current = frame(config, 100, seed=6).drop(columns="amount")
    current["channel"] = None
    current["label"] = np.nan  # no labels yet: the drift and summary reports only (faster)
    evidently_reports(reference, logged(config, current), config, tmp_path, sample_rows=400)
    assert (tmp_path / "drift.html").stat().st_size > 0
    assert "channel" in (tmp_path / "drift.json").read_text()  # in the data summary
