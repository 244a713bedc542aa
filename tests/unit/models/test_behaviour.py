"""Behavioural model tests: invariance, directional expectations, minimum functionality."""

import numpy as np
import pytest

from features.split import features_and_target, model_inputs
from models.evaluate import score

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def legit_rows(fraud_config, fraud_splits):
    test = fraud_splits[2]
    return model_inputs(test[test["is_fraud"] == 0].head(400), fraud_config).reset_index(drop=True)


def proba(model, X):
    return model.predict_proba(X)[:, 1]


def test_minimum_functionality_on_held_out_time(gbdt_model, fraud_config, fraud_splits):
    X, y = features_and_target(fraud_splits[2], fraud_config)
    assert score("roc_auc", y.to_numpy(), proba(gbdt_model, X)) > 0.8


def test_invariant_to_batch_order_and_composition(gbdt_model, legit_rows):
    full = proba(gbdt_model, legit_rows)
    shuffled = legit_rows.sample(frac=1.0, random_state=1)
    assert np.allclose(proba(gbdt_model, shuffled), full[shuffled.index])
    assert np.allclose(proba(gbdt_model, legit_rows.iloc[[7]]), full[7])


def test_unseen_category_and_missing_values_are_scored(gbdt_model, legit_rows):
    odd = legit_rows.head(20).copy()
    odd["merchant_category"] = "space_tourism"
    odd.loc[:5, "amount"] = np.nan
    p = proba(gbdt_model, odd)
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize(
    ("column", "change"),
    [
        ("amount", lambda s, rows: rows["avg_amount_30d"] * 20),
        ("is_new_device", lambda s, rows: 1),
        ("distance_from_home_km", lambda s, rows: 3000.0),
    ],
)
def test_directional_risk_signals_raise_the_score(gbdt_model, legit_rows, column, change):
    riskier = legit_rows.copy()
    riskier[column] = change(riskier[column], riskier)
    before, after = proba(gbdt_model, legit_rows), proba(gbdt_model, riskier)
    assert after.mean() > before.mean() * 1.5
    assert (after >= before - 1e-3).mean() > 0.8
