"""Train / validation / test split: by time when the project has a time column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from configs.schema import ProjectConfig
from features.timestamps import parse_times


def split_data(
    frame: pd.DataFrame, config: ProjectConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split a clean table into train, validation and test.

    With a time column the earliest rows train and the latest test (no look-ahead; times read
    by `features.timestamps.parse_times`); without one the split is random, stratified by the
    target and seeded, and with `split.group_column` it keeps each group's rows together
    (`_grouped_split`).
    """
    valid_n = round(len(frame) * config.split.valid_fraction)
    test_n = round(len(frame) * config.split.test_fraction)
    if config.time_column:
        column, unit = config.time_column, config.time_unit
        ordered = frame.sort_values(
            column, kind="stable", key=lambda values: parse_times(values, column, unit)
        ).reset_index(drop=True)
        valid_end = len(ordered) - test_n  # not iloc[-test_n:]: with test_n == 0 that is all rows
        train_end = valid_end - valid_n
        train, valid = ordered.iloc[:train_end], ordered.iloc[train_end:valid_end]
        parts = train, valid, ordered.iloc[valid_end:]
    elif config.split.group_column:
        parts = _grouped_split(frame, config)
    else:
        # Imported here: every step reads `model_inputs`, only a split without time needs it.
        from sklearn.model_selection import train_test_split

        seed, target = config.split.seed, frame[config.target]
        rest, test = train_test_split(frame, test_size=test_n, random_state=seed, stratify=target)
        train, valid = train_test_split(
            rest, test_size=valid_n, random_state=seed, stratify=rest[config.target]
        )
        parts = train, valid, test
    return tuple(p.reset_index(drop=True) for p in parts)  # type: ignore[return-value]


def group_keys(frame: pd.DataFrame, config: ProjectConfig) -> np.ndarray | None:
    """Each row's group under `split.group_column` (a missing value: a group of its own), or
    None when the project has no group column."""
    column = config.split.group_column
    if column is None:
        return None
    values = frame[column]
    own = pd.Series([f"\0row-{i}" for i in range(len(frame))], index=frame.index)
    return values.astype(str).where(values.notna(), own).to_numpy()


def stratified_folds(k: int, seed: int, grouped: bool) -> Any:
    """Stratified, shuffled, seeded `k`-fold; with `grouped`, a group's rows stay in one fold
    (pass the groups to `split`). The split, the tuning CV and bench-quality's reference share it.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    kind = StratifiedGroupKFold if grouped else StratifiedKFold
    return kind(n_splits=k, shuffle=True, random_state=seed)


def _grouped_split(
    frame: pd.DataFrame, config: ProjectConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Test, then validation, as one fold each of a stratified group k-fold (seeded): no group
    spans two parts, and each part's size is its fraction as near as whole folds allow."""

    def carve(part: pd.DataFrame, fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        folds = max(2, round(1 / fraction))
        keys = group_keys(part, config)
        groups = len(set(keys))  # type: ignore[arg-type]
        if groups < 2 * folds:
            raise ValueError(
                f"split.group_column '{config.split.group_column}' leaves {groups} groups; a "
                f"grouped split into these fractions needs at least {2 * folds}"
            )
        splitter = stratified_folds(folds, config.split.seed, grouped=True)
        keep, held = next(splitter.split(part, part[config.target], keys))
        return part.iloc[keep], part.iloc[held]

    rest, test = carve(frame, config.split.test_fraction)
    train, valid = carve(rest, config.split.valid_fraction / (1 - config.split.test_fraction))
    return train, valid, test


def model_inputs(frame: pd.DataFrame, config: ProjectConfig) -> pd.DataFrame:
    """The project's raw feature columns in config order, as a model reads them
    (`input_frame`)."""
    return input_frame(frame, config.features, config.categorical_features)


def input_frame(
    frame: pd.DataFrame, features: Sequence[str], categorical: Sequence[str]
) -> pd.DataFrame:
    """`features` of `frame`, in that order: categories (`categorical`) as objects with NaN for
    missing (Parquet and the inference log hand back None, which sklearn's imputer does not
    treat as missing), every other feature a number at float32's precision.

    float32, as the served model reads them (its ONNX inputs are float32): a model fitted on
    more would split between two values Triton cannot tell apart (amounts in cents near 1e9:
    a gradient-boosting model's probabilities moved by up to 0.65 between sklearn and ONNX on
    8% of rows).
    """
    columns: dict[str, pd.Series] = {}
    for column in features:
        if column in categorical:
            values = frame[column].astype(object)
            columns[column] = values.where(values.notna(), np.nan)
        else:
            numbers = pd.to_numeric(frame[column], errors="coerce")
            columns[column] = numbers.astype(np.float32).astype(float)
    return pd.DataFrame(columns, index=frame.index)


def features_and_target(
    frame: pd.DataFrame, config: ProjectConfig
) -> tuple[pd.DataFrame, pd.Series]:
    """The model inputs and the 0/1 target."""
    return model_inputs(frame, config), frame[config.target].astype(int)
