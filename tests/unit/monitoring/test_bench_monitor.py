"""Smoke test of `python -m benchmarks.bench_monitor` at a tiny size (no speed bar)."""

from __future__ import annotations

import json

from benchmarks.bench_monitor import CONTENDERS, make_frames, run_benchmark


def test_make_frames_is_seeded_and_mixed():
    ref, cur, numeric, categorical = make_frames(300, 200, 20, seed=1)
    again = make_frames(300, 200, 20, seed=1)
    assert ref.equals(again[0]) and cur.equals(again[1])
    assert (len(numeric), len(categorical), ref.shape, cur.shape) == (15, 5, (300, 20), (200, 20))


def test_benchmark_writes_report_and_decisions_agree(tmp_path):
    summary = run_benchmark(5_000, 3_000, 6, seed=1, out=tmp_path)
    report = (tmp_path / "bench_monitor.md").read_text()
    assert all(name in report for name in CONTENDERS.values())
    assert json.loads((tmp_path / "bench_monitor.json").read_text()) == summary
    assert summary["agreement"] and summary["max_score_difference"] < 1e-9
    assert summary["dataset_drift"]["platform"] == summary["dataset_drift"]["evidently"]
    assert len(summary["per_column"]) == 6
    for run in summary["runs"].values():
        assert run["peak_rss_mib"] > 0 and run["imports_only_rss_mib"] > 0
