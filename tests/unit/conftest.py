"""Small, real training data and fitted models shared by the model tests."""

from __future__ import annotations

import pytest
from sklearn.pipeline import Pipeline

from configs import load_config
from features.contract import clean_rows
from features.fraud_data import generate_transactions
from features.split import features_and_target, split_data
from features.transform import build_preprocessor
from models.families import FAMILIES, build_estimator

# Small-data settings: shallow trees and a slow learning rate keep ~200 positives from overfitting.
GBDT_PARAMS = {"max_iter": 150, "learning_rate": 0.05, "min_samples_leaf": 40, "max_leaf_nodes": 15}


@pytest.fixture(scope="session")
def fraud_config():
    return load_config("fraud")


@pytest.fixture(scope="session")
def fraud_splits(fraud_config):
    raw = generate_transactions(20_000, seed=3, messy=False)
    return split_data(clean_rows(raw, fraud_config).clean, fraud_config)


def fit_pipeline(config, train, family, params=None):
    X, y = features_and_target(train, config)
    model = Pipeline(
        [
            (
                "preprocess",
                build_preprocessor(
                    config.numeric_features,
                    config.categorical_features,
                    scaled=FAMILIES[family].scaled_inputs,
                ),
            ),
            ("model", build_estimator(family, params or {}, seed=0)),
        ]
    )
    return model.fit(X, y)


@pytest.fixture(scope="session")
def gbdt_model(fraud_config, fraud_splits):
    return fit_pipeline(fraud_config, fraud_splits[0], "gbdt", GBDT_PARAMS)


@pytest.fixture(scope="session")
def baseline_model(fraud_config, fraud_splits):
    return fit_pipeline(fraud_config, fraud_splits[0], "baseline")
