"""Model card: one Markdown page per registered version, built from the run's records."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_model_card(
    *,
    project: str,
    description: str,
    model_name: str,
    version: str,
    family: str,
    params: dict[str, Any],
    lineage: dict[str, Any],
    metrics: dict[str, Any],
    primary: dict[str, Any],
    slices: list[dict[str, Any]],
    top_features: list[dict[str, Any]],
    decision: dict[str, Any],
    selection: dict[str, Any] | None = None,
) -> str:
    """The card as Markdown.

    Args:
        project, description: From the config.
        model_name, version: The registered version this card describes.
        family, params: The model family and its hyperparameters.
        lineage: Data hash, row counts, git commit, run ids.
        metrics: Test metrics of the challenger.
        primary: Primary metric name and interval for challenger, champion and baseline.
        slices: Per-slice test metrics.
        top_features: Rows of (feature, mean_abs_shap), most important first.
        decision: The gate's decision record.
        selection: How the challenger was chosen among the candidates
            (`models.gate.Selection.to_dict()`); the card says which rule decided and why.
    """
    metric = primary["metric"]
    chosen = [
        f"**Selected by:** {selection['rule']} — the {selection['candidate']} model  ",
    ] if selection else []  # fmt: skip
    why = ["## Model selection", selection["reason"], ""] if selection else []
    lines = [
        f"# Model card: {model_name} v{version}",
        "",
        f"**Project:** {project} — {description}",
        f"**Model family:** {family}  ",
        *chosen,
        f"**Gate passed:** {'yes' if decision['promote'] else 'no'} (the champion alias moves "
        "only after infra validation in Triton; see the version's `deploy.status` tag)",
        "",
        "## Data and lineage",
        *[f"- {k}: {_fmt(v)}" for k, v in lineage.items()],
        "",
        "## Hyperparameters",
        *[f"- {k}: {_fmt(v)}" for k, v in params.items()],
        "",
        f"## Primary metric ({metric}, {primary['confidence']:.0%} bootstrap interval, test set)",
        "| model | value | interval |",
        "|---|---|---|",
        *[
            f"| {who} | {iv['value']:.4f} | {iv['low']:.4f} – {iv['high']:.4f} |"
            for who, iv in primary["intervals"].items()
        ],
        "",
        "## Test metrics (threshold chosen on validation data)",
        *[f"- {k}: {_fmt(v)}" for k, v in metrics.items()],
        "",
        "## Slices",
        f"| slice | value | rows | positives | {metric} | recall |",
        "|---|---|---|---|---|---|",
        *[
            f"| {s['slice']} | {s['value']} | {s['rows']} | {s['positives']} "
            f"| {_fmt(s[metric])} | {_fmt(s['recall'])} |"
            for s in slices
        ],
        "",
        "## Most important features (mean |SHAP|)",
        *[
            f"{i}. {row['feature']} ({row['mean_abs_shap']:.4f})"
            for i, row in enumerate(top_features, 1)
        ],
        "",
        *why,
        "## Gate decision",
        *[f"- {reason}" for reason in decision["reasons"]],
        "",
        "## Known limits",
        "- Trained and evaluated on one historical window; performance under drift is "
        "watched by monitoring, not guaranteed here.",
        "- The decision threshold maximises F1 on validation data; a different cost of "
        "errors needs a different threshold.",
        "- Slices with fewer rows than `evaluation.slice_min_rows` are not reported.",
    ]
    return "\n".join(lines) + "\n"
