"""Shadow traffic at the edge: which requests are mirrored, and where shadow rows are logged."""

from __future__ import annotations

import pandas as pd

from serving.challenger_model import challenger_model_name, is_challenger_model
from serving.gateway.contract import InputSpec, ModelContract, in_share, takes_inputs_of
from serving.gateway.edge_log import EdgeLog, LogRecord, shadow_table
from serving.gateway.metrics import GatewayMetrics
from serving.inference_log import SHADOW_OF, TRAFFIC, read_log, read_shadow

NOW = pd.Timestamp("2026-07-01 12:00", tz="UTC").timestamp()


def test_the_mirrored_share_is_a_reproducible_function_of_the_request_id():
    ids = [f"req-{i}" for i in range(20_000)]
    chosen = [i for i in ids if in_share(i, 0.1)]
    assert chosen == [i for i in ids if in_share(i, 0.1)]  # the same ids on every replay
    assert 0.09 < len(chosen) / len(ids) < 0.11
    assert set(chosen) <= {i for i in ids if in_share(i, 0.3)}  # a larger share keeps them
    assert not any(in_share(i, 0.0) for i in ids[:100])
    assert all(in_share(i, 1.0) for i in ids[:100])


def test_shadow_model_names():
    assert challenger_model_name("fraud-classifier", "shadow") == "fraud-classifier__shadow"
    assert is_challenger_model("fraud-classifier__shadow", "shadow")
    assert is_challenger_model("fraud-classifier__canary")
    assert not is_challenger_model("fraud-classifier__canary", "shadow")
    assert not is_challenger_model("fraud-classifier")


def _record(request_id: str, rows: int, shadow_of: str | None, score: float) -> LogRecord:
    return LogRecord(
        request_id=request_id, timestamp=NOW, received=NOW, model="m",
        version="3" if shadow_of is None else "4",
        columns={"x": [1.0] * rows} if shadow_of is None else {},
        text_inputs=frozenset(), scores=[score] * rows, decisions=[1] * rows, latency_ms=1.0,
        caller="app", shadow_of=shadow_of,
    )  # fmt: skip


def test_shadow_rows_go_to_their_own_folder_and_never_read_as_served(tmp_path):
    log = EdgeLog(tmp_path, GatewayMetrics())
    log.offer(_record("a", 2, None, 0.7))
    log.offer(_record("a", 2, "3", 0.2))
    log.offer(_record("b", 1, None, 0.6))
    log.flush()
    served = read_log(tmp_path, "m")
    assert sorted(served["request_id"]) == ["a.0", "a.1", "b"]
    assert set(served["model_version"]) == {"3"} and (served["score"] == [0.7, 0.7, 0.6]).all()
    shadow = read_shadow(tmp_path, "m")
    assert shadow["request_id"].tolist() == ["a.0", "a.1"]  # the served rows' ids
    assert set(shadow["model_version"]) == {"4"} and set(shadow[SHADOW_OF]) == {"3"}
    assert set(shadow[TRAFFIC]) == {"shadow"} and "x" not in shadow  # features: served rows
    assert (tmp_path / "m" / "shadow").is_dir() and (tmp_path / "m" / "predictions").is_dir()


def test_shadow_table_columns():
    table = shadow_table([_record("r", 3, "7", 0.4)])
    assert table.num_rows == 3 and table.column(SHADOW_OF).to_pylist() == ["7"] * 3


def _contract(*inputs: tuple[str, str]) -> ModelContract:
    specs = tuple(InputSpec(name, datatype, (1,)) for name, datatype in inputs)
    return ModelContract("m", ("1",), specs, 64)


def test_a_challenger_must_take_the_inputs_the_request_was_validated_for():
    champion = _contract(("x", "FP32"), ("c", "BYTES"))
    assert takes_inputs_of(_contract(("x", "FP32")), champion) is None  # a subset is sent
    assert takes_inputs_of(_contract(("z", "FP32")), champion) == "z"
    assert takes_inputs_of(_contract(("x", "BYTES")), champion) == "x"


def test_salted_shares_pick_independent_requests():
    ids = [f"req-{i}" for i in range(4000)]
    plain = {i for i in ids if in_share(i, 0.25)}
    salted = {i for i in ids if in_share(i, 0.25, salt="canary")}
    assert 800 < len(plain) < 1200 and 800 < len(salted) < 1200
    assert 150 < len(plain & salted) < 350  # about 0.25 * 0.25 of them, not all
