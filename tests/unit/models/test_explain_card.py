import typing

import numpy as np
import pytest

from features.split import model_inputs
from models.explain import explain_model, group_by_raw_feature
from tests.unit.conftest import fit_pipeline


def test_one_hot_attributions_sum_back_to_raw_features():
    values = np.array([[1.0, 2.0, 3.0, 4.0]])
    names = np.array(
        [
            "numeric__amount",
            "categorical__channel_pos",
            "categorical__channel_on_line",
            "numeric__amount_30d",
        ]
    )
    grouped = group_by_raw_feature(values, names, ["amount", "amount_30d", "channel"])
    assert list(grouped.columns) == ["amount", "amount_30d", "channel"]
    assert grouped.iloc[0].tolist() == [1.0, 4.0, 5.0]


FITTED_PARAMS = {
    "mlp": {"max_epochs": 3},
    "logreg": {"C": 0.1, "penalty": "l1"},
    "extra_trees": {"n_estimators": 20, "max_leaf_nodes": 64, "min_samples_leaf": 5},
    "random_forest": {"n_estimators": 20, "max_leaf_nodes": 64, "min_samples_leaf": 5},
}


@pytest.mark.parametrize(
    "family", ["gbdt", "baseline", "mlp", "logreg", "extra_trees", "random_forest"]
)
def test_explanations_per_family(
    family, fraud_config, fraud_splits, gbdt_model, baseline_model, tmp_path
):
    train, _, test = fraud_splits
    model = {"gbdt": gbdt_model, "baseline": baseline_model}.get(family) or fit_pipeline(
        fraud_config, train, family, FITTED_PARAMS[family]
    )
    rows = model_inputs(test.head(60), fraud_config)
    result = explain_model(
        model, family, model_inputs(train.head(30), fraud_config), rows, tmp_path, local_examples=2
    )
    explainers = {"gbdt": "tree", "baseline": "linear", "mlp": "permutation", "logreg": "linear",
                  "extra_trees": "tree", "random_forest": "tree"}  # fmt: skip
    assert result.explainer == explainers[family]
    assert set(result.importance["feature"]) == set(fraud_config.features)
    assert result.importance["mean_abs_shap"].is_monotonic_decreasing
    assert (
        len(result.local) == 2 and result.local[0]["probability"] >= result.local[1]["probability"]
    )
    assert all(
        (tmp_path / f).stat().st_size > 1000 for f in ("shap_beeswarm.png", "shap_importance.png")
    )


def test_linear_attributions_are_exact(fraud_config, fraud_splits, tmp_path):
    """Per row, the attributions sum to the log-odds minus the background's mean log-odds."""
    train, _, test = fraud_splits
    config = fraud_config.model_copy(
        update={
            "numeric_features": ("amount", "distance_from_home_km"),
            "categorical_features": ("channel",),
        }  # fmt: skip
    )
    model = fit_pipeline(config, train, "logreg", {"C": 1.0, "penalty": "l2"})
    background, rows = model_inputs(train.head(50), config), model_inputs(test.head(40), config)
    result = explain_model(model, "logreg", background, rows, tmp_path, local_examples=3)
    margin = model.decision_function(rows)
    expected = margin - model.decision_function(background).mean()
    for example in result.local:  # three features: the top five attributions are all of them
        attributions = typing.cast(list[dict[str, float]], example["top_attributions"])
        total = sum(a["shap"] for a in attributions)
        assert total == pytest.approx(expected[example["row"]], abs=1e-6)


def test_tree_explanation_ranks_a_fraud_signal_first(
    fraud_config, fraud_splits, gbdt_model, tmp_path
):
    _, _, test = fraud_splits
    rows = model_inputs(test.head(300), fraud_config)
    result = explain_model(gbdt_model, "gbdt", rows.head(20), rows, tmp_path)
    signals = {
        "amount",
        "avg_amount_30d",
        "is_new_device",
        "distance_from_home_km",
        "txn_count_24h",
        "hour_of_day",
        "account_age_days",
    }
    assert result.top_features(1)[0] in signals
    assert result.importance["mean_abs_shap"].iloc[0] > 0


@pytest.mark.parametrize(
    ("family", "space"),
    [
        ("gbdt", "log_odds"),
        ("mlp", "probability"),
        ("extra_trees", "probability"),
        ("random_forest", "probability"),
    ],
)
def test_a_rows_attributions_add_up_in_their_space_whatever_is_explained_with_it(
    family, space, fraud_config, fraud_splits, gbdt_model
):
    from models.explain import build_row_explainer

    train, _, test = fraud_splits
    model = gbdt_model if family == "gbdt" else fit_pipeline(fraud_config, train, family,
                                                             FITTED_PARAMS[family])  # fmt: skip
    rows = model_inputs(test.head(6), fraud_config)
    explainer = build_row_explainer(model, family, model_inputs(train.head(30), fraud_config), 3)
    assert explainer.space == space
    values, base = explainer.explain(rows)
    alone, _ = explainer.explain(rows.iloc[[4]])
    np.testing.assert_allclose(alone.iloc[0], values.iloc[4], atol=1e-12)  # per row, same seed
    total = base + values.sum(axis=1).to_numpy()
    p = model.predict_proba(rows)[:, 1]
    np.testing.assert_allclose(total, np.log(p / (1 - p)) if space == "log_odds" else p, atol=1e-6)
