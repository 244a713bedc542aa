"""SHAP explanations: global (beeswarm, mean |SHAP|) and local (top attributions per row).

The explainer is the one the family declares (`ModelFamily.explainer`): exact tree SHAP
for gradient boosting, exact linear SHAP for logistic regression (tuned or baseline),
permutation SHAP for the torch MLP. Attributions of one-hot columns are summed back to their
raw feature, so explanations speak in the columns users send.

`RowExplainer` is the one per-row path: the training run's offline explanation and the
gateway's `/explain` (serving/gateway/explain.py) both call it, so served attributions are the
offline ones. Each family declares its space (`ModelFamily.shap_space`): tree SHAP explains
boosting's log-odds and a forest's probability, linear SHAP the log-odds, the permutation
explainer the probability of the positive class. Permutation SHAP is one
antithetic permutation (2F + 1 evaluations over the background) drawn with the same seed for
every row, so a row's attributions do not depend on the rows explained with it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from models.families import get_family

BACKGROUND_FILE = "background.parquet"  # the raw background rows (the gateway's, too)
ROWS_FILE = "shap_rows.parquet"  # the explained raw rows
VALUES_FILE = "shap_values.parquet"  # their attributions per raw feature, plus base_value
BASE_VALUE = "base_value"
SETTINGS_FILE = "explainer.json"  # kind, space and seed: what the gateway rebuilds
_SHAP_RNG = threading.Lock()  # shap's permutation explainer draws from numpy's global RNG


@dataclass(frozen=True)
class Explanation:
    """Global importance, local examples and the plot files."""

    explainer: str
    importance: pd.DataFrame  # feature, mean_abs_shap (descending)
    local: list[dict[str, object]]
    plots: dict[str, str]

    def top_features(self, k: int = 5) -> list[str]:
        """The `k` most important raw features."""
        return self.importance["feature"].head(k).tolist()


def explain_model(
    model: Pipeline,
    family: str,
    background: pd.DataFrame,
    rows: pd.DataFrame,
    out_dir: Path,
    local_examples: int = 5,
    seed: int = 0,
) -> Explanation:
    """Explain a fitted `preprocess -> model` pipeline on raw feature rows.

    Args:
        model: Fitted pipeline with steps "preprocess" and "model".
        family: A name in `models.families.FAMILIES`; its declaration picks the explainer.
        background: Raw rows for the background distribution (linear/permutation SHAP).
        rows: Raw rows to explain.
        out_dir: Directory for the plots (created).
        local_examples: How many rows get a local explanation (the highest scored first).
        seed: Seed for permutation SHAP.
    """
    explainer = build_row_explainer(model, family, background, seed)
    raw, base_values = explainer.explain(rows)
    importance = mean_abs_attribution(raw).rename("mean_abs_shap").reset_index()
    probabilities = model.predict_proba(rows)[:, 1]
    local = _local_examples(rows, raw, probabilities, local_examples)
    plots = _plot(raw, rows, importance, Path(out_dir))
    _save_values(rows, raw, base_values, background, explainer, Path(out_dir))
    return Explanation(explainer.kind, importance, local, plots)


def mean_abs_attribution(values: pd.DataFrame) -> pd.Series:
    """Mean |attribution| per feature (one column each), largest first, ties by name.

    The one definition of a feature's global importance: the training run's (`explain_model`,
    named `mean_abs_shap` there) and the monitor's attribution drift per window and reference
    (`monitoring.attribution`).

    Raises:
        ValueError: No rows, or a feature whose attributions are not all finite.
    """
    if values.empty:
        raise ValueError("no attributions to average")
    means = values.abs().mean()
    broken = sorted(str(f) for f, v in means.items() if not np.isfinite(v))
    if broken:
        raise ValueError(f"attributions are not finite for {broken}")
    order = sorted(means.index, key=lambda f: (-float(means[f]), str(f)))
    return means[order].astype(float).rename_axis("feature").rename("mean_abs_attribution")


@dataclass(frozen=True)
class RowExplainer:
    """A fitted pipeline's explainer, built once, explaining raw rows in raw-feature terms.

    Attributes:
        kind: "tree", "linear" or "permutation" (the family's declaration).
        space: "log_odds" or "probability": what base value + attributions add up to.
    """

    kind: str
    space: str
    preprocess: Any
    shap_explainer: Any
    features: tuple[str, ...]  # the raw columns, in the background's order
    grouping: np.ndarray  # (transformed columns, raw features): 1 where a column is a feature's
    seed: int

    def explain(self, rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Attributions per raw feature (a column each, `rows`' order) and base values."""
        X = self.preprocess.transform(rows[list(self.features)])
        if self.kind == "permutation":
            values, base = self._permutation(np.asarray(X))
        else:
            values = np.asarray(self.shap_explainer.shap_values(X))
            expected = np.asarray(self.shap_explainer.expected_value, dtype=float).reshape(-1)
            base = np.full(len(rows), expected[-1])
        if values.ndim == 3:  # (rows, features, classes): keep the positive class
            values = values[..., -1]
        return pd.DataFrame(values @ self.grouping, columns=list(self.features)), base

    def _permutation(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, base = np.empty(X.shape), np.empty(len(X))
        with _SHAP_RNG:
            for i in range(len(X)):
                np.random.seed(self.seed)  # shap draws from the global RNG
                out = self.shap_explainer(X[i : i + 1], max_evals=2 * X.shape[1] + 1, silent=True)
                values[i], base[i] = out.values[0], np.asarray(out.base_values).reshape(-1)[0]
        return values, base


def build_row_explainer(
    model: Pipeline, family: str, background: pd.DataFrame, seed: int = 0
) -> RowExplainer:
    """The explainer `family` declares, over `background` raw rows (linear and permutation).

    Args:
        model: Fitted pipeline with steps "preprocess" and "model".
        family: A name in `models.families.FAMILIES`.
        background: Raw rows: the mean for linear SHAP, the masker for permutation SHAP.
        seed: Seed of the permutation drawn for every row.
    """
    import shap

    preprocess, estimator = model.named_steps["preprocess"], model.named_steps["model"]
    declared = get_family(family)
    kind = declared.explainer
    if kind == "tree":
        explainer: Any = shap.TreeExplainer(estimator)
    elif kind == "linear":
        explainer = shap.LinearExplainer(estimator, preprocess.transform(background))
    else:
        explainer = shap.PermutationExplainer(
            lambda X: estimator.predict_proba(X)[:, 1],
            np.asarray(preprocess.transform(background)),
            seed=seed,
        )
    features = [str(c) for c in background.columns]
    grouping = _grouping(preprocess.get_feature_names_out(), features)
    return RowExplainer(
        kind, declared.shap_space, preprocess, explainer, tuple(features), grouping, seed
    )


def read_rows(path: Path) -> pd.DataFrame:
    """Raw rows saved by `explain_model`, missing values NaN as the model was trained with
    (Parquet gives None for a missing string, which the imputer would not see as missing)."""
    frame = pd.read_parquet(path)
    return frame.astype(object).where(frame.notna(), np.nan).astype(frame.dtypes.to_dict())


def _save_values(
    rows: pd.DataFrame,
    raw: pd.DataFrame,
    base_values: np.ndarray,
    background: pd.DataFrame,
    explainer: RowExplainer,
    out_dir: Path,
) -> None:
    """The background, rows and attributions as Parquet (data, safe to read from a store)."""
    background.reset_index(drop=True).to_parquet(out_dir / BACKGROUND_FILE, index=False)
    rows.reset_index(drop=True).to_parquet(out_dir / ROWS_FILE, index=False)
    values = raw.reset_index(drop=True).assign(**{BASE_VALUE: base_values})
    values.to_parquet(out_dir / VALUES_FILE, index=False)
    settings = {"kind": explainer.kind, "space": explainer.space, "seed": explainer.seed}
    (out_dir / SETTINGS_FILE).write_text(json.dumps(settings) + "\n")


def group_by_raw_feature(
    values: np.ndarray, output_names: np.ndarray, raw_features: list[str]
) -> pd.DataFrame:
    """Sum SHAP columns of the transformed matrix back to the raw feature each came from.

    Output names look like "numeric__amount" or "categorical__channel_online".
    """
    grouping = _grouping(output_names, raw_features)
    used = [i for i in range(len(raw_features)) if grouping[:, i].any()]
    return pd.DataFrame(values @ grouping[:, used], columns=[raw_features[i] for i in used])


def _grouping(output_names: np.ndarray, raw_features: list[str]) -> np.ndarray:
    """0/1 matrix (output column, raw feature): the raw feature each output column comes from."""
    grouping = np.zeros((len(output_names), len(raw_features)))
    for i, name in enumerate(output_names):
        column = str(name).split("__", 1)[-1]
        matches = [f for f in raw_features if column == f or column.startswith(f"{f}_")]
        grouping[i, raw_features.index(max(matches, key=len))] = 1.0
    return grouping


def _local_examples(
    rows: pd.DataFrame, raw: pd.DataFrame, probabilities: np.ndarray, k: int
) -> list[dict[str, object]]:
    examples = []
    for position in np.argsort(-probabilities, kind="stable")[:k]:
        contributions = raw.iloc[position].sort_values(key=np.abs, ascending=False).head(5)
        examples.append(
            {
                "row": int(position),
                "probability": float(probabilities[position]),
                "top_attributions": [
                    {"feature": f, "value": _plain(rows.iloc[position][f]), "shap": float(v)}
                    for f, v in contributions.items()
                ],
            }
        )
    return examples


def _plain(value: object) -> object:
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _plot(
    raw: pd.DataFrame, rows: pd.DataFrame, importance: pd.DataFrame, out_dir: Path
) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    out_dir.mkdir(parents=True, exist_ok=True)
    colour = pd.DataFrame(
        {
            c: rows[c] if pd.api.types.is_numeric_dtype(rows[c]) else pd.factorize(rows[c])[0]
            for c in raw.columns
        }
    ).astype(float)
    shap.summary_plot(raw.to_numpy(), colour, feature_names=list(raw.columns), show=False)
    beeswarm = out_dir / "shap_beeswarm.png"
    plt.gcf().savefig(beeswarm, dpi=110, bbox_inches="tight")
    plt.close("all")
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(importance) + 1))
    ax.barh(importance["feature"][::-1], importance["mean_abs_shap"][::-1])
    ax.set_xlabel("mean |SHAP value| (impact on the positive-class output)")
    bar = out_dir / "shap_importance.png"
    fig.savefig(bar, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return {"beeswarm": str(beeswarm), "importance": str(bar)}
