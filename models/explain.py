"""SHAP explanations: global (beeswarm, mean |SHAP|) and local (top attributions per row).

The explainer is the one the family declares (`ModelFamily.explainer`): exact tree SHAP
for gradient boosting, exact linear SHAP for logistic regression (tuned or baseline),
permutation SHAP for the torch MLP. Attributions of one-hot columns are summed back to their
raw feature, so explanations speak in the columns users send.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from models.families import get_family


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
    import shap

    from configs.console import progress_enabled

    preprocess, estimator = model.named_steps["preprocess"], model.named_steps["model"]
    X_rows = preprocess.transform(rows)
    X_background = preprocess.transform(background)
    name = get_family(family).explainer
    if name == "tree":
        values = shap.TreeExplainer(estimator).shap_values(X_rows)
    elif name == "linear":
        values = shap.LinearExplainer(estimator, X_background).shap_values(X_rows)
    else:
        explainer = shap.PermutationExplainer(
            lambda X: estimator.predict_proba(X)[:, 1], X_background, seed=seed
        )
        # SHAP's own (tqdm) bar for the slow explainer, on a terminal only
        silent = not progress_enabled()
        values = explainer(X_rows, max_evals=2 * X_rows.shape[1] + 1, silent=silent).values
    values = np.asarray(values)
    if values.ndim == 3:  # (rows, features, classes): keep the positive class
        values = values[..., -1]
    raw = group_by_raw_feature(values, preprocess.get_feature_names_out(), list(rows.columns))
    importance = (
        raw.abs()
        .mean()
        .sort_values(ascending=False)
        .rename("mean_abs_shap")
        .rename_axis("feature")
        .reset_index()
    )
    probabilities = model.predict_proba(rows)[:, 1]
    local = _local_examples(rows, raw, probabilities, local_examples)
    plots = _plot(raw, rows, importance, Path(out_dir))
    return Explanation(name, importance, local, plots)


def group_by_raw_feature(
    values: np.ndarray, output_names: np.ndarray, raw_features: list[str]
) -> pd.DataFrame:
    """Sum SHAP columns of the transformed matrix back to the raw feature each came from.

    Output names look like "numeric__amount" or "categorical__channel_online".
    """
    owners = []
    for name in output_names:
        column = str(name).split("__", 1)[-1]
        matches = [f for f in raw_features if column == f or column.startswith(f"{f}_")]
        owners.append(max(matches, key=len))
    frame = pd.DataFrame(values, columns=range(values.shape[1]))
    grouped = frame.T.groupby(np.array(owners)).sum().T
    return grouped[[f for f in raw_features if f in grouped.columns]]


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
