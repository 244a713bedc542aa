"""The gateway's inference log writer: bounded, never blocking, never duplicating rows."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

import serving.inference_log as inference_log
from serving.gateway.edge_log import EdgeLog, LogRecord, records_table
from serving.gateway.metrics import GatewayMetrics
from serving.inference_log import PartialWriteError, read_log, write_partitioned

NOW = pd.Timestamp("2026-07-01 12:00", tz="UTC").timestamp()
DAY = 86_400.0


def record(request_id: str, rows: int = 1, *, model: str = "m", when=NOW, **columns) -> LogRecord:
    return LogRecord(
        request_id=request_id,
        timestamp=when,
        received=NOW,
        model=model,
        version="3",
        columns=columns or {"x": [1.0] * rows, "c": ["a"] * rows},
        text_inputs=frozenset({"c"}),
        scores=[0.75] * rows,
        decisions=[1] * rows,
        latency_ms=2.5,
        caller="app",
    )


def metric(metrics: GatewayMetrics, name: str) -> float:
    return metrics.registry.get_sample_value(name) or 0.0


def test_records_become_one_row_per_predicted_row_with_row_ids():  # and typed columns
    frame = records_table([record("a"), record("b", 2, x=[1.0, 2.0], c=["", "z"])]).to_pandas()
    assert frame["request_id"].tolist() == ["a", "b.0", "b.1"]
    assert frame["c"].tolist() == ["a", None, "z"]  # "" (missing category) is logged as missing
    assert frame[["model_version", "caller", "latency_ms"]].iloc[0].tolist() == ["3", "app", 2.5]


def test_written_rows_are_readable_and_counted(tmp_path):
    metrics = GatewayMetrics()
    log = EdgeLog(tmp_path, metrics, flush_interval_s=0.05).start()
    for i in range(5):
        assert log.offer(record(f"r{i}"))
    assert log.close() == 0
    assert sorted(read_log(tmp_path, "m")["request_id"]) == [f"r{i}" for i in range(5)]
    assert metric(metrics, "gateway_inference_log_written_total") == 5


def test_a_full_buffer_drops_and_counts_instead_of_growing(tmp_path):
    metrics = GatewayMetrics()
    log = EdgeLog(tmp_path, metrics, max_rows=3)  # writer not started: nothing drains
    assert [log.offer(record(f"r{i}")) for i in range(5)] == [True, True, True, False, False]
    assert log.depth == 3 and metric(metrics, "gateway_inference_log_dropped_total") == 2


def test_an_unwritable_root_keeps_rows_for_retry_then_writes_them(tmp_path):
    metrics = GatewayMetrics()
    blocked = tmp_path / "log"
    blocked.write_text("a file where the log folder should be")
    log = EdgeLog(blocked, metrics)
    log.offer(record("r1"))
    log.flush()
    assert log.depth == 1 and metric(metrics, "gateway_inference_log_write_errors_total") == 1
    blocked.unlink()
    log.flush()
    assert log.depth == 0 and read_log(blocked, "m")["request_id"].tolist() == ["r1"]


def test_a_partly_failed_multi_day_write_is_retried_without_duplicates(tmp_path, monkeypatch):
    metrics = GatewayMetrics()
    log = EdgeLog(tmp_path, metrics)
    log.offer(record("day1", when=NOW))
    log.offer(record("day2", when=NOW + DAY))
    real_replace, calls = os.replace, []

    def second_rename_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(inference_log.os, "replace", second_rename_fails)
    log.flush()
    assert log.depth == 1  # day 1 published, day 2 kept
    monkeypatch.setattr(inference_log.os, "replace", real_replace)
    log.flush()
    assert sorted(read_log(tmp_path, "m")["request_id"]) == ["day1", "day2"]
    assert not list(Path(tmp_path).rglob("*.tmp"))


def test_partial_write_error_carries_only_the_unpublished_days(tmp_path, monkeypatch):
    frame = records_table([record("a", when=NOW), record("b", when=NOW + 2 * DAY)])
    real_replace = os.replace
    seen = []

    def fail_second(src, dst):
        seen.append(dst)
        if len(seen) == 2:
            raise OSError("boom")
        real_replace(src, dst)

    monkeypatch.setattr(inference_log.os, "replace", fail_second)
    with pytest.raises(PartialWriteError) as caught:
        write_partitioned(frame, tmp_path / "m", "predictions", "timestamp")
    assert caught.value.unwritten["request_id"].to_pylist() == ["b"]  # the type given: Arrow


def test_an_unreadable_file_is_set_aside_and_the_rest_is_read(tmp_path, caplog):
    write_partitioned(records_table([record("good")]), tmp_path / "m", "predictions", "timestamp")
    bad = tmp_path / "m" / "predictions" / "date=2026-07-01" / "part-bad.parquet"
    bad.write_bytes(b"not parquet")
    assert read_log(tmp_path, "m")["request_id"].tolist() == ["good"]
    assert not bad.exists()
    assert (tmp_path / "m" / "_unreadable" / "predictions" / "date=2026-07-01" / bad.name).exists()
    assert "unreadable file" in caplog.text


def test_close_reports_rows_it_could_not_write(tmp_path):
    metrics = GatewayMetrics()
    blocked = tmp_path / "log"
    blocked.write_text("not a folder")
    log = EdgeLog(blocked, metrics, flush_interval_s=0.05).start()
    log.offer(record("r1", 2, x=[1.0, 2.0], c=["a", "b"]))
    time.sleep(0.2)
    assert log.close(timeout_s=5) == 2
    assert metric(metrics, "gateway_inference_log_dropped_total") == 2
