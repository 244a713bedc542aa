"""Model card: one Markdown page per registered version, built from the run's records.

The sections follow "Model Cards for Model Reporting" (Mitchell et al., 2019): model details,
intended use, factors, metrics, evaluation and training data, quantitative analyses, ethical
considerations, caveats and recommendations; then how the model was selected and gated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CURVES_PLOT = "evaluation_curves.png"  # written beside the card by `save_curves_plot`
TOP_FEATURES = 10


@dataclass(frozen=True)
class CardFacts:
    """Everything a card states, gathered by the gate step from the run's records.

    Attributes:
        project, description: From the config.
        model_name, version: The registered version this card describes.
        family, params: The model family and its hyperparameters.
        lineage: Data hashes, row counts, git commit, run ids.
        metrics: Test metrics of the challenger at its threshold (confusion counts included).
        primary: Primary metric name and interval for challenger, champion and baseline.
        slices: Per-slice test metrics (`models.evaluate.slice_metrics`).
        top_features: Rows of (feature, mean_abs_shap), most important first.
        decision: The gate's decision record.
        selection: How the challenger was chosen (`models.gate.Selection.to_dict()`).
        use: The config's `card` section (intended and out-of-scope use, sensitive attributes).
        data: Per split ("train", "valid", "test"): rows, positive_rate and time_range; "fit":
            the rows of the final fit (train + valid when refit).
        gaps: False positive / negative rate gaps per sensitive attribute.
        costs: The cost table (`models.evaluate.cost_table`), when the config gives costs.
        calibration: The reliability table of `models.evaluate.curves`.
        plot: The curves plot's path relative to the card, when one was drawn.
    """

    project: str
    description: str
    model_name: str
    version: str
    family: str
    params: dict[str, Any]
    lineage: dict[str, Any]
    metrics: dict[str, Any]
    primary: dict[str, Any]
    slices: list[dict[str, Any]]
    top_features: list[dict[str, Any]]
    decision: dict[str, Any]
    selection: dict[str, Any] | None = None
    use: dict[str, Any] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)
    calibration: list[dict[str, Any]] = field(default_factory=list)
    plot: str | None = None


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_model_card(facts: CardFacts) -> str:
    """The card as Markdown."""
    sections = [
        _details(facts),
        _intended_use(facts),
        _factors(facts),
        _metrics(facts),
        _data(facts),
        _analyses(facts),
        _features(facts),
        _ethics(facts),
        _selection_and_gate(facts),
        _caveats(),
    ]
    return "\n".join(line for section in sections for line in [*section, ""]).rstrip() + "\n"


def _details(f: CardFacts) -> list[str]:
    chosen = (
        [f"**Selected by:** {f.selection['rule']} — the {f.selection['candidate']} model  "]
        if f.selection
        else []
    )
    return [
        f"# Model card: {f.model_name} v{f.version}",
        "",
        f"**Project:** {f.project} — {f.description}",
        f"**Model family:** {f.family}  ",
        *chosen,
        f"**Gate passed:** {'yes' if f.decision['promote'] else 'no'} (the champion alias moves "
        "only after infra validation in Triton; see the version's `deploy.status` tag)",
        "",
        "## Hyperparameters",
        *[f"- {k}: {_fmt(v)}" for k, v in f.params.items()],
        "",
        "## Data and lineage",
        *[f"- {k}: {_fmt(v)}" for k, v in f.lineage.items()],
    ]


def _stated(text: str, key: str) -> str:
    return text or f"_Not stated: set `card.{key}` in the project's config._"


def _intended_use(f: CardFacts) -> list[str]:
    return [
        "## Intended use",
        _stated(f.use.get("intended_use", ""), "intended_use"),
        "",
        "**Out of scope:** " + _stated(f.use.get("out_of_scope_use", ""), "out_of_scope_use"),
    ]


def _factors(f: CardFacts) -> list[str]:
    sliced = sorted({str(s["slice"]) for s in f.slices})
    sensitive = list(f.use.get("sensitive_attributes", ()))
    return [
        "## Factors",
        f"- Evaluated apart (slices): {', '.join(sliced) if sliced else 'none'}",
        f"- Sensitive attributes: {', '.join(sensitive) if sensitive else 'none declared'}",
    ]


def _metrics(f: CardFacts) -> list[str]:
    p, m = f.primary, f.metrics
    lines = [
        f"## Metrics ({p['metric']}, {p['confidence']:.0%} bootstrap interval, test set)",
        "| model | value | interval |",
        "|---|---|---|",
        *[
            f"| {who} | {iv['value']:.4f} | {iv['low']:.4f} – {iv['high']:.4f} |"
            for who, iv in p["intervals"].items()
        ],
        "",
        *[f"- {k}: {_fmt(v)}" for k, v in m.items() if k not in {"tn", "fp", "fn", "tp"}],
    ]
    if "threshold" in m and "tp" in m:
        lines += [
            "",
            f"**Decision threshold {m['threshold']:.4f}**: the score that maximises F1 on the "
            "validation split (never chosen on test), midway between the validation scores on "
            "either side of it; rows scoring at or above it are positive.",
            "",
            "| | predicted positive | predicted negative |",
            "|---|---|---|",
            f"| actual positive | {m['tp']} (true positives) | {m['fn']} (false negatives) |",
            f"| actual negative | {m['fp']} (false positives) | {m['tn']} (true negatives) |",
        ]
    if f.costs:
        lines += [
            "",
            "**Error costs** (the config's `evaluation.costs`, test set)",
            "",
            "| threshold | value | false positives | false negatives | cost | per 1,000 rows |",
            "|---|---|---|---|---|---|",
            *[
                f"| {c['threshold']} | {c['value']:.4f} | {c['fp']} | {c['fn']} "
                f"| {c['cost']:,.2f} | {c['cost_per_1000_rows']:,.2f} |"
                for c in f.costs
            ],
        ]
    return lines


def _data(f: CardFacts) -> list[str]:
    def describe(part: str) -> str:
        d = f.data.get(part, {})
        if not d:
            return f"- {part}: not recorded"
        span = f", {d['time_range']}" if d.get("time_range") else ""
        return f"- {part}: {d['rows']:,} rows, base rate {d['positive_rate']:.2%}{span}"

    return [
        "## Evaluation data",
        describe("test"),
        "",
        "## Training data",
        describe("train"),
        describe("valid") + " (pruning and the threshold)",
        *_final_fit(f.data),
    ]


def _final_fit(data: dict[str, dict[str, Any]]) -> list[str]:
    """The rows the served model was fitted on, when it was refit on train + valid."""
    fit, train = data.get("fit"), data.get("train")
    if not fit or not train or fit["rows"] == train["rows"]:
        return []
    return [
        f"- final fit: train + valid, {fit['rows']:,} rows, base rate {fit['positive_rate']:.2%} "
        "(refit with the tuned hyperparameters once the threshold was chosen on valid: "
        "`training.refit_on_validation`)"
    ]


def _analyses(f: CardFacts) -> list[str]:
    metric = f.primary["metric"]
    lines = ["## Quantitative analyses"]
    if f.plot:
        lines += ["", f"![ROC, precision-recall and calibration curves (test set)]({f.plot})"]
    if f.calibration:
        lines += [
            "",
            "**Calibration** (test set: mean score against the observed positive rate)",
            "",
            "| score bin | rows | mean score | positive rate |",
            "|---|---|---|---|",
            *[
                f"| {c['low']:.1f}–{c['high']:.1f} | {c['rows']} | {c['mean_score']:.3f} "
                f"| {c['positive_rate']:.3f} |"
                for c in f.calibration
            ],
        ]
    low, high = f"{metric}_low", f"{metric}_high"
    lines += [
        "",
        "**Slices** (values with fewer rows than `evaluation.slice_min_rows` are not reported)",
        "",
        f"| slice | value | rows | positives | {metric} | interval | recall | FPR | FNR |",
        "|---|---|---|---|---|---|---|---|---|",
        *[
            f"| {s['slice']} | {s['value']} | {s['rows']} | {s['positives']} "
            f"| {_fmt(s[metric])} | "
            + (f"{s[low]:.4f} – {s[high]:.4f}" if low in s else "n/a")
            + f" | {_fmt(s['recall'])} | {_fmt(s.get('fpr', 'n/a'))} "
            f"| {_fmt(s.get('fnr', 'n/a'))} |"
            for s in f.slices
        ],
    ]
    if f.gaps:
        lines += [
            "",
            "**Error-rate gaps across sensitive attributes** (max - min over their values)",
            "",
            "| attribute | rate | gap | lowest | highest |",
            "|---|---|---|---|---|",
            *[
                f"| {g['attribute']} | {g['rate'].upper()} | {g['gap']:.4f} | {g['lowest']} "
                f"| {g['highest']} |"
                for g in f.gaps
            ],
        ]
    return lines


def _features(f: CardFacts) -> list[str]:
    return [
        "## Most important features (mean |SHAP|)",
        *[
            f"{i}. {row['feature']} ({row['mean_abs_shap']:.4f})"
            for i, row in enumerate(f.top_features, 1)
        ],
    ]


def sensitive_among_top(
    top_features: list[dict[str, Any]], sensitive: tuple[str, ...] | list[str]
) -> list[tuple[str, int]]:
    """(attribute, rank) for each sensitive attribute among the top features; a one-hot
    encoded feature (`sex_F`, `cat__sex_F`) counts for its column."""
    found: dict[str, int] = {}
    for rank, row in enumerate(top_features[:TOP_FEATURES], 1):
        name = str(row["feature"]).removeprefix("num__").removeprefix("cat__")
        for attribute in sensitive:
            if name == attribute or name.startswith(f"{attribute}_"):
                found.setdefault(attribute, rank)
    return list(found.items())


def _ethics(f: CardFacts) -> list[str]:
    sensitive = tuple(f.use.get("sensitive_attributes", ()))
    if not sensitive:
        return [
            "## Ethical considerations",
            "No sensitive attributes are declared (`card.sensitive_attributes`): this card "
            "cannot say whether errors fall unevenly on groups of people. Declare the columns "
            "that describe people, even when they are not features.",
        ]
    flagged = sensitive_among_top(f.top_features, sensitive)
    lines = ["## Ethical considerations"]
    lines += [
        f"- **Flag:** `{attribute}` is a sensitive attribute and the model's #{rank} feature "
        "by mean |SHAP|: its decisions depend on it directly. Review whether that is lawful "
        "and intended for this use."
        for attribute, rank in flagged
    ] or [
        f"- None of the sensitive attributes ({', '.join(sensitive)}) is among the "
        f"{TOP_FEATURES} most important features (a proxy for them still can be)."
    ]
    widest = max(f.gaps, key=lambda g: g["gap"], default=None)
    if widest is not None:
        lines.append(
            f"- Widest error-rate gap: {widest['rate'].upper()} across `{widest['attribute']}`"
            f", {widest['gap']:.4f} ({widest['lowest']} to {widest['highest']})."
        )
    return lines


def _selection_and_gate(f: CardFacts) -> list[str]:
    why = ["## Model selection", f.selection["reason"], ""] if f.selection else []
    return [*why, "## Gate decision", *[f"- {reason}" for reason in f.decision["reasons"]]]


def _caveats() -> list[str]:
    return [
        "## Caveats and recommendations",
        "- Trained and evaluated on one historical window; performance under drift is "
        "watched by monitoring, not guaranteed here.",
        "- The decision threshold maximises F1 on validation data; a different cost of "
        "errors needs a different threshold (see the cost table when costs are configured).",
        "- Slice and gap figures rest on the test rows of each value; read them with their "
        "intervals.",
    ]


def save_curves_plot(curves: dict[str, Any], path: Path) -> Path:
    """ROC, precision-recall and calibration curves (`models.evaluate.curves`) as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (roc, pr, cal) = plt.subplots(1, 3, figsize=(13, 4))
    roc.plot(curves["roc"]["fpr"], curves["roc"]["tpr"])
    roc.plot([0, 1], [0, 1], linestyle=":", color="grey")
    roc.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    pr.plot(curves["pr"]["recall"], curves["pr"]["precision"])
    pr.set(title="Precision-recall", xlabel="recall", ylabel="precision")
    bins = curves["calibration"]
    cal.plot([b["mean_score"] for b in bins], [b["positive_rate"] for b in bins], marker="o")
    cal.plot([0, 1], [0, 1], linestyle=":", color="grey")
    cal.set(title="Calibration", xlabel="mean score", ylabel="observed positive rate")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
