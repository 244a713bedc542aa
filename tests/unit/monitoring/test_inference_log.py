"""The inference log: partitioned Parquet, late labels, and a writer that never fails a caller."""

import logging
import time

import numpy as np
import pandas as pd
import pytest

from monitoring.inference_log import (
    InferenceLogError,
    InferenceLogger,
    label_frame,
    prediction_frame,
    read_log,
    write_labels,
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
    logger = InferenceLogger(tmp_path, flush_interval_s=0.05)
    logger.log(predictions())
    stats = logger.close()
    assert (stats.logged, stats.written, stats.pending) == (6, 6, 0)
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
    logger = InferenceLogger(tmp_path, flush_interval_s=0.05)
    logger.log(predictions())
    logger.close()
    part = read_log(tmp_path, MODEL, start=pd.Timestamp("2026-07-02 00:00"))
    assert list(part["request_id"]) == ["r2", "r3", "r4", "r5"]
    assert read_log(tmp_path, "other-model").empty


def test_a_bad_path_is_reported_and_retried_not_dropped(tmp_path, caplog):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the log folder should be")
    logger = InferenceLogger(blocked, flush_interval_s=0.05)
    with caplog.at_level(logging.ERROR, logger="monitoring.inference_log"):
        logger.log(predictions())  # returns at once, never raises
        stats = logger.close(timeout_s=10)
    assert stats.written == 0 and stats.pending == 6 and stats.failed_writes >= 1
    assert str(blocked) in stats.last_error
    assert "6 row(s) could not be written" in caplog.text


def test_a_failed_write_succeeds_on_retry_without_duplicates(tmp_path):
    root = tmp_path / "log"
    root.write_text("in the way")  # the log root cannot be created: writes fail
    logger = InferenceLogger(root, flush_interval_s=0.05)
    logger.log(predictions())
    deadline = time.monotonic() + 10
    while not logger.stats.failed_writes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logger.stats.failed_writes and logger.stats.pending == 6
    root.unlink()  # the disk is fixed: the next flush writes the kept rows
    stats = logger.close()
    assert stats.written == 6 and stats.pending == 0
    assert len(read_log(root, MODEL)) == 6


def test_no_half_written_files_are_visible(tmp_path):
    logger = InferenceLogger(tmp_path, flush_interval_s=0.05)
    logger.log(predictions())
    logger.close()
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


def test_unreadable_log_names_the_folder(tmp_path):
    folder = tmp_path / MODEL / "predictions" / "date=2026-07-01"
    folder.mkdir(parents=True)
    (folder / "part-broken.parquet").write_text("not parquet")
    with pytest.raises(InferenceLogError, match="cannot read the inference log under"):
        read_log(tmp_path, MODEL)
