"""The inference log: partitioned Parquet by day, late labels joined by id, atomic files.

The gateway's non-blocking writer is tested in tests/unit/serving/gateway/test_edge_log.py.
"""

import numpy as np
import pandas as pd
import pytest

from serving.inference_log import (
    InferenceLogError,
    label_frame,
    prediction_frame,
    read_log,
    write_labels,
    write_predictions,
)

MODEL = "m-classifier"


def predictions(n: int = 6, start: str = "2026-07-01 22:00", version: str = "3") -> pd.DataFrame:
    features = pd.DataFrame({"amount": np.arange(n, dtype=float), "channel": ["pos"] * n})
    features.loc[0, "amount"] = np.nan
    return prediction_frame(
        model=MODEL,
        version=version,
        features=features,
        scores=np.linspace(0, 1, n),
        decisions=(np.linspace(0, 1, n) > 0.5).astype(int),
        request_ids=[f"r{i}" for i in range(n)],
        timestamps=pd.date_range(start, periods=n, freq="1h"),
    )


def test_rows_are_partitioned_by_day_and_labels_join_by_id(tmp_path):
    write_predictions(tmp_path, MODEL, predictions())
    days = sorted(p.name for p in (tmp_path / MODEL / "predictions").iterdir())
    assert days == ["date=2026-07-01", "date=2026-07-02"]
    write_labels(tmp_path, MODEL, label_frame(["r1", "r2"], [0, 1]))
    write_labels(tmp_path, MODEL, label_frame(["r2"], [0]))  # a correction: latest label wins
    log = read_log(tmp_path, MODEL)
    assert list(log["request_id"]) == [f"r{i}" for i in range(6)]
    assert log.set_index("request_id")["label"].to_dict() == pytest.approx(
        {"r0": np.nan, "r1": 0, "r2": 0, "r3": np.nan, "r4": np.nan, "r5": np.nan}, nan_ok=True
    )
    assert np.isnan(log.loc[0, "amount"]) and log["model_version"].eq("3").all()


def test_read_log_range_reads_only_what_it_needs(tmp_path):
    write_predictions(tmp_path, MODEL, predictions())
    part = read_log(tmp_path, MODEL, start=pd.Timestamp("2026-07-02 00:00"))
    assert list(part["request_id"]) == ["r2", "r3", "r4", "r5"]
    assert read_log(tmp_path, "other-model").empty


def test_no_half_written_files_are_visible(tmp_path):
    write_predictions(tmp_path, MODEL, predictions())
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert names and all(n.startswith("part-") and n.endswith(".parquet") for n in names)


def test_malformed_records_are_refused_with_the_reason():
    with pytest.raises(InferenceLogError, match=r"clash with log columns"):
        prediction_frame(model=MODEL, version="1", features=pd.DataFrame({"score": [1.0]}),
                         scores=[0.1], decisions=[0])  # fmt: skip
    with pytest.raises(InferenceLogError, match="2 rows but 1 ids"):
        prediction_frame(model=MODEL, version="1", features=pd.DataFrame({"a": [1.0, 2.0]}),
                         scores=[0.1, 0.2], decisions=[0, 0], request_ids=["x"])  # fmt: skip
    with pytest.raises(InferenceLogError, match="labels must be 0 or 1"):
        label_frame(["a"], [2])
    with pytest.raises(InferenceLogError, match="1 request ids but 2 labels"):
        label_frame(["a"], [0, 1])


def test_defaults_are_fresh_ids_and_now():
    frame = prediction_frame(model=MODEL, version="1", features=pd.DataFrame({"a": [1.0, 2.0]}),
                             scores=[0.1, 0.9], decisions=[0, 1])  # fmt: skip
    assert frame["request_id"].is_unique
    assert (pd.Timestamp.now(tz="UTC") - frame["timestamp"].max()) < pd.Timedelta(minutes=1)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_rows_land_on_their_day_whatever_the_timestamps_unit(tmp_path, unit):
    arrived = pd.Timestamp("2026-07-04 23:59:59", tz="UTC").as_unit(unit)
    write_labels(tmp_path, MODEL, label_frame(["r1"], [1], arrived))
    assert [p.name for p in (tmp_path / MODEL / "labels").iterdir()] == ["date=2026-07-04"]


def test_written_since_reads_only_files_written_from_then_on(tmp_path):
    import os

    write_predictions(tmp_path, MODEL, predictions())
    write_labels(tmp_path, MODEL, label_frame(["r1"], [1]))
    old = pd.Timestamp("2026-07-05", tz="UTC").timestamp()
    for path in (tmp_path / MODEL).rglob("part-*.parquet"):
        os.utime(path, (old, old))
    write_predictions(tmp_path, MODEL, predictions(2, start="2026-07-01 01:00").assign(
        request_id=["n0", "n1"]))  # fmt: skip
    write_labels(tmp_path, MODEL, label_frame(["n1", "r2"], [1, 0]))
    since = pd.Timestamp("2026-07-06", tz="UTC")
    recent = read_log(tmp_path, MODEL, written_since=since)
    assert recent.set_index("request_id")["label"].to_dict() == pytest.approx(
        {"n0": np.nan, "n1": 1.0}, nan_ok=True
    )
    assert len(read_log(tmp_path, MODEL)) == 8  # everything, without it
