"""Attribution drift: the ranking rule on hand-made numbers, then real fitted models explained
by the platform's own explainer (`models.explain.RowExplainer`) on undrifted and drifted rows,
through the monitor's `assess` and its gauges."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest

from features.split import model_inputs
from models.explain import (
    BASE_VALUE,
    VALUES_FILE,
    build_row_explainer,
    explain_model,
    mean_abs_attribution,
)
from models.reference import reference_frame
from monitoring import kpi
from monitoring.attribution import (
    AVAILABLE,
    OFF,
    UNAVAILABLE,
    AttributionUnavailable,
    VersionAttribution,
    assess_attribution,
    attribution_samples,
    compare_rankings,
    ranks,
    sample_rows,
    summary_text,
    window_attribution,
)
from monitoring.contract import MONITOR_METRICS
from monitoring.monitor import WindowReport, _Version, assess, samples
from serving.pushgateway import exposition

FEATURES = list("abcdefgh")


def importance(*values: float) -> pd.Series:
    return pd.Series(values, index=FEATURES[: len(values)], dtype=float)


# -- the rule ------------------------------------------------------------------------------------


def test_the_same_ranking_is_unchanged_at_any_margin():
    reference = importance(8, 7, 6, 5, 4, 3, 2, 1)
    window = reference * 3.0  # every feature weighs more: the ranking is the same
    for margin in (0.0, 0.15, 1.0):
        found = compare_rankings(reference, window, 5, margin)
        assert not found.ranking_changed and found.inverted_pairs == []
        assert found.max_displacement == 0
        assert found.top_k_overlap == 1.0 and found.rank_correlation == 1.0
        assert found.reference_top == found.window_top == list("abcde")


def test_near_equal_features_trading_places_is_a_change_only_without_margin():
    reference = importance(8, 7.5, 6, 5, 4, 3, 2, 1)
    window = importance(7.5, 8, 6, 5, 4, 3, 2, 1)  # a and b (7% apart) swap
    strict = compare_rankings(reference, window, 5, 0.0)
    assert strict.ranking_changed and strict.inverted_pairs == [["a", "b"]]
    forgiven = compare_rankings(reference, window, 5, 0.15)
    assert not forgiven.ranking_changed and forgiven.max_displacement == 1
    # e (5th) and f (6th) at 4 and 3.9 swap: the top-5 *set* changes, within the margin
    near = importance(8, 7, 6, 5, 4, 3.9, 2, 1)
    edge = compare_rankings(near, importance(8, 7, 6, 5, 3.9, 4, 2, 1), 5, 0.15)
    assert not edge.ranking_changed and edge.top_k_overlap == 0.8
    assert compare_rankings(near, importance(8, 7, 6, 5, 3.9, 4, 2, 1), 5, 0).ranking_changed
    # the same swap of clearly separated features (a 2x gap in both) is a change
    clear = compare_rankings(reference, importance(8, 7.5, 3, 6, 4, 3, 2, 1), 5, 0.15)
    assert clear.ranking_changed and clear.inverted_pairs == [["c", "d"], ["c", "e"]]


def test_a_feature_from_far_below_becoming_the_most_attributed_is_a_change():
    reference = importance(8, 7, 6, 5, 4, 3, 2, 1)
    window = importance(8, 7, 6, 5, 4, 3, 2, 12)  # h: 8th -> 1st
    found = compare_rankings(reference, window, 3, 0.15)
    assert found.ranking_changed and found.max_displacement == 7
    assert found.window_top == ["h", "a", "b"] and found.top_k_overlap == pytest.approx(2 / 3)
    assert found.window_rank["h"] == 1 and found.reference_rank["h"] == 8
    assert ["a", "h"] in found.inverted_pairs and ["g", "h"] in found.inverted_pairs
    assert found.rank_correlation < 0.5
    # a feature of the reference's top k falling far below counts the same way
    fallen = compare_rankings(reference, importance(0.5, 7, 6, 5, 4, 3, 2, 1), 3, 0.15)
    assert fallen.ranking_changed and fallen.max_displacement == 7


def test_a_move_below_both_top_ks_does_not_count():
    reference = importance(8, 7, 6, 5, 4, 3, 2, 1)
    window = importance(8, 7, 6, 5, 4, 1, 2, 3)  # f and h trade places 6th <-> 8th
    found = compare_rankings(reference, window, 3, 0)
    assert not found.ranking_changed and found.rank_correlation < 1
    assert compare_rankings(reference, window, 6, 0).inverted_pairs == [
        ["f", "g"],
        ["f", "h"],
        ["g", "h"],
    ]


def test_ties_are_ranked_by_name_and_top_k_is_capped():
    tied = pd.Series({"z": 1.0, "y": 1.0, "x": 2.0})
    assert ranks(tied) == {"x": 1, "y": 2, "z": 3}
    assert list(mean_abs_attribution(pd.DataFrame({"z": [-1.0, 1.0], "y": [1.0, -1.0]})).index) == [
        "y",
        "z",
    ]
    found = compare_rankings(tied, tied, 10, 0)
    assert found.top_k == 3 and not found.ranking_changed
    single = compare_rankings(pd.Series({"a": 1.0}), pd.Series({"a": 2.0}), 5, 0)
    assert math.isnan(single.rank_correlation) and not single.ranking_changed


def test_sides_with_other_features_or_bad_values_are_refused():
    with pytest.raises(ValueError, match="not the reference's"):
        compare_rankings(importance(2, 1), pd.Series({"a": 1.0, "z": 2.0}), 2, 0)
    with pytest.raises(ValueError, match="top_k"):
        compare_rankings(importance(2, 1), importance(2, 1), 0, 0)
    with pytest.raises(ValueError, match="margin"):
        compare_rankings(importance(2, 1), importance(2, 1), 1, float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        mean_abs_attribution(pd.DataFrame({"a": [1.0, np.inf], "b": [0.0, 1.0]}))
    with pytest.raises(ValueError, match="no attributions"):
        mean_abs_attribution(pd.DataFrame({"a": []}, dtype=float))


def test_the_sample_is_seeded_and_capped():
    rows = pd.DataFrame({"a": range(1000)})
    first, again = sample_rows(rows, 200, 7), sample_rows(rows, 200, 7)
    assert len(first) == 200 and first.equals(again)
    assert not first.equals(sample_rows(rows, 200, 8))
    assert len(sample_rows(rows.head(50), 200, 7)) == 50


# -- real models ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["gbdt", "baseline"])
def explained(request, fraud_config, fraud_splits):
    """A fitted model, its explainer over training rows and its reference: mean |SHAP| of 500
    test rows, as the training run's explain step computes it."""
    train, _, test = fraud_splits
    model = request.getfixturevalue(f"{request.param}_model")
    background = model_inputs(train, fraud_config).sample(100, random_state=0)
    explainer = build_row_explainer(model, request.param, background, seed=0)
    explained_rows = model_inputs(test, fraud_config).sample(500, random_state=0)
    reference = mean_abs_attribution(explainer.explain(explained_rows)[0])
    return model, VersionAttribution(explainer, reference, len(explained_rows))


def test_the_reference_is_the_training_runs_importance(fraud_config, fraud_splits, gbdt_model,
                                                      tmp_path):  # fmt: skip
    """The monitor's reference (mean |SHAP| of the run's shap_values.parquet) and the run's own
    importance (`explain_model`) are one computation: the same features, order and numbers."""
    train, _, test = fraud_splits
    rows = model_inputs(test, fraud_config).sample(40, random_state=0).reset_index(drop=True)
    result = explain_model(gbdt_model, "gbdt", model_inputs(train.head(30), fraud_config), rows,
                           tmp_path, local_examples=0)  # fmt: skip
    logged = pd.read_parquet(tmp_path / VALUES_FILE).drop(columns=[BASE_VALUE])
    reference = mean_abs_attribution(logged)
    assert result.importance["feature"].tolist() == reference.index.tolist()
    np.testing.assert_allclose(result.importance["mean_abs_shap"], reference.to_numpy())


def logged_window(config, model, rows: pd.DataFrame) -> pd.DataFrame:
    """Rows as the monitor reads them from the log: features, score, decision, no labels."""
    score = model.predict_proba(rows)[:, 1]
    return rows.assign(score=score, decision=(score >= 0.5).astype(int), label=np.nan)


def test_an_undrifted_window_keeps_the_reference_ranking(explained, fraud_config, fraud_splits):
    model, source = explained
    test = model_inputs(fraud_splits[2], fraud_config)
    for seed in (11, 12):  # other rows of the same distribution than the reference's
        found = window_attribution(
            test.sample(1000, random_state=seed), source, sample=200, top_k=5, margin=0.15, seed=3
        )
        assert found["state"] == AVAILABLE and found["sampled_rows"] == 200
        assert not found["ranking_changed"], (found["reference_top"], found["window_top"])
        assert found["rank_correlation"] > 0.85 and found["top_k_overlap"] >= 0.8
        assert found["reference"] == source.reference.to_dict()


def test_a_drifted_window_where_another_feature_dominates_flips_the_ranking(
    explained, fraud_config, fraud_splits
):
    """Every request from a new device (a client bug, or an attack): is_new_device, far down
    the reference's ranking, now moves every score most."""
    model, source = explained
    drifted = model_inputs(fraud_splits[2], fraud_config).sample(1000, random_state=11)
    drifted["is_new_device"] = 1.0
    found = window_attribution(drifted, source, sample=200, top_k=5, margin=0.15, seed=3)
    assert source.reference.index[0] != "is_new_device"
    assert found["window_top"][0] == "is_new_device"
    assert found["ranking_changed"] and found["max_displacement"] > 1
    assert all("is_new_device" in pair for pair in found["inverted_pairs"])
    assert found["reference_rank"]["is_new_device"] > 5
    assert found["window"]["is_new_device"] > 3 * found["reference"]["is_new_device"]


def test_the_monitor_reports_and_pushes_attribution_drift(explained, fraud_config, fraud_splits):
    model, source = explained
    train, _, test = fraud_splits
    version = _Version(reference=reference_frame(train, fraud_config, model), attribution=source)
    rows = model_inputs(test, fraud_config).sample(600, random_state=21)
    steady = assess(logged_window(fraud_config, model, rows), version, fraud_config)
    drifted = assess(
        logged_window(fraud_config, model, rows.assign(is_new_device=1.0)), version, fraud_config
    )
    assert steady["attribution"]["ranking_changed"] is False
    assert drifted["attribution"]["ranking_changed"] is True
    assert drifted["attribution"]["sampled_rows"] == fraud_config.monitoring.attribution_sample_rows
    assert summary_text(drifted["attribution"]).startswith("changed (rank corr ")
    report = WindowReport(project="fraud", model="fraud-classifier", version="3",
                          start="2026-07-01T00:00:00+00:00", end="2026-07-02T00:00:00+00:00",
                          rows=len(rows), **drifted)  # fmt: skip
    text = exposition(samples(report, "pr_auc"), MONITOR_METRICS)
    assert "mlops_attribution_rank_changed{} 1.0" in text
    assert "mlops_attribution_available{} 1.0" in text
    assert 'mlops_attribution_rank{feature="is_new_device",source="window"} 1.0' in text
    features = len(fraud_config.features)
    assert text.count("mlops_attribution_mean_abs{") == 2 * features  # window and reference
    # the KPI page: beside each window's data drift, and the champion's newest window in full
    windows = [
        asdict(replace(report, start="2026-07-01T00:00:00+00:00", **steady)),
        asdict(replace(report, start="2026-07-02T00:00:00+00:00")),
    ]
    project = kpi.ProjectKpi("fraud", "3", True, True, "pr_auc", windows=windows,
                             attribution=windows[-1]["attribution"])  # fmt: skip
    page = kpi.markdown(kpi.KpiReport([project], 0.9, 11), {})
    (first, second) = [line for line in page.splitlines() if line.startswith("| 2026-07-0")]
    assert "| no | stable (rank corr " in first and "| changed (rank corr " in second
    assert "## fraud: attribution drift (newest window of v3)" in page
    (row,) = [line for line in page.splitlines() if line.startswith("| is_new_device |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[2]) > 5 and cells[4] == "1"  # reference rank, window rank
    assert "is_new_device" in page.split("traded places")[1].split("\n")[0]
    # the same window without the ranking: nothing measured is pushed as "unchanged"
    off = assess_attribution(rows, source, fraud_config.model_copy(
        update={"monitoring": fraud_config.monitoring.model_copy(
            update={"attribution_sample_rows": 0})}))  # fmt: skip
    assert off == {"state": OFF} and attribution_samples(off) == []


def test_a_version_without_an_explainer_is_reported_unavailable_not_unchanged(
    fraud_config, fraud_splits, gbdt_model
):
    train, _, test = fraud_splits
    reason = AttributionUnavailable("version 3 of 'fraud-classifier' has no explanation background")
    version = _Version(
        reference=reference_frame(train, fraud_config, gbdt_model), attribution=reason
    )
    rows = logged_window(fraud_config, gbdt_model, model_inputs(test, fraud_config).head(300))
    result = assess(rows, version, fraud_config)
    assert result["attribution"] == {"state": UNAVAILABLE, "error": str(reason)}
    assert result["drift"]["columns"]  # the window itself is still assessed
    gauges = attribution_samples(result["attribution"])
    assert [(g.name, g.value) for g in gauges] == [("mlops_attribution_available", 0.0)]
    assert summary_text(result["attribution"]) == "unavailable"
    project = kpi.ProjectKpi("fraud", "3", True, True, "pr_auc", attribution=result["attribution"])
    assert f"Not measured: {reason}." in kpi.markdown(kpi.KpiReport([project], 0.9, 11), {})
    # nothing loaded at all, or rows the explainer cannot take: unavailable, never a crash
    assert assess_attribution(rows, None, fraud_config)["state"] == UNAVAILABLE
    broken = VersionAttribution(_Exploding(), pd.Series({"amount": 1.0}), 10)
    found = assess_attribution(rows, broken, fraud_config)
    assert found["state"] == UNAVAILABLE and "RuntimeError: shap failed" in found["error"]
    renamed = VersionAttribution(
        build_row_explainer(gbdt_model, "gbdt", model_inputs(train, fraud_config).head(50)),
        pd.Series(dtype=float),
        0,
    )
    missing = assess_attribution(rows.drop(columns="amount"), renamed, fraud_config)
    assert missing["state"] == UNAVAILABLE and "['amount']" in missing["error"]


class _Exploding:
    kind, space, features = "tree", "log_odds", ("amount",)

    def explain(self, rows):
        raise RuntimeError("shap failed")
