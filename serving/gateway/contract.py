"""What a served model accepts, learned from Triton, and the checks every request passes.

Pure code: no I/O. `ModelContract.from_triton` reads Triton's model metadata and config;
`parse_infer_request` turns the raw bytes of a KServe v2 infer request (JSON, or JSON header +
binary tensors) into validated columns, or raises `Rejected` with the HTTP status, the rule
that failed and a message naming the input. What reaches Triton is rebuilt from the parsed
columns by `encode_for_triton` (binary tensors): Triton never parses a client's bytes.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import orjson

from serving.challenger_model import CANARY_SHARE
from serving.decision import thresholds_from_parameters

NUMERIC, TEXT = "FP32", "BYTES"
SUPPORTED_DATATYPES = (NUMERIC, TEXT)
TRITON_TO_V2 = {"TYPE_FP32": NUMERIC, "TYPE_STRING": TEXT}
_MAX_NESTING = 4
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Limits:
    """What the gateway accepts beyond the model's own contract."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_string_bytes: int = 1024
    max_rows: int | None = None  # None: the model's max_batch_size


class Rejected(Exception):  # noqa: N818 - a verdict, not an error of the gateway
    """A request the gateway refuses: `status` (4xx), the `rule` it broke, and why."""

    def __init__(self, status: int, rule: str, message: str) -> None:
        super().__init__(message)
        self.status, self.rule, self.message = status, rule, message


@dataclass(frozen=True)
class InputSpec:
    """One model input: its KServe datatype and dims after the batch dimension."""

    name: str
    datatype: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ModelContract:
    """One served model as Triton describes it."""

    name: str
    versions: tuple[str, ...]
    inputs: tuple[InputSpec, ...]
    max_batch_size: int
    thresholds: Mapping[int, float] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    canary_share: float = 0.0  # a canary challenger: the share of callers it answers

    @classmethod
    def from_triton(
        cls, metadata: Mapping[str, Any], config: Mapping[str, Any], ready_versions: Sequence[str]
    ) -> ModelContract:
        """Build from `GET /v2/models/{m}`, `GET /v2/models/{m}/config` and the ready versions.

        Raises:
            ValueError: the model uses a datatype or shape the gateway cannot check.
        """
        name = str(metadata["name"])
        configured = {item["name"]: item for item in config.get("input", [])}
        inputs = []
        for item in metadata.get("inputs", []):
            datatype = item["datatype"]
            if datatype not in SUPPORTED_DATATYPES:
                raise ValueError(f"model {name}: input {item['name']} has datatype {datatype}")
            dims = configured.get(item["name"], {}).get("dims") or item["shape"][1:]
            inputs.append(InputSpec(item["name"], datatype, tuple(int(d) for d in dims)))
        return cls(
            name=name,
            versions=tuple(sorted((str(v) for v in ready_versions), key=_version_key)),
            inputs=tuple(inputs),
            max_batch_size=int(config.get("max_batch_size", 0)),
            thresholds=thresholds_from_parameters(config.get("parameters", {})),
            metadata=dict(metadata),
            canary_share=_share(config.get("parameters", {}), name),
        )

    def input(self, name: str) -> InputSpec | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, InputSpec]:
        return {spec.name: spec for spec in self.inputs}

    @cached_property
    def text_inputs(self) -> frozenset[str]:
        """The BYTES inputs (their "" is the missing marker)."""
        return frozenset(spec.name for spec in self.inputs if spec.datatype == TEXT)


def _share(parameters: Mapping[str, Any], name: str) -> float:
    raw = parameters.get(CANARY_SHARE)
    if raw is None:
        return 0.0
    text = str(raw.get("string_value") if isinstance(raw, Mapping) else raw)
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0.0 <= share <= 1.0:  # NaN too
        raise ValueError(f"model {name}: config parameter {CANARY_SHARE}={text!r} is not in [0, 1]")
    return share


def takes_inputs_of(challenger: ModelContract, champion: ModelContract) -> str | None:
    """None when `challenger` takes exactly the inputs a request validated against `champion`
    carries (same names, datatypes and dims); else the first input that differs."""
    theirs = {spec.name: spec for spec in champion.inputs}
    for spec in challenger.inputs:
        mine = theirs.get(spec.name)
        if mine is None or (mine.datatype, mine.dims) != (spec.datatype, spec.dims):
            return spec.name
    return None


_HASH_SPACE = float(2**64)


def in_share(key: str, share: float, salt: str = "") -> bool:
    """Is `key` (a request id) in `share`? Deterministic: a hash of `salt` and the key, not a
    draw, so a replay picks the same requests; a larger share keeps the ones a smaller picked.
    Different salts pick independent sets."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    digest = hashlib.blake2b(f"{salt}{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPACE < share


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


@dataclass
class ParsedRequest:
    """A validated request: one column of Python values per model input, in model order.

    Numbers are floats (NaN = missing); text is str ("" = missing, as the model expects).
    """

    columns: dict[str, list[Any]]
    rows: int
    client_id: str | None = None
    event_time: datetime | None = None  # parameters.event_time: when the rows happened
    parameters: Mapping[str, Any] = field(default_factory=dict)  # the request's, as sent


def parse_infer_request(
    body: bytes,
    contract: ModelContract,
    *,
    header_length: str | None = None,
    limits: Limits = Limits(),
) -> ParsedRequest:
    """Validate a KServe v2 infer request against `contract`.

    Args:
        body: the raw request body.
        contract: the model the request is addressed to.
        header_length: the `Inference-Header-Content-Length` header (binary extension), if any.
        limits: body, string and row limits.

    Raises:
        Rejected: the first rule the request breaks (status 400 or 413).
    """
    if len(body) > limits.max_body_bytes:
        raise Rejected(
            413, "body_size", f"body of {len(body)} bytes exceeds {limits.max_body_bytes}"
        )
    json_part, binary = _split_binary(body, header_length)
    try:
        request = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "json", f"body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise Rejected(400, "body", f"body must be a JSON object, got {type(request).__name__}")
    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise Rejected(400, "inputs", "body needs 'inputs': a non-empty list of tensors")
    client_id = request.get("id")
    if client_id is not None and not isinstance(client_id, str):
        raise Rejected(400, "id", "'id' must be a string")
    _check_requested_outputs(request.get("outputs"))
    event_time = _event_time(request.get("parameters"))

    max_rows = limits.max_rows or contract.max_batch_size or 1
    columns: dict[str, list[Any]] = {}
    rows: int | None = None
    offset = 0
    for position, tensor in enumerate(raw_inputs):
        if not isinstance(tensor, dict):
            raise Rejected(400, "inputs", f"inputs[{position}] must be an object")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise Rejected(400, "inputs", f"inputs[{position}] needs a string 'name'")
        spec = contract.input(name)
        if spec is None:
            raise Rejected(
                400, "unknown_input", f"input '{name}' is not an input of {contract.name}"
            )
        if name in columns:
            raise Rejected(400, "duplicate_input", f"input '{name}' appears more than once")
        shape = _check_shape(tensor, spec, contract)
        count = math.prod(shape)
        if shape[0] > max_rows:
            raise Rejected(
                400,
                "batch_size",
                f"input '{name}' has {shape[0]} rows; at most {max_rows} per request",
            )
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise Rejected(400, "shape", f"input '{name}' has {shape[0]} rows, others have {rows}")
        size = _binary_size(tensor, name)
        if size is None:
            values = _json_values(tensor, spec, count, limits)
        else:
            if binary is None:
                raise Rejected(
                    400,
                    "binary",
                    f"input '{name}' declares binary_data_size but the request has no "
                    "Inference-Header-Content-Length header",
                )
            if offset + size > len(binary):
                raise Rejected(
                    400,
                    "binary",
                    f"input '{name}' declares {size} binary bytes; only "
                    f"{len(binary) - offset} remain in the body",
                )
            values = _binary_values(binary[offset : offset + size], spec, count, limits)
            offset += size
        columns[name] = values
    if binary is not None and offset != len(binary):
        raise Rejected(
            400, "binary", f"{len(binary) - offset} binary bytes follow the last declared tensor"
        )
    missing = [spec.name for spec in contract.inputs if spec.name not in columns]
    if missing:
        raise Rejected(400, "missing_input", f"missing input(s) of {contract.name}: {missing}")
    ordered = {spec.name: columns[spec.name] for spec in contract.inputs}
    parameters = request.get("parameters") or {}  # an object: _event_time checked it
    return ParsedRequest(ordered, int(rows or 0), client_id, event_time, parameters)


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes | None]:
    if header_length is None:
        return body, None
    try:
        length = int(header_length)
    except ValueError:
        raise Rejected(
            400, "binary", f"Inference-Header-Content-Length {header_length!r} is not an integer"
        ) from None
    if not 0 < length <= len(body):
        raise Rejected(
            400,
            "binary",
            f"Inference-Header-Content-Length {length} is outside the body's {len(body)} bytes",
        )
    return body[:length], body[length:]


def _event_time(parameters: object) -> datetime | None:
    """`parameters.event_time` (ISO 8601; UTC when no offset), for replays and backfills."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise Rejected(400, "parameters", "'parameters' must be an object")
    text = parameters.get("event_time")
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text) if isinstance(text, str) and len(text) <= 40 else None
    except ValueError:
        when = None
    if when is None:
        raise Rejected(400, "event_time", "parameters.event_time must be an ISO 8601 time")
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if not 1970 <= when.year <= 2200:
        raise Rejected(400, "event_time", f"parameters.event_time {text} is out of range")
    return when


def _check_requested_outputs(outputs: object) -> None:
    if outputs is None:
        return
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise Rejected(400, "outputs", "'outputs' must be a list of objects with a 'name'")


def _check_shape(tensor: Mapping[str, Any], spec: InputSpec, contract: ModelContract) -> list[int]:
    name = spec.name
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        raise Rejected(
            400, "datatype", f"input '{name}' must have datatype {spec.datatype}, got {datatype!r}"
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        raise Rejected(400, "shape", f"input '{name}' needs 'shape': a list of integers")
    if any(d < 0 for d in shape):
        raise Rejected(400, "shape", f"input '{name}' has a negative dimension in {shape}")
    expected = (-1, *spec.dims) if contract.max_batch_size > 0 else spec.dims
    if len(shape) != len(expected) or any(
        want not in (-1, got) for want, got in zip(expected, shape, strict=True)
    ):
        wanted = ["n" if d == -1 else d for d in expected]
        raise Rejected(
            400, "shape", f"input '{name}' has shape {shape}; the model expects {wanted}"
        )
    if not shape or shape[0] < 1:
        raise Rejected(400, "shape", f"input '{name}' has no rows (shape {shape})")
    return shape


def _binary_size(tensor: Mapping[str, Any], name: str) -> int | None:
    parameters = tensor.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise Rejected(400, "inputs", f"input '{name}': 'parameters' must be an object")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise Rejected(400, "binary", f"input '{name}': binary_data_size must be an integer >= 0")
    if "data" in tensor:
        raise Rejected(400, "binary", f"input '{name}' has both 'data' and binary_data_size")
    return size


def _flatten(data: Any, name: str, depth: int = 0) -> list[Any]:
    """KServe v2 allows flat or nested row-major `data`; nesting is bounded."""
    if not isinstance(data, list):
        raise Rejected(400, "data", f"input '{name}' needs 'data': a list")
    if depth > _MAX_NESTING:
        raise Rejected(400, "data", f"input '{name}': 'data' is nested too deeply")
    if not any(isinstance(item, list) for item in data):
        return data
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            flat.extend(_flatten(item, name, depth + 1))
        else:
            flat.append(item)
    return flat


def _json_values(
    tensor: Mapping[str, Any], spec: InputSpec, count: int, limits: Limits
) -> list[Any]:
    name = spec.name
    values = _flatten(tensor.get("data"), name)
    if len(values) != count:
        raise Rejected(
            400, "shape", f"input '{name}' has {len(values)} values; its shape holds {count}"
        )
    if spec.datatype == NUMERIC:
        return [_number(value, name) for value in values]
    return [_text(value, name, limits) for value in values]


def _number(value: Any, name: str) -> float:
    if value is None:
        return math.nan  # JSON has no NaN: null is a missing number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(400, "datatype", f"input '{name}' is FP32; got {type(value).__name__}")
    number = float(value)
    if not abs(number) <= _FLOAT32_MAX:
        raise Rejected(400, "non_finite", f"input '{name}' has {value}, beyond float32's range")
    return number


def _text(value: Any, name: str, limits: Limits) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Rejected(400, "datatype", f"input '{name}' is BYTES; got {type(value).__name__}")
    if len(value.encode("utf-8", "surrogatepass")) > limits.max_string_bytes:
        raise Rejected(
            400,
            "string_length",
            f"input '{name}' has a string over {limits.max_string_bytes} bytes",
        )
    _check_utf8(value, name)
    return value


def _check_utf8(value: str, name: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected(400, "encoding", f"input '{name}' has a string that is not UTF-8") from None


def _binary_values(raw: bytes, spec: InputSpec, count: int, limits: Limits) -> list[Any]:
    name = spec.name
    if spec.datatype == NUMERIC:
        if len(raw) != 4 * count:
            raise Rejected(
                400, "binary", f"input '{name}': {len(raw)} bytes for {count} FP32 values"
            )
        numbers = np.frombuffer(raw, dtype="<f4")
        if np.isinf(numbers).any():
            raise Rejected(
                400, "non_finite", f"input '{name}' contains +/-inf; send NaN for missing"
            )
        return numbers.astype(float).tolist()
    values: list[Any] = []
    position = 0
    while position < len(raw):
        if position + 4 > len(raw):
            raise Rejected(400, "binary", f"input '{name}': truncated string length prefix")
        (length,) = struct.unpack_from("<I", raw, position)
        position += 4
        if length > limits.max_string_bytes:
            raise Rejected(
                400,
                "string_length",
                f"input '{name}' has a string over {limits.max_string_bytes} bytes",
            )
        if position + length > len(raw):
            raise Rejected(400, "binary", f"input '{name}': a string runs past its tensor")
        try:
            values.append(raw[position : position + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise Rejected(
                400, "encoding", f"input '{name}' has a string that is not UTF-8"
            ) from None
        position += length
        if len(values) > count:
            break
    if len(values) != count:
        raise Rejected(
            400, "shape", f"input '{name}' holds {len(values)} strings; its shape holds {count}"
        )
    return values


def encode_for_triton(
    parsed: ParsedRequest, contract: ModelContract, outputs: Sequence[str]
) -> tuple[bytes, int]:
    """The canonical request Triton receives: JSON header + binary tensors in and out.

    Returns:
        The body and the length of its JSON header (`Inference-Header-Content-Length`).
    """
    header_inputs, chunks = [], []
    batched = contract.max_batch_size > 0
    for spec in contract.inputs:
        column = parsed.columns[spec.name]
        shape = [parsed.rows, *spec.dims] if batched else list(spec.dims)
        if spec.datatype == NUMERIC:
            chunk = np.asarray(column, dtype="<f4").tobytes()
        else:
            encoded = [value.encode("utf-8") for value in column]
            chunk = b"".join(struct.pack("<I", len(item)) + item for item in encoded)
        chunks.append(chunk)
        header_inputs.append(
            {
                "name": spec.name,
                "datatype": spec.datatype,
                "shape": shape,
                "parameters": {"binary_data_size": len(chunk)},
            }
        )
    header = orjson.dumps(
        {
            "inputs": header_inputs,
            "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
        }
    )
    return header + b"".join(chunks), len(header)
