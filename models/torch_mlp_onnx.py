"""skl2onnx converter for `TorchMLPClassifier`: plain ONNX ops from the fitted weights.

MatMul/Add/Relu per hidden layer (dropout is identity at inference), then Sigmoid (one logit)
or Softmax, and ArgMax labels; no torch at export or inference time.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from onnx import TensorProto
from skl2onnx import update_registered_converter
from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

_ALIAS = "TabularMlopsTorchMLPClassifier"


@functools.cache
def register_converter(estimator_type: type) -> None:
    """Register the converter for `estimator_type` with skl2onnx (once per type)."""
    update_registered_converter(
        estimator_type,
        _ALIAS,
        calculate_linear_classifier_output_shapes,
        _convert,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )


def _convert(scope: Any, operator: Any, container: Any) -> None:
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
