"""The pure parts of `make bench-quality`: reference choice, bar, report row and table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmarks.bench_quality import (
    BAR,
    MORE_TABLES,
    TABLES,
    Table,
    choose_tables,
    meets_bar,
    pick_reference,
    reference_learners,
    report_lines,
    seed_mean,
    table_row,
)
from configs import load_config

TABLE = Table("toy", "pkg", "Toy", "is_fraud", "1", "a toy table")


def test_the_reference_is_the_best_by_cv_and_the_first_listed_on_a_tie():
    assert pick_reference({"a": 0.80, "b": 0.85, "c": 0.84}) == "b"
    assert pick_reference({"a": 0.85, "b": 0.85}) == "a"
    with pytest.raises(ValueError, match="no reference"):
        pick_reference({})


def test_the_bar_needs_a_deployed_champion_within_the_margin():
    assert meets_bar(True, 0.90, 0.90 + BAR)  # exactly at the margin
    assert meets_bar(True, 0.95, 0.90)
    assert not meets_bar(True, 0.90 - 1e-4, 0.90 + BAR)
    assert not meets_bar(False, 0.99, 0.90)  # nothing deployed never meets it
    assert not meets_bar(True, None, 0.90)


def test_the_benchmark_tables_are_new_to_the_platform():
    tables = TABLES + MORE_TABLES
    sources = {(t.package, t.dataset) for t in tables}
    assert len(TABLES) >= 5 and len({t.name for t in tables}) == len(sources) == len(tables)
    assert not sources & {("modeldata", "wa_churn"), ("modeldata", "credit_data")}


def test_tables_are_chosen_by_name_or_set_each_once_in_order():
    assert choose_tables("hmda,biopsy") == [TABLES[2], TABLES[1]]
    assert choose_tables("more") == list(MORE_TABLES)
    assert choose_tables("hmda, all") == [TABLES[2], *TABLES[:2], *TABLES[3:], *MORE_TABLES]
    with pytest.raises(ValueError, match="unknown table 'iris'"):
        choose_tables("hmda,iris")
    with pytest.raises(ValueError, match="no table"):
        choose_tables(" , ")


def run_record(deployed: bool) -> dict:
    config = load_config("fraud")
    frame = pd.DataFrame({config.target: [0, 1, 0, 0]})
    metrics = {"roc_auc": 0.9, "pr_auc": 0.5}
    return {
        "config": config,
        "evaluation": {
            "challenger": {"family": "gbdt", "candidate": "tuned", "metrics": metrics},
            "baseline": {"metrics": {"roc_auc": 0.8, "pr_auc": 0.4}},
            "tuned": {"metrics": metrics},
            "selection": {"rule": "superiority"},
        },
        "deployment": {"deployed": deployed, "reasons": ["ok"]},
        "registered": {"name": "bench-toy-classifier", "version": "1"},
        "best": {"family": "gbdt", "metric": "pr_auc", "value": 0.55},
        "published": ["bench-toy-classifier/1"] if deployed else [],
        "frames": {"train": frame, "valid": frame, "test": frame},
        "excluded": ["ID"],
        "rows_raw": 14,
        "rows_quarantined": 1,
        "seconds": 12.0,
        "stage_seconds": {"tune": 5.0},
    }


def test_a_row_reads_the_pipelines_records_and_checks_the_bar():
    reference = {"learner": "random_forest", "cv_roc_auc": {"random_forest": 0.9},
                 "roc_auc": 0.905, "pr_auc": 0.6,
                 "roc_auc_by_seed": {42: 0.9, 43: 0.91}}  # fmt: skip
    row = table_row(TABLE, run_record(deployed=True), reference)
    assert (row["rows"], row["positive_rate"], row["split"]) == (12, 0.25, [4, 4, 4])
    assert row["champion"]["roc_auc"] == 0.9 and row["champion"]["version"] == "1"
    assert row["meets_bar"] and row["baseline"] == {"roc_auc": 0.8, "pr_auc": 0.4}
    missed = table_row(TABLE, run_record(deployed=False), reference)
    assert not missed["meets_bar"] and "roc_auc" not in missed["champion"]
    text = "\n".join(report_lines([row, missed], seconds=90))
    assert "**1/2 tables meet it.**" in text
    assert "`bench-toy-classifier` v1" in text and "below bar (nothing deployed)" in text
    assert "| toy | 14 | 12 |" in text and "1 excluded: ID" in text
    assert "random_forest (0.9000; 0.9000 to 0.9100)" in text
    text = "\n".join(report_lines([row], seconds=90, failed={"gone": "the pipeline failed"}))
    assert (
        "**1/2 tables meet it.**" in text and "| gone | run failed: the pipeline failed |" in text
    )


def test_the_reference_scores_are_means_over_its_seeds():
    per_seed = {42: {"roc_auc": 0.83, "pr_auc": 0.5}, 43: {"roc_auc": 0.82, "pr_auc": 0.4}}
    mean = seed_mean(per_seed)
    assert mean["roc_auc"] == pytest.approx(0.825) and mean["pr_auc"] == pytest.approx(0.45)
    assert mean["roc_auc_by_seed"] == {42: 0.83, 43: 0.82}
    with pytest.raises(ValueError, match="no seed"):
        seed_mean({})


def test_each_reference_learner_fits_missing_values_and_unseen_categories():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=120), "c": rng.choice(["a", "b"], 120).astype(object)})
    X.loc[::7, "x"], X.loc[::11, "c"] = np.nan, np.nan
    y = (X["x"].fillna(0) + (X["c"] == "a") > 0.5).astype(int).to_numpy()
    unseen = pd.DataFrame({"x": [0.1, np.nan], "c": ["z", np.nan]}).astype({"c": object})
    for name, learner in reference_learners(["x"], ["c"], trees=20).items():
        p = learner.fit(X, y).predict_proba(unseen)[:, 1]
        assert p.shape == (2,) and np.isfinite(p).all(), name
