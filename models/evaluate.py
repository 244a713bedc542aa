"""Evaluation: threshold on validation, metrics on test, bootstrap intervals and slices."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from configs.schema import METRICS

SliceRow: TypeAlias = dict[str, str | float]  # {"slice": column, "value": value, **metrics}


def choose_threshold(y_valid: np.ndarray, p_valid: np.ndarray) -> float:
    """The decision threshold that maximises F1 on validation data (never on test), placed
    midway between the lowest score it accepts and the highest it rejects: the same decisions
    on validation, with the widest margin for scores that move (a refit, float32 serving)."""
    precision, recall, thresholds = precision_recall_curve(y_valid, p_valid)
    if not len(thresholds):
        return 0.5
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    lowest_accepted = float(thresholds[int(np.argmax(f1[:-1]))])
    scores = np.asarray(p_valid)
    rejected = scores[scores < lowest_accepted]
    return (lowest_accepted + float(rejected.max())) / 2 if rejected.size else lowest_accepted


def metric_fn(name: str, threshold: float = 0.5) -> Callable[[np.ndarray, np.ndarray], float]:
    """A score function `(y, p) -> float` where higher is better."""
    if name == "roc_auc":
        return roc_auc_score
    if name == "pr_auc":
        return average_precision_score
    if name == "f1":
        return lambda y, p: f1_score(y, p >= threshold, zero_division=0)
    raise ValueError(f"unknown metric '{name}'; allowed: {', '.join(METRICS)}")


def score(name: str, y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """One metric, NaN where undefined (a single class in `y`)."""
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(metric_fn(name, threshold)(y, p))


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, F1, precision, recall, false positive and false negative rates, Brier
    score and confusion counts."""
    y, decisions = np.asarray(y), np.asarray(p) >= threshold
    tn, fp, fn, tp = confusion_matrix(y, decisions, labels=[0, 1]).ravel()
    return {
        "roc_auc": score("roc_auc", y, p),
        "pr_auc": score("pr_auc", y, p),
        "f1": float(f1_score(y, decisions, zero_division=0)),
        "precision": float(precision_score(y, decisions, zero_division=0)),
        "recall": float(recall_score(y, decisions, zero_division=0)),
        "fpr": float(fp / (fp + tn)) if fp + tn else float("nan"),
        "fnr": float(fn / (fn + tp)) if fn + tp else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "threshold": float(threshold),
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
        "rows": len(y),
        "positives": int(y.sum()),
    }


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready dict."""
        return asdict(self)


Resamples: TypeAlias = np.ndarray | list[np.ndarray]  # row indices, a resample per row / item


def bootstrap_indices(
    n: int, samples: int, seed: int, groups: np.ndarray | None = None
) -> Resamples:
    """Resample row indices (samples x n) with replacement; shared by all paired comparisons.

    With `groups` (one key per row: `split.group_column`'s) whole groups are resampled (a
    cluster bootstrap): each resample draws as many groups as there are, with replacement, and
    holds all their rows, so rows of one entity count as one observation, not many.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.integers(0, n, size=(samples, n))
    codes, keys = pd.factorize(np.asarray(groups))  # `features.split.group_keys`: no NaN
    order = np.argsort(codes, kind="stable")  # each group's rows, one run after another
    sizes = np.bincount(codes, minlength=len(keys))
    starts = np.cumsum(sizes) - sizes

    def rows(draw: np.ndarray) -> np.ndarray:  # the drawn groups' runs, end to end
        lengths = sizes[draw]
        shift = np.repeat(starts[draw] - (np.cumsum(lengths) - lengths), lengths)
        return order[np.arange(lengths.sum()) + shift]

    return [rows(draw) for draw in rng.integers(0, len(keys), size=(samples, len(keys)))]


def bootstrap_scores(
    name: str, y: np.ndarray, p: np.ndarray, indices: Resamples, threshold: float = 0.5
) -> np.ndarray:
    """The metric on each bootstrap resample (NaN for a resample with one class).

    `score(name, y[i], p[i], threshold)` for each row `i` of `indices`, computed by
    `resampled_scores` (the gate, the training run's intervals and the monitor share it).
    """
    return resampled_scores(name, y, p, indices, threshold)


def resampled_scores(
    metric: str, y: np.ndarray, values: np.ndarray, indices: Resamples, threshold: float = 0.5
) -> np.ndarray:
    """The metric on each bootstrap resample (`indices`, one row per resample), NaN for a
    resample with one class; F1 on the decisions `values >= threshold`, the AUCs on `values`.

    Equal to sklearn's metric on each resample (`score`), but computed from how often each row
    was drawn (a row drawn k times weighs k in the ROC and PR curves) instead of one sklearn
    call per resample, so 1,000 resamples of a 100k-row window take seconds, not minutes.
    Resamples are processed in chunks of about a million drawn rows (~8 MB per array).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}'; allowed: {', '.join(METRICS)}")
    values = np.asarray(values, dtype=float)
    order = np.argsort(-values, kind="stable")
    labels, ranked = np.asarray(y, dtype=float)[order], values[order]
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    step = max(1, 1_000_000 // max(1, len(labels)))
    out = [np.empty(0)]
    for start in range(0, len(indices), step):
        chunk = indices[start : start + step]
        counts = np.stack([np.bincount(position[i], minlength=len(labels)) for i in chunk])
        out.append(_weighted_score(metric, ranked, counts * labels, counts * (1 - labels),
                                   threshold))  # fmt: skip
    return np.concatenate(out)


def _weighted_score(
    metric: str,
    ranked: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """The metric per row of integer weights of the positive and negative rows (columns in
    descending score order); NaN where either class weighs nothing."""
    if metric == "f1":
        decided = ranked >= threshold
        tp, fp = positives @ decided, negatives @ decided
        fn = positives.sum(axis=1) - tp
        found = 2 * tp / np.maximum(2 * tp + fp + fn, 1)  # 0 without any positive (sklearn's)
    else:
        ends = np.r_[ranked[1:] != ranked[:-1], True]  # one curve point per distinct score
        tp = np.cumsum(positives, axis=1)[:, ends]
        fp = np.cumsum(negatives, axis=1)[:, ends]
        recall = tp / np.maximum(tp[:, -1:], 1)
        if metric == "roc_auc":
            fpr = fp / np.maximum(fp[:, -1:], 1)
            origin = ((0, 0), (1, 0))  # the curve starts at (0, 0)
            found = np.trapezoid(np.pad(recall, origin), np.pad(fpr, origin), axis=1)
        else:  # average precision: precision at each step, weighted by the recall it adds
            precision = tp / np.maximum(tp + fp, 1)
            found = (np.diff(recall, axis=1, prepend=0.0) * precision).sum(axis=1)
    both = (positives.sum(axis=1) > 0) & (negatives.sum(axis=1) > 0)
    return np.where(both, found, np.nan)


def interval(point: float, draws: np.ndarray, confidence: float) -> Interval:
    """Percentile interval of `draws` around `point`."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high))


def slice_metrics(
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    columns: Mapping[str, str] | list[str] | tuple[str, ...],
    threshold: float,
    min_rows: int,
    bootstrap: Bootstrap | None = None,
    groups: np.ndarray | None = None,
) -> list[SliceRow]:
    """Metrics per value of each slice column (values with fewer than `min_rows` rows skipped;
    a numeric column with more than `NUMERIC_BINS * 3` values is cut into `NUMERIC_BINS`
    quantile bins); with `bootstrap`, each row also holds its primary metric's interval
    (`<metric>_low/_high`), whole `groups` resampled when given."""
    y, p = np.asarray(y), np.asarray(p)
    rows: list[SliceRow] = []
    for column in columns:
        values = _slice_values(frame[column])
        for value in pd.unique(values):
            mask = values == value
            if mask.sum() < min_rows:
                continue
            metrics: SliceRow = {"slice": column, "value": str(value),
                                 **classification_metrics(y[mask], p[mask], threshold)}  # fmt: skip
            if bootstrap is not None:
                within = None if groups is None else np.asarray(groups)[mask]
                metrics |= bootstrap.bounds(y[mask], p[mask], threshold, within)
            rows.append(metrics)
    return rows


NUMERIC_BINS = 4


def _slice_values(column: pd.Series) -> np.ndarray:
    """Each row's slice label: its value, or its quantile bin for a many-valued number."""
    if pd.api.types.is_numeric_dtype(column) and column.nunique() > NUMERIC_BINS * 3:
        column = pd.qcut(column, NUMERIC_BINS, duplicates="drop").astype(str)
    return column.astype(object).where(column.notna(), "<missing>").to_numpy()


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn: the metric, resamples, confidence and seed (the config's)."""

    metric: str
    samples: int
    confidence: float
    seed: int

    def bounds(
        self, y: np.ndarray, p: np.ndarray, threshold: float, groups: np.ndarray | None = None
    ) -> dict[str, float]:
        """`<metric>_low` and `<metric>_high` of the metric on (y, p) (whole `groups` drawn)."""
        indices = bootstrap_indices(len(y), self.samples, self.seed, groups)
        draws = bootstrap_scores(self.metric, y, p, indices, threshold)
        found = interval(score(self.metric, y, p, threshold), draws, self.confidence)
        return {f"{self.metric}_low": found.low, f"{self.metric}_high": found.high}


def error_rate_gaps(slices: list[SliceRow], attributes: tuple[str, ...]) -> list[SliceRow]:
    """Per attribute: the spread of false positive and false negative rates across its values
    (max - min over the reported values, with the values at both ends)."""
    gaps: list[SliceRow] = []
    for attribute in attributes:
        rows = [r for r in slices if r["slice"] == attribute]
        for rate in ("fpr", "fnr"):
            known = [r for r in rows if not np.isnan(float(r[rate]))]
            if len(known) < 2:
                continue
            low = min(known, key=lambda r: float(r[rate]))
            high = max(known, key=lambda r: float(r[rate]))
            gaps.append({"attribute": attribute, "rate": rate,
                         "gap": float(high[rate]) - float(low[rate]),
                         "lowest": f"{low['value']} ({float(low[rate]):.3f})",
                         "highest": f"{high['value']} ({float(high[rate]):.3f})"})  # fmt: skip
    return gaps


def curves(y: np.ndarray, p: np.ndarray, points: int = 101, bins: int = 10) -> dict[str, Any]:
    """ROC and precision-recall curves (at most `points` each) and a reliability table."""
    from sklearn.metrics import roc_curve

    y, p = np.asarray(y), np.asarray(p)
    fpr, tpr, _ = roc_curve(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    calibration = [
        {"low": float(edges[b]), "high": float(edges[b + 1]), "rows": int((which == b).sum()),
         "mean_score": float(p[which == b].mean()), "positive_rate": float(y[which == b].mean())}
        for b in range(bins) if (which == b).any()
    ]  # fmt: skip
    return {
        "roc": {"fpr": _thin(fpr, points), "tpr": _thin(tpr, points)},
        "pr": {"recall": _thin(recall, points), "precision": _thin(precision, points)},
        "calibration": calibration,
    }


def _thin(values: np.ndarray, points: int) -> list[float]:
    keep = np.unique(np.linspace(0, len(values) - 1, min(points, len(values))).round().astype(int))
    return [float(v) for v in values[keep]]


def cost_table(
    y: np.ndarray, p: np.ndarray, threshold: float, false_positive: float, false_negative: float
) -> list[dict[str, Any]]:
    """Test-set error cost at the chosen threshold, at 0.5, and at the threshold that would have
    minimised it on the test set (hindsight: a bound, not a setting)."""
    y, p = np.asarray(y), np.asarray(p)

    def row(label: str, at: float) -> dict[str, Any]:
        decisions = p >= at
        fp, fn = int((decisions & (y == 0)).sum()), int((~decisions & (y == 1)).sum())
        cost = fp * false_positive + fn * false_negative
        return {"threshold": label, "value": at, "fp": fp, "fn": fn, "cost": cost,
                "cost_per_1000_rows": 1000 * cost / max(len(y), 1)}  # fmt: skip

    candidates = np.unique(np.concatenate([p, [0.5, threshold, np.inf]]))
    negatives, positives = np.sort(p[y == 0]), np.sort(p[y == 1])
    fp = len(negatives) - np.searchsorted(negatives, candidates, side="left")
    fn = np.searchsorted(positives, candidates, side="left")
    best = float(candidates[int(np.argmin(fp * false_positive + fn * false_negative))])
    return [row("chosen (max F1 on validation)", threshold), row("0.5", 0.5),
            row("lowest cost on test (hindsight)", best)]  # fmt: skip
