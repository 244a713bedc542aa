"""Every rule a request passes at the gateway, on the pure contract code (no server)."""

from __future__ import annotations

import math
import struct

import numpy as np
import orjson
import pytest

from serving.gateway.contract import (
    InputSpec,
    Limits,
    ModelContract,
    Rejected,
    encode_for_triton,
    parse_infer_request,
)

CONTRACT = ModelContract(
    name="m",
    versions=("1", "2"),
    inputs=(InputSpec("x", "FP32", (1,)), InputSpec("c", "BYTES", (1,))),
    max_batch_size=4,
    thresholds={1: 0.5},
)


def body(*tensors, **extra) -> bytes:
    return orjson.dumps({"inputs": list(tensors), **extra})


def tensor(name, datatype, data, shape=None) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data), 1], "data": data}


def good(n: int = 2) -> list[dict]:
    return [tensor("x", "FP32", [0.5] * n), tensor("c", "BYTES", ["a"] * n)]


def rejected(raw: bytes, *, header_length: str | None = None, limits: Limits | None = None):
    with pytest.raises(Rejected) as caught:
        parse_infer_request(raw, CONTRACT, header_length=header_length, limits=limits or Limits())
    return caught.value


def binary_request(x: list[float], c: list[str], *, x_size: int | None = None) -> tuple[bytes, str]:
    x_bytes = np.asarray(x, dtype="<f4").tobytes()
    c_bytes = b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in c)
    header = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [len(x), 1],
                 "parameters": {"binary_data_size": len(x_bytes) if x_size is None else x_size}},
                {"name": "c", "datatype": "BYTES", "shape": [len(c), 1],
                 "parameters": {"binary_data_size": len(c_bytes)}},
            ]
        }
    )  # fmt: skip
    return header + x_bytes + c_bytes, str(len(header))


def test_a_valid_json_request_gives_columns_in_model_order():
    parsed = parse_infer_request(
        body(tensor("c", "BYTES", ["a", None]), tensor("x", "FP32", [[1], [None]]), id="q1"),
        CONTRACT,
    )
    assert list(parsed.columns) == ["x", "c"] and parsed.rows == 2 and parsed.client_id == "q1"
    assert parsed.columns["x"][0] == 1.0 and math.isnan(parsed.columns["x"][1])
    assert parsed.columns["c"] == ["a", ""]  # null is the missing category


def test_a_valid_binary_request_parses_like_json():
    raw, length = binary_request([0.25, float("nan")], ["yes", ""])
    parsed = parse_infer_request(raw, CONTRACT, header_length=length)
    assert parsed.columns["x"][0] == 0.25 and math.isnan(parsed.columns["x"][1])
    assert parsed.columns["c"] == ["yes", ""]


@pytest.mark.parametrize(
    ("raw", "rule", "words"),
    [
        (b"{not json", "json", "not valid JSON"),
        (b"[1, 2]", "body", "JSON object"),
        (b"{}", "inputs", "'inputs'"),
        (orjson.dumps({"inputs": []}), "inputs", "non-empty"),
        (orjson.dumps({"inputs": ["x"]}), "inputs", "inputs[0]"),
        (body({"datatype": "FP32"}), "inputs", "string 'name'"),
        (body(*good(), tensor("z", "FP32", [1.0])), "unknown_input", "'z'"),
        (body(tensor("x", "FP32", [1.0]), tensor("x", "FP32", [1.0])), "duplicate_input", "'x'"),
        (body(tensor("x", "FP32", [1.0])), "missing_input", "['c']"),
        (body(tensor("x", "BYTES", ["1"]), good()[1]), "datatype", "'x' must have datatype FP32"),
        (body(tensor("x", "FP32", ["1"]), good(1)[1]), "datatype", "'x' is FP32"),
        (body(tensor("x", "FP32", [True]), good(1)[1]), "datatype", "'x' is FP32"),
        (body(good(1)[0], tensor("c", "BYTES", [1])), "datatype", "'c' is BYTES"),
        (body(tensor("x", "FP32", [1.0], [1, 2]), good(1)[1]), "shape", "expects ['n', 1]"),
        (body(tensor("x", "FP32", [1.0], [1]), good(1)[1]), "shape", "expects ['n', 1]"),
        (body(tensor("x", "FP32", [1.0], [-1, 1]), good(1)[1]), "shape", "negative"),
        (body(tensor("x", "FP32", [], [0, 1]), good(1)[1]), "shape", "no rows"),
        (body(tensor("x", "FP32", [1.0], [1, "1"]), good(1)[1]), "shape", "list of integers"),
        (body(tensor("x", "FP32", [1.0], [3, 1]), good(1)[1]), "shape", "1 values"),
        (body(tensor("x", "FP32", [1.0], [10**18, 1]), good(1)[1]), "batch_size", "at most 4"),
        (body(*good(5)), "batch_size", "5 rows; at most 4"),
        (body(good(2)[0], good(1)[1]), "shape", "'c' has 1 rows, others have 2"),
        (body(tensor("x", "FP32", [1e39]), good(1)[1]), "non_finite", "float32"),
        (body(good(1)[0], tensor("c", "BYTES", ["é" * 600])), "string_length", "1024 bytes"),
        (body(tensor("x", "FP32", 1.0, [1, 1]), good(1)[1]), "data", "'data': a list"),
        (body(tensor("x", "FP32", [[[[[[1.0]]]]]], [1, 1]), good(1)[1]), "data", "nested"),
        (body(*good(1), id=7), "id", "'id'"),
        (body(*good(1), outputs="all"), "outputs", "'outputs'"),
        (body(*good(1), parameters=[1]), "parameters", "'parameters'"),
        (body(*good(1), parameters={"event_time": "yesterday"}), "event_time", "ISO 8601"),
        (body(*good(1), parameters={"event_time": "1901-01-01"}), "event_time", "out of range"),
    ],
)
def test_each_broken_rule_is_a_400_naming_the_input_and_rule(raw, rule, words):
    error = rejected(raw)
    assert (error.status, error.rule) == (400, rule)
    assert words in error.message


def test_a_body_over_the_limit_is_413():
    error = rejected(body(*good()), limits=Limits(max_body_bytes=20))
    assert (error.status, error.rule) == (413, "body_size")


def test_binary_extension_rules():
    raw, length = binary_request([0.5], ["yes"])
    for header, words in (
        ("abc", "not an integer"),
        ("0", "outside"),
        (str(len(raw) + 1), "outside"),
    ):
        assert words in rejected(raw, header_length=header).message
    assert "remain in the body" in rejected(raw[:-2], header_length=length).message
    assert "follow the last" in rejected(raw + b"xx", header_length=length).message
    short, short_length = binary_request([0.5], ["yes"], x_size=3)
    assert "3 bytes for 1 FP32" in rejected(short, header_length=short_length).message
    inf, inf_length = binary_request([float("inf")], ["a"])
    assert rejected(inf, header_length=inf_length).rule == "non_finite"
    bad_utf8, bad_length = binary_request([0.5], ["a"])
    bad_utf8 = bad_utf8[:-1] + b"\xff"
    assert rejected(bad_utf8, header_length=bad_length).rule == "encoding"
    two_rows, two_length = binary_request([0.5], ["a", "b"])  # x has 1 row, c has 2
    assert rejected(two_rows, header_length=two_length).rule == "shape"
    # binary_data_size without the header, and both data and binary_data_size
    no_header = body(
        {"name": "x", "datatype": "FP32", "shape": [1, 1], "parameters": {"binary_data_size": 4}},
        good(1)[1],
    )
    assert "no Inference-Header-Content-Length" in rejected(no_header).message
    both = body({**good(1)[0], "parameters": {"binary_data_size": 4}}, good(1)[1])
    error = rejected(both + b"\0" * 4, header_length=str(len(both)))
    assert "both 'data' and binary_data_size" in error.message


def test_a_truncated_string_prefix_is_named():
    header = orjson.dumps(
        {"inputs": [good(1)[0], {"name": "c", "datatype": "BYTES", "shape": [1, 1],
                                 "parameters": {"binary_data_size": 2}}]}
    )  # fmt: skip
    error = rejected(header + b"\x01\x00", header_length=str(len(header)))
    assert error.rule == "binary" and "length prefix" in error.message


def test_the_canonical_request_round_trips_through_the_binary_parser():
    parsed = parse_infer_request(body(tensor("x", "FP32", [1.5, None]), good(2)[1]), CONTRACT)
    canonical, length = encode_for_triton(parsed, CONTRACT, ["probabilities"])
    header = orjson.loads(canonical[:length])
    assert header["outputs"] == [{"name": "probabilities", "parameters": {"binary_data": True}}]
    again = parse_infer_request(canonical, CONTRACT, header_length=str(length))
    assert again.columns["c"] == ["a", "a"] and again.columns["x"][0] == 1.5
    assert math.isnan(again.columns["x"][1])


def test_contract_from_triton_reads_dims_batch_limit_and_thresholds():
    metadata = {
        "name": "m",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
        "outputs": [],
    }
    config = {
        "max_batch_size": 8,
        "input": [{"name": "x", "dims": ["1"]}],
        "parameters": {"threshold.v3": {"string_value": "0.25"}, "other": {"string_value": "x"}},
    }
    contract = ModelContract.from_triton(metadata, config, ["3", "10"])
    assert contract.versions == ("3", "10") and contract.max_batch_size == 8
    assert contract.inputs == (InputSpec("x", "FP32", (1,)),)
    assert contract.thresholds == {3: 0.25}
    with pytest.raises(ValueError, match="datatype INT64"):
        ModelContract.from_triton(
            {"name": "m", "inputs": [{"name": "i", "datatype": "INT64", "shape": [-1, 1]}]},
            config,
            ["1"],
        )
