"""Feature transformers: fitted on the training split only, shipped inside the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from configs.schema import ProjectConfig
from features.split import features_and_target


def build_preprocessor(
    numeric: Sequence[str], categorical: Sequence[str], *, scaled: bool = True
) -> ColumnTransformer:
    """Impute (and with `scaled`, standardise) numbers, impute and one-hot encode categories.

    `scaled` is the model family's `scaled_inputs`: linear models and the MLP need standardised
    numbers; trees do not (a split is invariant to monotone scaling) and get them imputed
    only, so sklearn and the float32 ONNX graph compare the same float32 values with the
    same thresholds. Unseen categories at serving time encode as all zeros instead of failing,
    and the output is dense. Every step has an ONNX converter, so the served model takes raw
    columns.
    """
    number_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scaled:
        number_steps.append(("scale", StandardScaler()))
    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", Pipeline(number_steps), list(numeric)),
            ("categorical", categorical_steps, list(categorical)),
        ],
        sparse_threshold=0.0,
    )


def fit_preprocessor(
    config: ProjectConfig, train: pd.DataFrame, *, scaled: bool = True
) -> tuple[ColumnTransformer, pd.DataFrame, pd.Series]:
    """The project's preprocessing (numbers standardised or not, see `build_preprocessor`)
    fitted on `train`, with the features and target it saw."""
    X, y = features_and_target(train, config)
    preprocess = build_preprocessor(
        config.numeric_features, config.categorical_features, scaled=scaled
    )
    return preprocess.fit(X), X, y
