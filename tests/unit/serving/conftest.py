"""Fitted fraud pipelines of every family and their ONNX exports, shared by the serving tests."""

from __future__ import annotations

import pytest

from features.split import model_inputs
from serving.onnx_export import export_onnx
from tests.unit.conftest import GBDT_PARAMS, fit_pipeline

FAMILY_PARAMS = {
    "gbdt": GBDT_PARAMS,
    "baseline": None,
    "mlp": {"max_epochs": 5},
    "extra_trees": {"n_estimators": 50, "max_leaf_nodes": 256, "min_samples_leaf": 2},
    "random_forest": {"n_estimators": 50, "max_leaf_nodes": 256, "min_samples_leaf": 2},
}


@pytest.fixture(scope="session")
def columns(fraud_config):
    """(numeric, categorical) raw feature columns."""
    return list(fraud_config.numeric_features), list(fraud_config.categorical_features)


@pytest.fixture(scope="session")
def held_out(fraud_config, fraud_splits):
    """The 3,000 test-split rows in model_inputs form."""
    return model_inputs(fraud_splits[2], fraud_config)


@pytest.fixture(scope="session")
def pipelines(fraud_config, fraud_splits):
    train = fraud_splits[0]
    return {
        family: fit_pipeline(fraud_config, train, family, params)
        for family, params in FAMILY_PARAMS.items()
    }


@pytest.fixture(scope="session")
def exported(pipelines, columns):
    return {family: export_onnx(model, *columns) for family, model in pipelines.items()}
