"""Fixtures for the data-source, contract, expectation, split and transform tests.

Session-scoped objects are shared between test files: tests copy them before changing them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

from configs import ProjectConfig, load_config, parse_config
from features.contract import CleanResult, clean_rows
from features.fraud_data import generate_transactions

GENERATED_ROWS = 5000

MINI: dict[str, Any] = {
    "name": "mini",
    "data": {"source": "file", "path": "mini.csv"},
    "target": "label",
    "positive_label": 1,
    "id_column": "tx_id",
    "time_column": "ts",
    "numeric_features": ["amount", "age"],
    "categorical_features": ["channel"],
    "contract": {
        "min_rows": 1,
        "max_quarantine_fraction": 0.5,
        "columns": {
            "amount": {"min": 0.0, "max": 10000.0},
            "age": {"min": 18, "max": 110},
            "channel": {
                "categories": ["pos", "online", "contactless"],
                "aliases": {"tap": "contactless", "on_line": "online"},
            },
        },
    },
}


def mini_config(**overrides: Any) -> ProjectConfig:
    """The hand-built project, with top-level keys replaced."""
    return parse_config({**MINI, **overrides}, source="mini")


@pytest.fixture(scope="session")
def fraud_config() -> ProjectConfig:
    return load_config("fraud")


@pytest.fixture(scope="session")
def churn_config() -> ProjectConfig:
    return load_config("churn")


@pytest.fixture(scope="session")
def mini() -> ProjectConfig:
    return mini_config()


@pytest.fixture(scope="session")
def make_mini_config() -> Callable[..., ProjectConfig]:
    """`mini_config` itself, for tests that need a variant of the hand-built project."""
    return mini_config


@pytest.fixture
def mini_frame() -> pd.DataFrame:
    """Six clean raw rows for `mini` (a fresh copy per test), plus a column it does not use."""
    return pd.DataFrame(
        {
            "tx_id": ["t1", "t2", "t3", "t4", "t5", "t6"],
            "ts": pd.date_range("2026-01-01", periods=6, freq="h"),
            "amount": [10.0, 20.5, 0.0, 999.0, 35.25, 1.0],
            "age": [30, 45, 18, 110, 60, 25],
            "channel": ["pos", "online", "contactless", "pos", "online", "pos"],
            "label": [0, 1, 0, 0, 1, 0],
            "note": ["a", "b", "c", "d", "e", "f"],
        }
    )


@pytest.fixture(scope="session")
def fraud_raw() -> pd.DataFrame:
    """A messy generated table (do not modify: copy first)."""
    return generate_transactions(GENERATED_ROWS, seed=1)


@pytest.fixture(scope="session")
def fraud_cleaned(fraud_raw: pd.DataFrame, fraud_config: ProjectConfig) -> CleanResult:
    return clean_rows(fraud_raw, fraud_config)


@pytest.fixture(scope="session")
def churn_raw(churn_config: ProjectConfig) -> pd.DataFrame:
    from features.sources import load_raw

    return load_raw(churn_config.data)
