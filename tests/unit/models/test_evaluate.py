import numpy as np
import pandas as pd
import pytest

from models.evaluate import (
    Bootstrap,
    bootstrap_indices,
    bootstrap_scores,
    choose_threshold,
    classification_metrics,
    interval,
    metric_fn,
    score,
    slice_metrics,
)


def test_threshold_maximises_f1_on_validation():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.35, 0.4, 0.8, 0.9])
    threshold = choose_threshold(y, p)
    assert threshold == pytest.approx(0.375)  # midway between the last negative and 1st positive
    assert score("f1", y, p, threshold) == 1.0


def test_a_threshold_at_the_edge_of_saturated_scores_keeps_a_margin():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.4, 0.99996, 0.99998, 0.99999])  # a confident tree's scores
    threshold = choose_threshold(y, p)
    assert threshold == pytest.approx((0.4 + 0.99996) / 2)  # not 0.99996: a refit keeps recall
    assert score("f1", y, p, threshold) == 1.0
    assert choose_threshold(np.array([0, 1, 1]), np.array([0.5, 0.5, 0.5])) == 0.5  # no gap


def test_classification_metrics_and_confusion_counts():
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.4, 0.9])
    m = classification_metrics(y, p, 0.5)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (1, 1, 1, 1)
    assert m["precision"] == m["recall"] == m["f1"] == 0.5
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_score_is_nan_with_one_class_and_unknown_metric_is_named():
    assert np.isnan(score("roc_auc", np.ones(5), np.linspace(0, 1, 5)))
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        metric_fn("auc")


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    idx = bootstrap_indices(len(y), 100, seed=1)
    assert np.array_equal(idx, bootstrap_indices(len(y), 100, seed=1))
    draws = bootstrap_scores("roc_auc", y, p, idx)
    iv = interval(score("roc_auc", y, p), draws, 0.9)
    assert iv.low < iv.value < iv.high
    assert iv.high - iv.low < 0.2


def test_a_grouped_bootstrap_resamples_whole_groups_and_scores_each_resample():
    rng = np.random.default_rng(0)
    groups = np.repeat([f"g{i}" for i in range(60)], rng.integers(1, 6, 60))
    rng.shuffle(groups)  # a group's rows need not be adjacent
    y = rng.integers(0, 2, len(groups))
    p = np.clip(y * 0.3 + rng.random(len(groups)) * 0.7, 0, 1)
    draws = bootstrap_indices(len(y), 50, seed=1, groups=groups)
    again = bootstrap_indices(len(y), 50, seed=1, groups=groups)
    assert all(np.array_equal(a, b) for a, b in zip(draws, again, strict=True))
    size = pd.Series(groups).value_counts()
    for rows in draws:
        drawn = pd.Series(groups[rows]).value_counts()
        assert (drawn % size[drawn.index] == 0).all()  # a drawn group brings all its rows
        assert (drawn // size[drawn.index]).sum() == 60  # as many draws as groups
    scores = bootstrap_scores("roc_auc", y, p, draws)
    np.testing.assert_allclose(scores, [score("roc_auc", y[i], p[i]) for i in draws])


def test_rows_repeated_per_entity_do_not_narrow_a_grouped_interval():
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.3).astype(int)
    p = np.clip(0.25 * y + 0.75 * rng.random(300), 0, 1)

    def width(y, p, groups=None):
        draws = bootstrap_scores("roc_auc", y, p, bootstrap_indices(len(y), 400, 7, groups))
        found = interval(score("roc_auc", y, p), draws, 0.9)
        return found.high - found.low

    once = width(y, p)
    y5, p5, entity = np.repeat(y, 5), np.repeat(p, 5), np.repeat(np.arange(300), 5)
    assert width(y5, p5) < 0.6 * once  # each entity counted five times: ~1/sqrt(5) as wide
    assert width(y5, p5, entity) == pytest.approx(once)  # the same draws, entity by entity
    bootstrap = Bootstrap("roc_auc", 400, 0.9, 7)  # a slice's interval: the same rule
    frame = pd.DataFrame({"plan": np.repeat(np.arange(300) % 2, 5)})
    rows, grouped = (slice_metrics(frame, y5, p5, ["plan"], 0.5, 10, bootstrap, g)
                     for g in (None, entity))  # fmt: skip
    for row, entities in zip(rows, grouped, strict=True):
        narrow = row["roc_auc_high"] - row["roc_auc_low"]
        assert narrow < 0.6 * (entities["roc_auc_high"] - entities["roc_auc_low"])


def test_slice_metrics_reports_each_value_and_skips_small_slices():
    frame = pd.DataFrame({"channel": ["a"] * 60 + ["b"] * 60 + ["c"] * 5})
    y = np.array(([0, 1] * 30) * 2 + [0] * 5)
    p = np.where(y == 1, 0.9, 0.1).astype(float)
    p[60:90] = 0.5  # slice b is served worse
    rows = slice_metrics(frame, y, p, ["channel"], threshold=0.6, min_rows=10)
    by_value = {r["value"]: r for r in rows}
    assert set(by_value) == {"a", "b"}
    assert by_value["a"]["recall"] > by_value["b"]["recall"]


def test_error_rates_cost_table_and_curves_agree_with_counting():
    from models.evaluate import cost_table, curves

    y = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    p = np.array([0.1, 0.4, 0.6, 0.7, 0.3, 0.8, 0.9, 0.2])
    m = classification_metrics(y, p, 0.5)
    assert (m["fpr"], m["fnr"]) == (2 / 5, 1 / 3)
    table = cost_table(y, p, threshold=0.5, false_positive=1.0, false_negative=10.0)
    assert [(r["fp"], r["fn"], r["cost"]) for r in table[:2]] == [(2, 1, 12.0), (2, 1, 12.0)]
    brute = min(
        ((p >= t) & (y == 0)).sum() * 1.0 + ((p < t) & (y == 1)).sum() * 10.0
        for t in [*p, 0.5, np.inf]
    )
    assert table[2]["cost"] == brute == 3.0  # every positive caught at 0.3: 3 false positives
    bins = curves(y, p, bins=5)["calibration"]
    assert sum(b["rows"] for b in bins) == len(y)
    assert all(b["low"] <= b["mean_score"] <= b["high"] for b in bins)


def test_a_many_valued_number_is_sliced_by_quantile_bins():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"age": rng.integers(18, 90, 2000), "flag": rng.integers(0, 2, 2000)})
    y, p = rng.integers(0, 2, 2000), rng.random(2000)
    rows = slice_metrics(frame, y, p, ["age", "flag"], 0.5, 100)
    ages = [r for r in rows if r["slice"] == "age"]
    assert len(ages) == 4 and sum(r["rows"] for r in ages) == 2000
    assert all(str(r["value"]).startswith("(") for r in ages)  # interval labels
    assert sorted(r["value"] for r in rows if r["slice"] == "flag") == ["0", "1"]
