"""Fitted fraud pipelines of every family and their ONNX exports, shared by the serving tests."""

from __future__ import annotations

import pytest

from configs import load_config
from features.contract import clean_rows
from features.fraud_data import generate_transactions
from features.split import model_inputs, split_data
from serving.onnx_export import export_onnx
from tests.unit.models.conftest import GBDT_PARAMS, fit_pipeline

FAMILY_PARAMS = {"gbdt": GBDT_PARAMS, "baseline": None, "mlp": {"max_epochs": 5}}


@pytest.fixture(scope="session")
def serving_config():
    return load_config("fraud")


@pytest.fixture(scope="session")
def serving_splits(serving_config):
    raw = generate_transactions(20_000, seed=3, messy=False)
    return split_data(clean_rows(raw, serving_config).clean, serving_config)


@pytest.fixture(scope="session")
def columns(serving_config):
    """(numeric, categorical) raw feature columns."""
    return list(serving_config.numeric_features), list(serving_config.categorical_features)


@pytest.fixture(scope="session")
def held_out(serving_config, serving_splits):
    """The 3,000 test-split rows in model_inputs form."""
    return model_inputs(serving_splits[2], serving_config)


@pytest.fixture(scope="session")
def pipelines(serving_config, serving_splits):
    train = serving_splits[0]
    return {
        family: fit_pipeline(serving_config, train, family, params)
        for family, params in FAMILY_PARAMS.items()
    }


@pytest.fixture(scope="session")
def exported(pipelines, columns):
    return {family: export_onnx(model, *columns) for family, model in pipelines.items()}
