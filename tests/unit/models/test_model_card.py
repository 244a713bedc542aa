"""The model card: every section of "Model Cards for Model Reporting", the facts behind the
threshold, costs and slices, and the flags a reviewer must see."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from models.evaluate import (
    Bootstrap,
    classification_metrics,
    curves,
    error_rate_gaps,
    slice_metrics,
)
from models.model_card import CardFacts, render_model_card, save_curves_plot, sensitive_among_top

IV = {"value": 0.8, "low": 0.7, "high": 0.9}


def _facts(**changes) -> CardFacts:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 600)
    p = np.clip(0.35 * y + 0.65 * rng.random(600), 0, 1)
    frame = pd.DataFrame({"sex": rng.choice(["F", "M"], 600), "channel": "web"})
    slices = slice_metrics(frame, y, p, ["channel", "sex"], 0.5, 50,
                           Bootstrap("pr_auc", 50, 0.95, 1))  # fmt: skip
    facts = CardFacts(
        project="p",
        description="d",
        model_name="p-classifier",
        version="3",
        family="gbdt",
        params={"max_iter": 10},
        lineage={"dataset_sha256 (raw)": "abc"},
        metrics=classification_metrics(y, p, 0.5),
        primary={
            "metric": "pr_auc",
            "confidence": 0.95,
            "intervals": {"challenger": IV, "baseline": IV},
        },  # fmt: skip
        slices=slices,
        top_features=[
            {"feature": "amount", "mean_abs_shap": 0.3},
            {"feature": "sex", "mean_abs_shap": 0.2},
        ],  # fmt: skip
        decision={"promote": False, "reasons": ["challenger does not beat champion"]},
        use={
            "intended_use": "Rank card payments for review.",
            "out_of_scope_use": "",
            "sensitive_attributes": ("sex",),
        },  # fmt: skip
        data={
            "train": {"rows": 1000, "positive_rate": 0.1, "time_range": "2024-01 .. 2024-06"},
            "test": {"rows": 600, "positive_rate": 0.5, "time_range": None},
        },  # fmt: skip
        gaps=error_rate_gaps(slices, ("sex",)),
        calibration=curves(y, p)["calibration"],
        plot="evaluation_curves.png",
    )
    return replace(facts, **changes)


def test_the_card_has_every_section_of_a_model_card():
    card = render_model_card(_facts())
    sections = ["# Model card: p-classifier v3", "## Hyperparameters", "## Data and lineage",
                "## Intended use", "## Factors", "## Metrics", "## Evaluation data",
                "## Training data", "## Quantitative analyses", "## Most important features",
                "## Ethical considerations", "## Gate decision",
                "## Caveats and recommendations"]  # fmt: skip
    positions = [card.index(section) for section in sections]
    assert positions == sorted(positions)
    assert "Rank card payments for review." in card
    assert "_Not stated: set `card.out_of_scope_use`" in card  # said, not left blank
    assert "| challenger | 0.8000 | 0.7000 – 0.9000 |" in card
    assert "- train: 1,000 rows, base rate 10.00%, 2024-01 .. 2024-06" in card
    assert "- valid: not recorded" in card
    assert "- final fit" not in card  # no refit recorded: the train-only fit is served


def test_a_refit_on_train_and_valid_is_stated_with_its_rows():
    data = {
        "train": {"rows": 1000, "positive_rate": 0.1},
        "valid": {"rows": 200, "positive_rate": 0.1},
        "fit": {"rows": 1200, "positive_rate": 0.1},
    }
    card = render_model_card(_facts(data=data))
    assert "- final fit: train + valid, 1,200 rows, base rate 10.00%" in card
    assert "`training.refit_on_validation`" in card
    assert (
        "![ROC, precision-recall and calibration curves (test set)](evaluation_curves.png)" in card
    )


def test_the_threshold_is_explained_with_its_confusion_matrix():
    facts = _facts()
    m = facts.metrics
    card = render_model_card(facts)
    assert "**Decision threshold 0.5000**: the score that maximises F1 on the validation" in card
    assert f"| actual positive | {m['tp']} (true positives) | {m['fn']} (false negatives) |" in card
    assert f"| actual negative | {m['fp']} (false positives) | {m['tn']} (true negatives) |" in card
    assert "Error costs" not in card  # no costs configured
    costs = [{"threshold": "0.5", "value": 0.5, "fp": 3, "fn": 1, "cost": 8.0,
              "cost_per_1000_rows": 13.3}]  # fmt: skip
    assert "| 0.5 | 0.5000 | 3 | 1 | 8.00 | 13.30 |" in render_model_card(_facts(costs=costs))


def test_slices_carry_intervals_and_error_rates_and_gaps_are_listed():
    facts = _facts()
    card = render_model_card(facts)
    sex = [s for s in facts.slices if s["slice"] == "sex"]
    assert len(sex) == 2
    for row in sex:
        assert row["pr_auc_low"] <= row["pr_auc"] <= row["pr_auc_high"]
        assert f"| sex | {row['value']} | {row['rows']} |" in card
    gap = next(g for g in facts.gaps if g["rate"] == "fpr")
    assert gap["gap"] == abs(sex[0]["fpr"] - sex[1]["fpr"])
    assert f"| sex | FPR | {gap['gap']:.4f} |" in card


def test_a_sensitive_attribute_among_the_top_features_is_flagged():
    card = render_model_card(_facts())
    assert "**Flag:** `sex` is a sensitive attribute and the model's #2 feature" in card
    quiet = render_model_card(_facts(top_features=[{"feature": "amount", "mean_abs_shap": 0.3}]))
    assert "**Flag:**" not in quiet and "None of the sensitive attributes (sex)" in quiet
    undeclared = render_model_card(_facts(use={}, gaps=[]))
    assert "No sensitive attributes are declared (`card.sensitive_attributes`)" in undeclared
    # a one-hot encoded feature counts for its column; a longer name that merely starts alike
    # without the separator does not
    top = [{"feature": "cat__sex_F"}, {"feature": "sexton"}]
    assert sensitive_among_top(top, ("sex",)) == [("sex", 1)]


def test_the_curves_plot_is_a_png(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    path = save_curves_plot(curves(y, rng.random(300)), tmp_path / "plots" / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
