"""Triton Python-backend model: serves the `model.onnx` of its version directory with onnxruntime.

This file runs inside Triton's Python backend stub (the `.venv-triton` environment: numpy<2,
onnxruntime), never in the training venv. `serving.model_repository.write_version` copies it
next to `model.onnx` in every version directory.

Contract (see `serving.model_repository.triton_config`):
- one input per ONNX graph input, named like it; numeric inputs TYPE_FP32 dims [1], categorical
  inputs TYPE_STRING dims [1] (bytes, decoded to str for onnxruntime; "" is the missing marker);
- every ONNX output is returned under its own name, reshaped to the configured dims
  (`label` comes out of the graph as [N] and is returned as [N, 1]).

Requests gathered by dynamic batching are fused into one onnxruntime call; when that call
fails, each request is run alone so that one bad request only fails itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_ONNX_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


class RequestError(ValueError):
    """A problem with one request's inputs (answered as INVALID_ARG for that request only)."""


def _error(message: str, *, invalid_arg: bool) -> pb_utils.TritonError:
    code_name = "INVALID_ARG" if invalid_arg else "INTERNAL"
    code = getattr(pb_utils.TritonError, code_name, None)
    if code is None:  # older python backends: message only
        return pb_utils.TritonError(message)
    return pb_utils.TritonError(message, code)


def _decode_strings(values: np.ndarray, name: str) -> np.ndarray:
    """Triton hands TYPE_STRING tensors over as object arrays of bytes; onnxruntime wants str."""
    flat = values.reshape(-1)
    decoded = np.empty(flat.shape, dtype=object)
    for i, value in enumerate(flat):
        if isinstance(value, bytes):
            try:
                decoded[i] = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RequestError(f"input '{name}' row {i}: not valid UTF-8 ({exc})") from exc
        elif isinstance(value, str):
            decoded[i] = value
        else:
            raise RequestError(f"input '{name}': expected strings, got {type(value).__name__}")
    return decoded.reshape(values.shape)


class TritonPythonModel:
    """Triton's entry point for the Python backend (one object per model instance)."""

    def initialize(self, args: dict) -> None:
        """Load `model.onnx` from this version's directory and match it against the config."""
        if int(np.__version__.split(".")[0]) >= 2:
            # This python backend silently returns empty outputs with numpy 2.
            raise pb_utils.TritonModelException(
                f"numpy {np.__version__} ({np.__file__}) in the Triton python backend: it needs "
                "numpy<2; run serving/triton/setup_env.sh and start Triton with serving.launcher"
            )
        version_dir = Path(args["model_repository"]) / args["model_version"]
        model_path = version_dir / "model.onnx"
        config = json.loads(args["model_config"])

        options = ort.SessionOptions()
        # One thread per instance: Triton scales with instances and batching, not intra-op
        # threads, and the stub shares the CPU with the server's own threads.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )

        configured_inputs = {item["name"]: item for item in config.get("input", [])}
        self.inputs = []  # (name, numpy dtype, onnx rank)
        for node in self.session.get_inputs():
            if node.type not in _ONNX_TO_NUMPY:
                raise pb_utils.TritonModelException(
                    f"{model_path}: input '{node.name}' has unsupported type {node.type}"
                )
            if node.name not in configured_inputs:
                raise pb_utils.TritonModelException(
                    f"{model_path}: ONNX input '{node.name}' is missing from config.pbtxt"
                )
            self.inputs.append((node.name, _ONNX_TO_NUMPY[node.type], len(node.shape)))

        configured_outputs = {item["name"]: item for item in config.get("output", [])}
        batched = int(config.get("max_batch_size", 0)) > 0
        self.outputs = []  # (name, numpy dtype, dims without batch)
        for node in self.session.get_outputs():
            item = configured_outputs.get(node.name)
            if item is None:
                raise pb_utils.TritonModelException(
                    f"{model_path}: ONNX output '{node.name}' is missing from config.pbtxt"
                )
            dtype = pb_utils.triton_string_to_numpy(item["data_type"])
            dims = tuple(int(d) for d in item["dims"])
            if not batched:  # without batching the configured dims include the row dimension
                dims = dims[1:]
            self.outputs.append((node.name, dtype, dims))
        self.output_names = [name for name, _, _ in self.outputs]

    # -- one request -------------------------------------------------------------------------

    def _read_request(self, request) -> tuple[dict[str, np.ndarray], int]:
        """The request's inputs as onnxruntime feeds, and its number of rows."""
        feeds: dict[str, np.ndarray] = {}
        rows = None
        # One pass over the request's tensors: pb_utils.get_input_tensor_by_name scans them all
        # on every call, quadratic in the inputs (70 ms a row on a 400-column table).
        tensors = {tensor.name(): tensor for tensor in request.inputs()}
        for name, dtype, rank in self.inputs:
            tensor = tensors.get(name)
            if tensor is None:
                raise RequestError(f"missing input '{name}'")
            values = tensor.as_numpy()
            if values.ndim == 0:
                raise RequestError(f"input '{name}' has no batch dimension")
            if rows is None:
                rows = values.shape[0]
            elif values.shape[0] != rows:
                raise RequestError(
                    f"input '{name}' has {values.shape[0]} rows, other inputs have {rows}"
                )
            if dtype is np.object_:
                values = _decode_strings(values, name)
            elif values.dtype == np.object_:
                raise RequestError(f"input '{name}' must be numeric, got strings")
            else:
                values = values.astype(dtype, copy=False)
                if np.issubdtype(values.dtype, np.floating) and np.isinf(values).any():
                    # NaN means "missing" and is scored; an infinity is never a real value.
                    raise RequestError(f"input '{name}' contains +/-inf; send NaN for missing")
            if values.ndim != rank:
                # An ONNX input of shape [N] sits behind config dims [1] (and vice versa).
                if rank == 1 and values.shape == (rows, 1):
                    values = values.reshape(rows)
                elif rank == 2 and values.ndim == 1:
                    values = values.reshape(rows, 1)
                else:
                    raise RequestError(
                        f"input '{name}' has shape {values.shape}, the model expects rank {rank}"
                    )
            feeds[name] = values
        return feeds, int(rows or 0)

    def _respond(self, results: list[np.ndarray], start: int, stop: int):
        tensors = []
        try:
            for (name, dtype, dims), result in zip(self.outputs, results, strict=True):
                part = np.asarray(result[start:stop]).astype(dtype, copy=False)
                tensors.append(pb_utils.Tensor(name, part.reshape((stop - start,) + dims)))
        except Exception as exc:  # noqa: BLE001 - e.g. a graph whose output disagrees with dims
            return pb_utils.InferenceResponse(
                output_tensors=[], error=_error(f"bad model output: {exc}", invalid_arg=False)
            )
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _run_alone(self, feeds: dict[str, np.ndarray], rows: int):
        try:
            results = self.session.run(self.output_names, feeds)
            return self._respond(results, 0, rows)
        except Exception as exc:  # noqa: BLE001 - any failure answers this request only
            return pb_utils.InferenceResponse(
                output_tensors=[], error=_error(f"inference failed: {exc}", invalid_arg=True)
            )

    # -- a batch of requests ------------------------------------------------------------------

    def execute(self, requests: list) -> list:
        """Answer every request; errors stay with the request that caused them."""
        responses: list = [None] * len(requests)
        good: list[tuple[int, dict[str, np.ndarray], int]] = []
        for index, request in enumerate(requests):
            try:
                feeds, rows = self._read_request(request)
            except RequestError as exc:
                responses[index] = pb_utils.InferenceResponse(
                    output_tensors=[], error=_error(str(exc), invalid_arg=True)
                )
                continue
            except Exception as exc:  # noqa: BLE001
                responses[index] = pb_utils.InferenceResponse(
                    output_tensors=[], error=_error(f"bad request: {exc}", invalid_arg=True)
                )
                continue
            good.append((index, feeds, rows))

        if len(good) == 1:
            index, feeds, rows = good[0]
            responses[index] = self._run_alone(feeds, rows)
        elif good:
            fused = {
                name: np.concatenate([feeds[name] for _, feeds, _ in good], axis=0)
                for name, _, _ in self.inputs
            }
            try:
                results = self.session.run(self.output_names, fused)
            except Exception:  # noqa: BLE001 - isolate the culprit by running each alone
                for index, feeds, rows in good:
                    responses[index] = self._run_alone(feeds, rows)
            else:
                start = 0
                for index, _, rows in good:
                    responses[index] = self._respond(results, start, start + rows)
                    start += rows
        return responses

    def finalize(self) -> None:
        """Release the onnxruntime session."""
        self.session = None
