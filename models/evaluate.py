"""Evaluation: threshold on validation, metrics on test, bootstrap intervals and slices."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TypeAlias

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

SliceRow: TypeAlias = dict[str, str | float]  # {"slice": column, "value": value, **metrics}


def choose_threshold(y_valid: np.ndarray, p_valid: np.ndarray) -> float:
    """The decision threshold that maximises F1 on validation data (never on test)."""
    precision, recall, thresholds = precision_recall_curve(y_valid, p_valid)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def metric_fn(name: str, threshold: float = 0.5) -> Callable[[np.ndarray, np.ndarray], float]:
    """A score function `(y, p) -> float` where higher is better."""
    if name == "roc_auc":
        return roc_auc_score
    if name == "pr_auc":
        return average_precision_score
    if name == "f1":
        return lambda y, p: f1_score(y, p >= threshold, zero_division=0)
    raise ValueError(f"unknown metric '{name}'; allowed: roc_auc, pr_auc, f1")


def score(name: str, y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """One metric, NaN where undefined (a single class in `y`)."""
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(metric_fn(name, threshold)(y, p))


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC-AUC, PR-AUC, F1, precision, recall, Brier score and confusion counts."""
    y, decisions = np.asarray(y), np.asarray(p) >= threshold
    tn, fp, fn, tp = confusion_matrix(y, decisions, labels=[0, 1]).ravel()
    return {
        "roc_auc": score("roc_auc", y, p),
        "pr_auc": score("pr_auc", y, p),
        "f1": float(f1_score(y, decisions, zero_division=0)),
        "precision": float(precision_score(y, decisions, zero_division=0)),
        "recall": float(recall_score(y, decisions, zero_division=0)),
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


def bootstrap_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """Resample row indices (samples x n) with replacement; shared by all paired comparisons."""
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def bootstrap_scores(
    name: str, y: np.ndarray, p: np.ndarray, indices: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """The metric on each bootstrap resample (NaN for a resample with one class)."""
    y, p = np.asarray(y), np.asarray(p)
    return np.array([score(name, y[i], p[i], threshold) for i in indices])


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
) -> list[SliceRow]:
    """Metrics per value of each slice column (values with fewer than `min_rows` rows skipped)."""
    y, p = np.asarray(y), np.asarray(p)
    rows: list[SliceRow] = []
    for column in columns:
        values = frame[column].astype(object).where(frame[column].notna(), "<missing>").to_numpy()
        for value in pd.unique(values):
            mask = values == value
            if mask.sum() < min_rows:
                continue
            metrics = classification_metrics(y[mask], p[mask], threshold)
            rows.append({"slice": column, "value": str(value), **metrics})
    return rows
