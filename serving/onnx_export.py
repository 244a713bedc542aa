"""ONNX export of fitted pipelines: raw feature columns in, label and probabilities out.

Serving contract: one ONNX input per raw feature column, named as the column, shape [None, 1];
numeric features float32 (NaN = missing), categorical features string (``MISSING_CATEGORY``
= missing, scored exactly like sklearn's NaN; unseen categories score like sklearn's
``handle_unknown="ignore"``). Outputs: ``label`` (int64 [N]) and ``probabilities``
(float32 [N, n_classes]).
"""

from __future__ import annotations

import copy
import functools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from onnx import TensorProto
from skl2onnx import to_onnx, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from serving.decision import MISSING_CATEGORY, PROBABILITIES_OUTPUT

# Opset 17 / ai.onnx.ml 3 (IR version 8): loadable by onnxruntime releases from 1.14 on,
# including the older onnxruntime that the Triton environment pins.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
LABEL_OUTPUT = "label"

_TORCH_MLP_MODULE = "models.torch_mlp"
_TORCH_MLP_ALIAS = "TabularMlopsTorchMLPClassifier"
_NATIVE_ESTIMATORS = (HistGradientBoostingClassifier, LogisticRegression)


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
    estimator = _final_estimator(model)
    if _is_torch_mlp(estimator):
        # mypy wrongly finds a class not Hashable (it checks the unbound object.__hash__)
        _register_torch_mlp(type(estimator))  # type: ignore[arg-type]
    prepared = _prepare_for_onnx(model, categorical)
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
    return onx.SerializeToString()


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


def _final_estimator(model: Any) -> object:
    """The pipeline's classifier, or `ExportError` when it is not exportable."""
    if not isinstance(model, Pipeline):
        raise ExportError(f"expected a fitted sklearn Pipeline, got {_type_name(model)}")
    estimator = model.steps[-1][1]
    if not (isinstance(estimator, _NATIVE_ESTIMATORS) or _is_torch_mlp(estimator)):
        raise ExportError(
            f"unsupported final estimator {_type_name(estimator)}; supported: "
            "HistGradientBoostingClassifier, LogisticRegression, TorchMLPClassifier"
        )
    return estimator


def _prepare_for_onnx(model: Pipeline, categorical: Sequence[str]) -> Pipeline:
    """A converter-ready copy: string missing marker, scaling folded into tree thresholds.

    The original model is not modified. The final estimator is copied only when its
    thresholds are rewritten.
    """
    steps = copy.deepcopy(model.steps[:-1])
    name, estimator = model.steps[-1]
    for _, step in steps:
        if isinstance(step, ColumnTransformer):
            _mark_string_missing(step, categorical)
    feeds_estimator = steps[-1][1] if steps else None
    if isinstance(estimator, HistGradientBoostingClassifier) and isinstance(
        feeds_estimator, ColumnTransformer
    ):
        estimator = _fold_scaling_into_trees(feeds_estimator, estimator)
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


def _fold_scaling_into_trees(
    preprocess: ColumnTransformer, estimator: HistGradientBoostingClassifier
) -> HistGradientBoostingClassifier:
    """Move StandardScaler into the split thresholds so trees compare raw float32 values.

    sklearn splits scaled float64 values with ``x <= threshold``; many thresholds equal a
    training value exactly (quantile midpoints of repeated values). Scaling in float32 moves
    such ties to either side at random; raw float32 values against raw-space thresholds keep
    ties on the left as sklearn does. `preprocess` (a copy) gets identity scalers.
    """
    folded = copy.deepcopy(estimator)
    for name, transformer, _ in preprocess.transformers_:
        scaler = _steps_of(transformer)[-1]
        if not isinstance(scaler, StandardScaler):
            continue
        columns = preprocess.output_indices_[name]
        scale = scaler.scale_ if scaler.scale_ is not None else np.ones(scaler.n_features_in_)
        mean = scaler.mean_ if scaler.mean_ is not None else np.zeros(scaler.n_features_in_)
        for predictors in folded._predictors:
            for predictor in predictors:
                _unscale_thresholds(predictor.nodes, columns, scale, mean)
        scaler.scale_, scaler.mean_ = np.ones_like(scale), np.zeros_like(mean)
    return folded


def _unscale_thresholds(nodes: np.ndarray, columns: slice, scale: Any, mean: Any) -> None:
    """In place: thresholds on features in `columns` from scaled to raw units."""
    feature = nodes["feature_idx"].astype(np.int64)
    split = (nodes["is_leaf"] == 0) & (feature >= columns.start) & (feature < columns.stop)
    local = feature[split] - columns.start
    scaled = nodes["num_threshold"][split]
    raw = scaled * scale[local] + mean[local]
    nodes["num_threshold"][split] = _tie_safe(raw, scaled, scale[local], mean[local])


def _tie_safe(raw: np.ndarray, scaled: np.ndarray, scale: Any, mean: Any) -> np.ndarray:
    """Float32 raw thresholds that send a tie value the way sklearn's float64 scaling did.

    A threshold often equals a training value v. When v is exactly a float32 (integers,
    round amounts), sklearn decides `(v - mean) / scale <= threshold` in float64, which
    rounding can send either way; the float32 threshold is moved one step below v when
    sklearn sent v right. Other thresholds keep the plain conversion.
    """
    as32 = raw.astype(np.float32)
    exact = np.abs(as32.astype(np.float64) - raw) <= 4 * np.spacing(np.abs(raw))
    goes_right = ((as32.astype(np.float64) - mean) / scale) > scaled
    move = exact & goes_right
    as32[move] = np.nextafter(as32[move], np.float32(-np.inf))
    return np.where(exact, as32.astype(np.float64), raw)


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


# --- TorchMLPClassifier converter ---


def _is_torch_mlp(estimator: Any) -> bool:
    """True for a TorchMLPClassifier (without importing torch when none exists)."""
    module = sys.modules.get(_TORCH_MLP_MODULE)
    return module is not None and isinstance(estimator, module.TorchMLPClassifier)


@functools.cache
def _register_torch_mlp(estimator_type: type) -> None:
    """Register the TorchMLPClassifier converter with skl2onnx (once)."""
    update_registered_converter(
        estimator_type,
        _TORCH_MLP_ALIAS,
        calculate_linear_classifier_output_shapes,
        _convert_torch_mlp,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )


def _convert_torch_mlp(scope: Any, operator: Any, container: Any) -> None:
    """Emit MatMul/Add/Relu layers, then Sigmoid (one logit) or Softmax, ArgMax labels."""
    estimator = operator.raw_operator
    layers = _linear_layers(estimator.__getstate__()["module_state_"])
    hidden = operator.inputs[0].full_name
    for index, (weight, bias) in enumerate(layers):
        hidden = _dense(scope, container, hidden, weight, bias)
        if index < len(layers) - 1:  # hidden layers: ReLU; dropout is identity at inference
            hidden = _node(scope, container, "Relu", [hidden])
    probabilities = operator.outputs[1].full_name
    if layers[-1][0].shape[0] == 1:
        positive = _node(scope, container, "Sigmoid", [hidden])
        one = _constant(scope, container, "one", np.ones((1, 1), dtype=np.float32))
        negative = _node(scope, container, "Sub", [one, positive])
        container.add_node("Concat", [negative, positive], probabilities, axis=1)
    else:
        container.add_node("Softmax", [hidden], probabilities, axis=1)
    best = _node(scope, container, "ArgMax", [probabilities], axis=1, keepdims=0)
    classes = _constant(scope, container, "classes", _class_labels(estimator.classes_))
    container.add_node("Gather", [classes, best], operator.outputs[0].full_name, axis=0)


def _linear_layers(state: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight [out, in], bias [out]) of each nn.Linear, in network order."""
    indices = sorted(int(key.split(".")[0]) for key in state if key.endswith(".weight"))
    return [(state[f"{i}.weight"], state[f"{i}.bias"]) for i in indices]


def _dense(scope: Any, container: Any, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
    """x @ weight.T + bias."""
    w = _constant(scope, container, "weight", np.ascontiguousarray(weight.T, dtype=np.float32))
    b = _constant(scope, container, "bias", bias.astype(np.float32))
    return _node(scope, container, "Add", [_node(scope, container, "MatMul", [x, w]), b])


def _class_labels(classes: np.ndarray) -> np.ndarray:
    """Classes as an int64 or string tensor, matching skl2onnx's label type."""
    if np.issubdtype(classes.dtype, np.integer) or classes.dtype == np.bool_:
        return classes.astype(np.int64)
    return classes.astype(str).astype(object)


def _constant(scope: Any, container: Any, hint: str, value: np.ndarray) -> str:
    """Add `value` as an initializer; return its name."""
    name = scope.get_unique_variable_name(hint)
    dtype = TensorProto.STRING if value.dtype == object else _onnx_dtype(value.dtype)
    flat = [s.encode() for s in value.ravel()] if value.dtype == object else value.ravel()
    container.add_initializer(name, dtype, list(value.shape), flat)
    return name


def _onnx_dtype(dtype: np.dtype) -> int:
    """ONNX element type of a float32 or int64 numpy dtype."""
    return {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}[
        np.dtype(dtype)
    ]


def _node(scope: Any, container: Any, op_type: str, inputs: list[str], **attrs: Any) -> str:
    """Add one node with a fresh output; return the output name."""
    output = scope.get_unique_variable_name(op_type.lower())
    container.add_node(
        op_type, inputs, output, name=scope.get_unique_operator_name(op_type), **attrs
    )
    return output
