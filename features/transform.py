"""Feature transformers: fitted on the training split only, shipped inside the model."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from configs.schema import ProjectConfig
from features.split import features_and_target


def build_preprocessor(numeric: Sequence[str], categorical: Sequence[str]) -> ColumnTransformer:
    """Impute and scale numbers, impute and one-hot encode categories.

    Unseen categories at serving time encode as all zeros instead of failing, and the output
    is dense so every model family (trees, the torch MLP, the linear baseline) takes the same
    matrix. Every step has an ONNX converter, so the served model takes raw columns.
    """
    numeric_steps = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    )
    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", numeric_steps, list(numeric)),
            ("categorical", categorical_steps, list(categorical)),
        ],
        sparse_threshold=0.0,
    )


def fit_preprocessor(
    config: ProjectConfig, train: pd.DataFrame
) -> tuple[ColumnTransformer, pd.DataFrame, pd.Series]:
    """The project's preprocessing fitted on `train`, with the features and target it saw."""
    X, y = features_and_target(train, config)
    return build_preprocessor(config.numeric_features, config.categorical_features).fit(X), X, y
