"""The Python-backend model (serving/triton/model.py) with a real ONNX graph and onnxruntime.

Triton's `triton_python_backend_utils` exists only inside Triton's stub, so a fake of it
(`FakeBackendUtils`, named as such) stands in for the few calls the model makes; the graph,
the onnxruntime session and the model's own code are real. Triton itself serves this file in
the integration tests.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from serving.model_repository import graph_inputs, python_model_source
from serving.onnx_export import predict_onnx, to_onnx_inputs

_NUMPY = {"TYPE_FP32": np.float32, "TYPE_INT64": np.int64, "TYPE_STRING": np.object_}


class FakeBackendUtils:
    """A fake of `triton_python_backend_utils`: only what serving/triton/model.py calls."""

    class TritonError:
        INVALID_ARG = "INVALID_ARG"
        INTERNAL = "INTERNAL"

        def __init__(self, message: str, code: str | None = None) -> None:
            self.message, self.code = message, code

    class TritonModelException(Exception):
        pass

    class Tensor:
        def __init__(self, name: str, values: np.ndarray) -> None:
            self._name, self._values = name, values

        def name(self) -> str:
            return self._name

        def as_numpy(self) -> np.ndarray:
            return self._values

    class InferenceResponse:
        def __init__(self, output_tensors: list, error: object = None) -> None:
            self.output_tensors, self.error = output_tensors, error

    @staticmethod
    def triton_string_to_numpy(name: str) -> type:
        return _NUMPY[name]


class FakeRequest:
    """A request of named tensors that counts how often its tensors are listed."""

    def __init__(self, feeds: dict[str, np.ndarray]) -> None:
        self._tensors = [FakeBackendUtils.Tensor(name, values) for name, values in feeds.items()]
        self.listings = 0

    def inputs(self) -> list:
        self.listings += 1
        return list(self._tensors)


@pytest.fixture
def served(monkeypatch, tmp_path, pipelines, columns):
    """(TritonPythonModel initialised on the baseline's ONNX, the ONNX bytes)."""
    from serving.onnx_export import export_onnx

    onnx_bytes = export_onnx(pipelines["baseline"], *columns)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", FakeBackendUtils)
    spec = importlib.util.spec_from_file_location("triton_model_under_test", python_model_source())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.onnx").write_bytes(onnx_bytes)
    config = {
        "max_batch_size": 1024,
        "input": [
            {"name": name, "data_type": dtype, "dims": [str(d) for d in dims]}
            for name, dtype, dims in graph_inputs(onnx_bytes)
        ],
        "output": [
            {"name": "label", "data_type": "TYPE_INT64", "dims": ["1"]},
            {"name": "probabilities", "data_type": "TYPE_FP32", "dims": ["2"]},
        ],
    }
    model = module.TritonPythonModel()
    with monkeypatch.context() as patch:
        # The numpy<2 guard is for Triton's stub (.venv-triton); this process has numpy 2.
        patch.setattr(np, "__version__", "1.26.4")
        args = {"model_repository": str(tmp_path), "model_version": "1"}
        model.initialize(args | {"model_config": json.dumps(config)})
    return model, onnx_bytes


def _triton_feeds(frame, columns) -> dict[str, np.ndarray]:
    """Feeds as Triton hands them over: strings as UTF-8 bytes."""
    feeds = to_onnx_inputs(frame, *columns)
    for name in columns[1]:
        feeds[name] = np.vectorize(lambda s: s.encode(), otypes=[object])(feeds[name])
    return feeds


def _output(response, name: str) -> np.ndarray:
    return next(t.as_numpy() for t in response.output_tensors if t.name() == name)


def test_a_request_is_read_in_one_pass_over_its_tensors(served, held_out, columns):
    model, onnx_bytes = served
    rows = held_out.head(3)
    request = FakeRequest(_triton_feeds(rows, columns))

    (response,) = model.execute([request])

    assert response.error is None
    assert request.listings == 1  # not once per input: quadratic on wide tables
    _, expected = predict_onnx(onnx_bytes, to_onnx_inputs(rows, *columns))
    np.testing.assert_allclose(_output(response, "probabilities"), expected, rtol=1e-6)
    assert _output(response, "label").shape == (3, 1)


def test_a_bad_request_fails_alone_and_names_its_input(served, held_out, columns):
    model, onnx_bytes = served
    good = _triton_feeds(held_out.head(2), columns)
    missing = dict(good)
    dropped = columns[0][0]
    del missing[dropped]
    infinite = {**good, dropped: np.full((2, 1), np.inf, dtype=np.float32)}

    responses = model.execute([FakeRequest(missing), FakeRequest(good), FakeRequest(infinite)])

    assert responses[0].error.code == "INVALID_ARG"
    assert f"missing input '{dropped}'" in responses[0].error.message
    assert responses[1].error is None
    _, expected = predict_onnx(onnx_bytes, to_onnx_inputs(held_out.head(2), *columns))
    np.testing.assert_allclose(_output(responses[1], "probabilities"), expected, rtol=1e-6)
    assert responses[2].error.code == "INVALID_ARG"
    assert f"input '{dropped}' contains +/-inf" in responses[2].error.message


def test_fused_requests_are_answered_row_for_row(served, held_out, columns):
    model, onnx_bytes = served
    parts = [held_out.iloc[0:1], held_out.iloc[1:4], held_out.iloc[4:6]]

    responses = model.execute([FakeRequest(_triton_feeds(part, columns)) for part in parts])

    for part, response in zip(parts, responses, strict=True):
        _, expected = predict_onnx(onnx_bytes, to_onnx_inputs(part, *columns))
        np.testing.assert_allclose(_output(response, "probabilities"), expected, rtol=1e-6)


def test_the_model_file_is_the_one_versions_are_given():
    assert python_model_source() == Path(__file__).resolve().parents[3] / "serving/triton/model.py"
