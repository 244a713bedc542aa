"""ONNX export of fitted pipelines: raw feature columns in, label and probabilities out.

Serving contract: one ONNX input per raw feature column, named as the column, shape [None, 1];
numeric features float32 (NaN = missing), categorical features string (``MISSING_CATEGORY``
= missing, scored exactly like sklearn's NaN; unseen categories score like sklearn's
``handle_unknown="ignore"``). Outputs: ``label`` (int64 [N]) and ``probabilities``
(float32 [N, n_classes]).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from models.families import FAMILIES, ModelFamily, family_of
from serving.decision import MISSING_CATEGORY, PROBABILITIES_OUTPUT

# Opset 17 / ai.onnx.ml 3 (IR version 8): loadable by onnxruntime releases from 1.14 on,
# including the older onnxruntime that the Triton environment pins.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
LABEL_OUTPUT = "label"


class ExportError(RuntimeError):
    """The pipeline cannot be converted to ONNX."""


class ParityError(RuntimeError):
    """ONNX probabilities differ from sklearn's by more than the tolerance."""


@dataclass(frozen=True)
class Parity:
    """Largest |sklearn - onnxruntime| positive-class probability over `rows` rows."""

    max_abs_diff: float
    rows: int
    tolerance: float
    passed: bool


def to_onnx_inputs(
    frame: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
) -> dict[str, np.ndarray]:
    """The onnxruntime / Triton feed for a frame in `model_inputs` form.

    Numeric columns become float32 [n, 1] (NaN kept); categorical columns become str
    objects [n, 1] with NaN/None mapped to ``MISSING_CATEGORY``.
    """
    feed = {
        column: frame[column].to_numpy(dtype=np.float32, na_value=np.nan).reshape(-1, 1)
        for column in numeric
    }
    for column in categorical:
        strings = frame[column].astype("string").fillna(MISSING_CATEGORY)
        feed[column] = strings.to_numpy(dtype=object).reshape(-1, 1)
    return feed


def export_onnx(
    model: Pipeline, numeric: Sequence[str], categorical: Sequence[str], *, name: str = "model"
) -> bytes:
    """Convert a fitted preprocessing + classifier pipeline to one serialized ONNX graph.

    Args:
        model: Fitted `Pipeline` whose last step is a supported classifier.
        numeric: Numeric raw columns (float32 inputs).
        categorical: Categorical raw columns (string inputs).
        name: Graph name.

    Raises:
        ExportError: If the model or its final estimator is not supported or conversion fails.
    """
    estimator, family = _final_estimator(model)
    if family.onnx_converter is not None:
        family.onnx_converter(type(estimator))
    prepared = _prepare_for_onnx(model, categorical, family)
    inputs = [(c, FloatTensorType([None, 1])) for c in numeric]
    inputs += [(c, StringTensorType([None, 1])) for c in categorical]
    try:
        onx = to_onnx(
            prepared,
            initial_types=inputs,
            target_opset=TARGET_OPSET,
            options={id(prepared.steps[-1][1]): {"zipmap": False}},
            name=name,
        )
    except Exception as exc:  # skl2onnx raises many types; all mean "not convertible"
        raise ExportError(f"ONNX conversion of {_type_name(estimator)} failed: {exc}") from exc
    _restore_input_names(onx.graph, [column for column, _ in inputs])
    return onx.SerializeToString()


def _restore_input_names(graph: onnx.GraphProto, columns: list[str]) -> None:
    """Name the graph inputs exactly as the raw columns, in place.

    skl2onnx makes names C-like ("amount usd" -> "amount_usd", "a.b" -> "a_b"); the serving
    contract names each input as its column, so callers and Triton see the column names.
    skl2onnx keeps the inputs in `initial_types` order.
    """
    renamed = {i.name: column for i, column in zip(graph.input, columns, strict=True)}
    renamed = {old: new for old, new in renamed.items() if old != new}
    if not renamed:
        return
    for value in graph.input:
        value.name = renamed.get(value.name, value.name)
    for node in graph.node:  # inputs feed nodes of the top-level graph only
        node.input[:] = [renamed.get(name, name) for name in node.input]


def check_parity(
    model: Pipeline,
    onnx_bytes: bytes,
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    tolerance: float = 1e-4,
) -> Parity:
    """Compare sklearn `predict_proba[:, 1]` with the ONNX `probabilities[:, 1]` on `frame`.

    `frame` is in `model_inputs` form (categorical NaN for missing); it is converted with
    `to_onnx_inputs` for onnxruntime. Passes when the largest difference is <= `tolerance`.
    """
    if frame.empty:
        raise ValueError("parity needs at least one row")
    expected = model.predict_proba(frame)[:, 1]
    actual = predict_onnx(onnx_bytes, to_onnx_inputs(frame, numeric, categorical))[1][:, 1]
    diff = float(np.max(np.abs(expected - actual.astype(np.float64))))
    return Parity(diff, len(frame), tolerance, passed=bool(diff <= tolerance))


def assert_parity(
    model: Pipeline,
    onnx_bytes: bytes,
    frame: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    tolerance: float = 1e-4,
) -> Parity:
    """`check_parity`, raising `ParityError` with the numbers when it fails."""
    parity = check_parity(model, onnx_bytes, frame, numeric, categorical, tolerance)
    if not parity.passed:
        raise ParityError(
            f"ONNX/sklearn parity failed: max abs diff {parity.max_abs_diff:.3g} > "
            f"tolerance {parity.tolerance:.3g} over {parity.rows} rows"
        )
    return parity


def predict_onnx(onnx_bytes: bytes, feed: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Run the graph on CPU with onnxruntime; return (label, probabilities)."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    label, probabilities = session.run([LABEL_OUTPUT, PROBABILITIES_OUTPUT], feed)
    return label, probabilities


# --- preparing the pipeline ---


def _final_estimator(model: Any) -> tuple[Any, ModelFamily]:
    """The pipeline's classifier and its family, or `ExportError` when it is not exportable."""
    if not isinstance(model, Pipeline):
        raise ExportError(f"expected a fitted sklearn Pipeline, got {_type_name(model)}")
    estimator = model.steps[-1][1]
    family = family_of(estimator)
    if family is None:
        supported = sorted({f.estimator.rpartition(".")[2] for f in FAMILIES.values()})
        raise ExportError(
            f"unsupported final estimator {_type_name(estimator)}; supported: "
            + ", ".join(supported)
        )
    return estimator, family


def _prepare_for_onnx(model: Pipeline, categorical: Sequence[str], family: ModelFamily) -> Pipeline:
    """A converter-ready copy of the preprocessing (string missing marker) and, where the
    family says so (`ModelFamily.onnx_ready`: a boosted model's float32 thresholds), of the
    final estimator; other final estimators are shared, not copied. The original model is not
    modified.

    Tree families take unscaled numbers (`ModelFamily.scaled_inputs`) and numbers carry
    float32's precision (`features.split.model_inputs`), so sklearn and the graph compare
    the same float32 values.
    """
    steps = copy.deepcopy(model.steps[:-1])
    for _, step in steps:
        if isinstance(step, ColumnTransformer):
            _mark_string_missing(step, categorical)
    name, estimator = model.steps[-1]
    if family.onnx_ready is not None:
        estimator = family.onnx_ready(estimator)
    return Pipeline([*steps, (name, estimator)])


def _mark_string_missing(preprocess: ColumnTransformer, categorical: Sequence[str]) -> None:
    """Make NaN-imputers on categorical columns treat ``MISSING_CATEGORY`` as missing.

    skl2onnx converts string imputers only for a string `missing_values`; for constant
    imputation the fitted statistics do not depend on it.
    """
    for _, transformer, columns in preprocess.transformers_:
        if not set(_as_list(columns)) <= set(categorical):
            continue
        for step in _steps_of(transformer):
            if isinstance(step, SimpleImputer) and _is_nan(step.missing_values):
                step.missing_values = MISSING_CATEGORY


def _is_nan(value: Any) -> bool:
    """True for a float NaN (sklearn's default `missing_values`)."""
    return isinstance(value, float) and math.isnan(value)


def _steps_of(transformer: Any) -> list[Any]:
    """The estimators of a pipeline, or the transformer itself."""
    if isinstance(transformer, Pipeline):
        return [step for _, step in transformer.steps]
    return [transformer]


def _as_list(columns: Any) -> list[Any]:
    """ColumnTransformer column spec as a list."""
    return [columns] if isinstance(columns, str) else list(columns)


def _type_name(obj: Any) -> str:
    """Fully qualified class name."""
    return f"{type(obj).__module__}.{type(obj).__qualname__}"
