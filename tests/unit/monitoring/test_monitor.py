"""The monitor's pure core (windows, assess, gauges) and its edges (exposition, loop data)."""

import math

import numpy as np
import pandas as pd
import pytest

from configs import load_config, override
from models.evaluate import resampled_scores
from monitoring import kpi
from monitoring.contract import MONITOR_METRICS
from monitoring.loop import LoopError, firing_alerts, retrain_config, retrain_dataset
from monitoring.monitor import (
    INSUFFICIENT,
    SUFFICIENT,
    MonitorError,
    WindowReport,
    _Version,
    assess,
    quality_evidence,
    run_monitor,
    samples,
)
from monitoring.monitor import windows as cut_windows
from serving.inference_log import label_frame, prediction_frame, write_labels, write_predictions
from serving.pushgateway import PushError, Sample, exposition, push
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
    evidence = result["evidence"]  # no baseline: the champion's own interval, no gain
    assert evidence["positives"] == result["quality"]["champion"]["positives"] > 30
    assert evidence["state"] == SUFFICIENT and "gain" not in evidence
    assert evidence["champion"]["low"] <= evidence["champion"]["value"]


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


def scored_window(n: int, positives: int, seed: int = 0):
    """Labels with `positives` ones; a champion that ranks them well and a noisy baseline."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, int)
    y[rng.choice(n, positives, replace=False)] = 1
    good = np.clip(0.6 * y + 0.5 * rng.random(n), 0, 1)
    noisy = np.clip(0.2 * y + 0.8 * rng.random(n), 0, 1)
    return y, good, noisy


def as_scored(**scores: np.ndarray) -> dict:
    return {model: (p, (p >= 0.5).astype(int)) for model, p in scores.items()}


def evidence_exposition(evidence: dict, rows: int) -> str:
    """What the monitor pushes for a labelled window with this evidence (no drift measured)."""
    report = WindowReport(project="mon", model="mon-classifier", version="1",
                          start="2026-07-01T00:00:00+00:00", end="2026-07-02T00:00:00+00:00",
                          rows=rows, labelled_rows=rows,
                          drift={"drift_share": 0.0, "dataset_drift": False, "columns": []},
                          prediction_drift={"score": 0.0}, missing_values={},
                          unseen_categories={}, evidence=evidence)  # fmt: skip
    return exposition(samples(report, "pr_auc"), MONITOR_METRICS)


def test_quality_evidence_is_paired_and_names_its_positives(config):
    y, good, noisy = scored_window(400, 12)
    few = quality_evidence(y, as_scored(champion=noisy, baseline=good), config)
    assert few["positives"] == 12 and few["min_positives"] == 30
    assert few["state"] == INSUFFICIENT  # however far below the point estimate lies
    assert few["gain"]["value"] < 0
    assert few["bootstrap_samples"] == config.evaluation.bootstrap_samples
    assert few == quality_evidence(y, as_scored(champion=noisy, baseline=good), config)  # seeded
    for part in ("champion", "baseline", "gain"):
        assert few[part]["low"] <= few[part]["value"] <= few[part]["high"], part
    # Paired: the same model on both sides differs by exactly 0 on every resample.
    same = quality_evidence(y, as_scored(champion=noisy, baseline=noisy), config)
    assert same["gain"] == {"value": 0.0, "low": 0.0, "high": 0.0}
    assert same["champion"]["high"] - same["champion"]["low"] > 0.01  # its own interval is not

    y, good, noisy = scored_window(2000, 200, seed=1)
    strong = quality_evidence(y, as_scored(champion=noisy, baseline=good), config)
    assert strong["state"] == SUFFICIENT and strong["gain"]["high"] < 0
    width = {e["positives"]: e["gain"]["high"] - e["gain"]["low"] for e in (few, strong)}
    assert width[200] < width[12]  # more positives, narrower interval

    f1 = config.model_copy(update={"evaluation": config.evaluation.model_copy(
        update={"primary_metric": "f1"})})  # fmt: skip
    on_decisions = quality_evidence(y, as_scored(champion=noisy, baseline=good), f1)
    assert on_decisions["metric"] == "f1" and on_decisions["gain"]["high"] < 0


def sklearn_loop(metric: str, y, p, indices, threshold: float) -> np.ndarray:
    """The plain definition: one sklearn call per resample, NaN for a one-class resample."""
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

    found = []
    for i in indices:
        if len(np.unique(y[i])) < 2:
            found.append(np.nan)
        elif metric == "f1":
            found.append(f1_score(y[i], p[i] >= threshold, zero_division=0))
        else:
            scorer = roc_auc_score if metric == "roc_auc" else average_precision_score
            found.append(scorer(y[i], p[i]))
    return np.array(found)


@pytest.mark.parametrize(
    ("metric", "threshold"),
    [("pr_auc", 0.5), ("roc_auc", 0.5), ("f1", 0.5), ("f1", 0.35), ("f1", 0.8)],
)
def test_resampled_scores_are_sklearn_on_every_resample(metric, threshold):
    """Counting draws (the gate's, the training run's and the monitor's bootstrap) gives
    sklearn's numbers on every resample: tied scores, a threshold other than 0.5, and
    resamples of 60 rows with 3 positives that hold one class only (NaN in both)."""
    from models.evaluate import bootstrap_indices, bootstrap_scores

    y, good, _ = scored_window(60, 3)
    values = np.round(good, 1)  # ties, and scores exactly at the thresholds
    indices = bootstrap_indices(len(y), 200, 42)
    expected = sklearn_loop(metric, y, values, indices, threshold)
    assert np.isnan(expected).sum() > 0 and np.isfinite(expected).sum() > 100
    found = resampled_scores(metric, y, values, indices, threshold)
    np.testing.assert_allclose(found, expected, atol=1e-12)
    np.testing.assert_array_equal(bootstrap_scores(metric, y, values, indices, threshold), found)
    # decisions (0/1) at 0.5, as the monitor scores F1 on the decisions the model made
    decisions = (good >= 0.7).astype(int)
    on_decisions = sklearn_loop("f1", y, decisions, indices, 0.5)
    np.testing.assert_allclose(resampled_scores("f1", y, decisions, indices), on_decisions)
    assert resampled_scores(metric, y, values, indices[:0]).shape == (0,)
    with pytest.raises(ValueError, match="unknown metric 'brier'"):
        resampled_scores("brier", y, values, indices)


def test_resampled_scores_chunk_large_resamples_alike():
    """Over a million drawn rows are scored in chunks; the chunks add up to the whole."""
    from models.evaluate import bootstrap_indices

    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.1).astype(int)
    p = np.clip(0.3 * y + rng.random(3000) * 0.7, 0, 1)
    indices = bootstrap_indices(len(y), 400, 3)  # 1.2 million draws: two chunks
    whole = resampled_scores("pr_auc", y, p, indices)
    parts = np.concatenate([resampled_scores("pr_auc", y, p, indices[:150]),
                            resampled_scores("pr_auc", y, p, indices[150:])])  # fmt: skip
    np.testing.assert_allclose(whole, parts, atol=1e-12)
    np.testing.assert_allclose(whole[:5], sklearn_loop("pr_auc", y, p, indices[:5], 0.5),
                               atol=1e-12)  # fmt: skip


def test_a_window_without_positives_has_no_interval_and_pushes_none(config):
    y = np.zeros(300, int)
    rng = np.random.default_rng(0)
    evidence = quality_evidence(y, as_scored(champion=rng.random(300)), config)
    assert evidence["positives"] == 0 and evidence["state"] == INSUFFICIENT
    assert all(math.isnan(evidence["champion"][k]) for k in ("value", "low", "high"))
    text = evidence_exposition(evidence, rows=300)
    assert "mlops_window_positives{} 0.0" in text
    assert "mlops_quality_evidence_sufficient{} 0.0" in text
    assert "mlops_model_quality_interval" not in text  # NaN bounds: no data, not zero


def test_evidence_gauges_follow_the_contract(config):
    y, good, noisy = scored_window(1000, 100)
    evidence = quality_evidence(y, as_scored(champion=good, baseline=noisy), config)
    text = evidence_exposition(evidence, rows=1000)
    assert "mlops_window_positives{} 100.0" in text
    assert "mlops_quality_evidence_sufficient{} 1.0" in text
    for bound in ("estimate", "low", "high"):
        assert f'mlops_model_quality_gain{{bound="{bound}",metric="pr_auc"}}' in text
    for model in ("champion", "baseline"):
        for bound in ("low", "high"):
            labels = f'bound="{bound}",metric="pr_auc",model="{model}"'
            assert f"mlops_model_quality_interval{{{labels}}}" in text
    assert evidence["gain"]["low"] > 0  # a clearly better champion


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
        push("http://127.0.0.1:9", "monitor", [], {"project": "x"}, MONITOR_METRICS)


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


def _policy(config, policy: str, **keys):
    return override(config, {"monitoring.retrain_data": policy,
                             "monitoring.retrain_lookback_days": 2, **keys})  # fmt: skip


def test_retrain_dataset_is_the_recent_labelled_rows_in_the_config_layout(config, tmp_path):
    write_log(config, tmp_path, frame(config, 100), labelled=80)
    data = retrain_dataset(_policy(config, "recent"), tmp_path)
    rows = data.frame
    assert list(rows.columns) == [config.id_column, config.time_column, *config.features,
                                  config.target]  # fmt: skip
    assert rows[config.target].isin([0, 1]).all()
    assert rows[config.time_column].min() == pd.Timestamp("2026-07-03 04:00")
    assert len(rows) == 28  # hours 52..79: within 48 h of the newest row (99) and labelled
    positives = int(rows[config.target].sum())
    assert data.provenance == (f"retrain (recent): 28 labelled log rows, {positives} positives, "
                               "2026-07-03 03:00 .. 2026-07-05 03:00 (2 days)")  # fmt: skip
    derived = retrain_config(config, tmp_path / "data.parquet", data.provenance)
    assert derived.data.source == "file" and derived.name == config.name
    assert derived.positive_label == 1
    assert derived.data.describe().endswith(f"data.parquet; {data.provenance}")


def test_a_retrain_window_grows_until_it_holds_enough_positives(config, tmp_path):
    rows = frame(config, 100)
    write_log(config, tmp_path, rows, labelled=80)
    wanted = int(rows["label"].iloc[:80].sum()) - 3  # reachable only by going back in the log
    grow = {"monitoring.retrain_min_positives": wanted}
    data = retrain_dataset(_policy(config, "recent_min_positives", **grow), tmp_path)
    assert wanted <= data.frame[config.target].sum() < wanted + 3 + 1
    assert len(data.frame) > 28 and "(4 days)" in data.provenance  # grown by whole days
    grow = {"monitoring.retrain_min_positives": 10_000}
    everything = retrain_dataset(_policy(config, "recent_min_positives", **grow), tmp_path)
    assert len(everything.frame) == 80  # the whole labelled log, and it says it fell short
    assert "the whole log holds fewer positives than 10000" in everything.provenance


def test_a_retrain_can_add_the_champions_training_rows_dated_before_the_window(config, tmp_path):
    write_log(config, tmp_path, frame(config, 100), labelled=80)
    policy = _policy(config, "recent_plus_reference")
    with pytest.raises(LoopError, match="recent_plus_reference needs the champion's training"):
        retrain_dataset(policy, tmp_path)
    reference = frame(config, 40, seed=5)
    data = retrain_dataset(policy, tmp_path, reference=reference)
    old, recent = data.frame.iloc[:40], data.frame.iloc[40:]
    assert len(recent) == 28
    assert (old[config.target].to_numpy() == reference["label"].to_numpy()).all()
    assert old[config.id_column].str.startswith("reference-").all()
    assert (old[config.time_column] < recent[config.time_column].min()).all()
    assert "+ 40 training rows of the champion" in data.provenance


def test_retrain_without_a_log_says_so(config, tmp_path):
    with pytest.raises(LoopError, match="no predictions of mon-classifier"):
        retrain_dataset(config, tmp_path)


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
    gain = {"value": 0.1, "low": -0.05, "high": 0.3}
    project.evidence = {"positives": 18, "min_positives": 30, "state": INSUFFICIENT,
                        "confidence": 0.95, "gain": gain}  # fmt: skip
    assert ("(+33.3%; gain +0.100 [-0.050, +0.300] (95%), 18 positives: insufficient evidence "
            "(< 30))") in kpi.markdown(report, {})  # fmt: skip
    html = kpi.to_html(text)
    assert html.count("<table>") == 2 and "<th>KPI</th>" in html and "<h1>KPI report</h1>" in html
    assert {s.name for s in kpi.samples(report)} >= {"mlops_kpi_production_readiness_ratio"}
    (tmp_path / "coverage.xml").write_text('<coverage line-rate="0.875"/>')
    assert kpi.coverage_ratio(tmp_path / "coverage.xml") == 0.875


def test_kpi_windows_show_intervals_positives_and_the_evidence_state(config, tmp_path):
    y, good, noisy = scored_window(900, 18)
    evidence = quality_evidence(y, as_scored(champion=good, baseline=noisy), config)
    quality = {m: {"pr_auc": evidence[m]["value"]} for m in ("champion", "baseline")}
    window = {"start": "2026-07-01T00:00", "version": "1", "rows": 900, "quality": quality,
              "drift": {"drift_share": 0.1, "dataset_drift": False},
              "vs_baseline_pct": {"pr_auc": 84.0}, "evidence": evidence}  # fmt: skip
    unlabelled = window | {"start": "2026-07-02T00:00", "quality": {}, "evidence": {}}
    project = kpi.ProjectKpi("p", "1", True, True, "pr_auc", windows=[window, unlabelled])
    text = kpi.markdown(kpi.KpiReport([project], 0.9, 11), {})
    champion, gain = evidence["champion"], evidence["gain"]
    assert (f"| {champion['value']:.3f} [{champion['low']:.3f}, {champion['high']:.3f}] |"
            in text)  # fmt: skip
    assert (f"| {gain['value']:+.3f} [{gain['low']:+.3f}, {gain['high']:+.3f}] | 18 | "
            "insufficient_evidence |") in text  # fmt: skip
    assert text.rstrip().endswith("| - | - | no labels |")
    assert (kpi.write_report(kpi.KpiReport([project], 0.9, 11), tmp_path)).is_file()
    assert (tmp_path / "p_windows.png").stat().st_size > 0  # the plot shades the intervals
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


def test_a_wide_window_reports_its_drifted_then_most_attributed_features(config):
    from monitoring.attribution import VersionAttribution
    from monitoring.monitor import report_features

    checked = [
        {"column": "a", "score": 0.05, "drifted": False},
        {"column": "b", "score": 0.30, "drifted": True},
        {"column": "c", "score": 0.02, "drifted": False},
        {"column": "d", "score": 0.60, "drifted": True},
        {"column": "e", "score": 0.01, "drifted": False},
    ]
    drift = {"columns": checked}
    trained = VersionAttribution(None, pd.Series({"e": 0.4, "a": 0.3, "b": 0.1}), 100)
    assert report_features(drift, trained, 4) == ["d", "b", "e", "a"]
    assert report_features(drift, RuntimeError("no reference"), 3) == ["d", "b", "a"]
    assert report_features(drift, None, 9) == ["d", "b", "a", "c", "e"]


def test_the_evidently_report_holds_the_features_it_is_given(config, tmp_path):
    from monitoring.monitor import evidently_reports

    reference, current = frame(config, 400), frame(config, 100, seed=6)
    current["label"] = np.nan
    shown = [config.features[0]]
    evidently_reports(reference, logged(config, current), config, tmp_path, 400, shown)
    summary = (tmp_path / "drift.json").read_text()
    assert shown[0] in summary
    assert not any(f in summary for f in config.features if f not in shown)


def test_a_retrain_drops_the_group_column_its_logged_rows_do_not_carry(tmp_path):
    config = load_config("churn")
    grouped = config.model_copy(
        update={"split": config.split.model_copy(update={"group_column": "customer"})}
    )
    assert retrain_config(grouped, tmp_path / "data.parquet").split.group_column is None
    assert retrain_config(config, tmp_path / "data.parquet").split == config.split
