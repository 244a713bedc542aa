"""Pairing served and shadow rows with their labels, and the live comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd

from configs import load_config
from monitoring.shadow import (
    CHALLENGER_SCORE,
    CHAMPION_SCORE,
    live_evidence,
    pair_shadow_rows,
    shadow_samples,
)

T0 = pd.Timestamp("2026-07-01", tz="UTC")


def _served(ids, versions, labels, scores):
    return pd.DataFrame({"request_id": ids, "timestamp": [T0] * len(ids),
                         "model_version": versions, "label": labels, "score": scores})  # fmt: skip


def _shadow(ids, versions, of, scores):
    return pd.DataFrame({"request_id": ids, "timestamp": [T0] * len(ids),
                         "model_version": versions, "shadow_of": of, "score": scores})  # fmt: skip


def test_only_labelled_rows_of_the_champion_mirrored_by_the_challenger_pair():
    served = _served(["a", "b", "c", "d", "e"], ["1", "1", "1", "0", "1"],
                     [1, 0, np.nan, 1, 0], [0.9, 0.2, 0.5, 0.8, 0.3])  # fmt: skip
    shadow = _shadow(["a", "b", "c", "d", "e", "a"], ["2", "2", "2", "2", "3", "2"],
                     ["1", "1", "1", "0", "1", "1"], [0.1, 0.3, 0.4, 0.6, 0.7, 0.95])  # fmt: skip
    paired = pair_shadow_rows(served, shadow, champion="1", challenger="2")
    # c: no label; d: answered by another version; e: another challenger
    assert paired["request_id"].tolist() == ["a", "b"]
    assert paired[CHAMPION_SCORE].tolist() == [0.9, 0.2]
    assert paired[CHALLENGER_SCORE].tolist() == [0.95, 0.3]  # a retried id: the latest row
    assert paired["label"].tolist() == [1, 0]
    assert pair_shadow_rows(served, shadow.iloc[:0], champion="1", challenger="2").empty


def test_live_evidence_on_paired_rows_and_its_gauges():
    config = load_config("fraud")
    config = config.model_copy(update={"evaluation": config.evaluation.model_copy(
        update={"bootstrap_samples": 50})})  # fmt: skip
    rng = np.random.default_rng(1)
    y = (rng.random(1000) < 0.3).astype(int)
    better = np.clip(0.5 * y + 0.5 * rng.random(1000), 0, 1)
    paired = pd.DataFrame({"request_id": [str(i) for i in range(1000)],
                           "timestamp": pd.date_range(T0, periods=1000, freq="min"),
                           "label": y, CHAMPION_SCORE: rng.random(1000),
                           CHALLENGER_SCORE: better})  # fmt: skip
    evidence = live_evidence(config, paired, champion="1", challenger="2",
                             thresholds=(0.5, 0.5), shadow_rows=1200)  # fmt: skip
    assert evidence.rows == 1000 and evidence.positives == int(y.sum())
    assert evidence.comparison is not None and evidence.comparison.gain_low > 0
    assert evidence.first.startswith("2026-07-01T00:00") and evidence.shadow_rows == 1200
    samples = {(s.name, s.labels.get("bound"), s.labels.get("model")): s.value
               for s in shadow_samples(config, evidence)}  # fmt: skip
    assert samples[("mlops_shadow_labelled_rows", None, None)] == 1000
    assert samples[("mlops_shadow_evidence_sufficient", None, None)] == 1.0
    assert samples[("mlops_shadow_gain", "low", None)] == evidence.comparison.gain_low
