"""Retention of the inference log: whole expired days go, for every model and kind; the rest,
and anything that is not a day partition, stays; readers never fail on a day going away."""

import os

import numpy as np
import pandas as pd
import pytest

from serving import inference_log, log_retention
from serving.inference_log import (
    label_frame,
    prediction_frame,
    read_log,
    read_shadow,
    write_labels,
    write_partitioned,
    write_predictions,
)

TODAY = pd.Timestamp("2026-07-10 08:00", tz="UTC")


def _rows(model: str, day: str, ids: list[str]) -> pd.DataFrame:
    n = len(ids)
    return prediction_frame(
        model=model,
        version="1",
        features=pd.DataFrame({"amount": np.arange(n, dtype=float)}),
        scores=np.full(n, 0.5),
        decisions=np.zeros(n, dtype=int),
        request_ids=ids,
        timestamps=[pd.Timestamp(f"{day} 12:00", tz="UTC")] * n,
    )


@pytest.fixture
def log_root(tmp_path):
    """Two models; predictions on 07-01, 07-04 and 07-08; labels that arrived on 07-04 (for
    07-01's rows) and 07-09 (for 07-08's); a shadow row on 07-01; an unreadable file set aside
    on 07-02; and a stray folder that is not a day."""
    root = tmp_path / "log"
    for model in ("a", "b"):
        for day in ("2026-07-01", "2026-07-04", "2026-07-08"):
            write_predictions(root, model, _rows(model, day, [f"{model}{day}"]))
        for prediction_day, arrived in (("2026-07-01", "2026-07-04"), ("2026-07-08", "2026-07-09")):
            labels = label_frame([f"{model}{prediction_day}"], [1], pd.Timestamp(arrived, tz="UTC"))
            write_labels(root, model, labels)
    shadow = _rows("a", "2026-07-01", ["a2026-07-01"]).assign(traffic="shadow")
    write_partitioned(shadow, root / "a", inference_log.SHADOW, inference_log.TIMESTAMP)
    aside = root / "a" / inference_log.UNREADABLE / "predictions" / "date=2026-07-02"
    aside.mkdir(parents=True)
    (aside / "part-x.parquet").write_bytes(b"not parquet")
    (root / "a" / "predictions" / "notes").mkdir()
    return root


def _days(root, model: str, kind: str) -> list[str]:
    return sorted(p.name for p in (root / model / kind).iterdir())


def test_days_older_than_the_kept_ones_go_for_every_model_and_kind(log_root):
    # keep 7 days up to 07-10: 07-04 .. 07-10 stay, 07-01 and 07-02 go
    gone = log_retention.apply_retention(log_root, 7, TODAY)
    names = sorted({p.name for p in gone})
    assert names == ["date=2026-07-01", "date=2026-07-02"]
    assert len(gone) == 2 + 1 + 1  # predictions of a and b, a's shadow row, a's aside
    for model in ("a", "b"):
        assert [d for d in _days(log_root, model, "predictions") if d != "notes"] == [
            "date=2026-07-04",
            "date=2026-07-08",
        ]
        assert _days(log_root, model, "labels") == ["date=2026-07-04", "date=2026-07-09"]
    assert (log_root / "a" / "predictions" / "notes").is_dir()  # not a day: not ours to delete
    assert read_shadow(log_root, "a").empty
    assert not any((log_root / "a" / inference_log.UNREADABLE / "predictions").iterdir())
    # The kept rows read as before, with their labels.
    kept = read_log(log_root, "b")
    assert kept.set_index("request_id")["label"].to_dict() == pytest.approx(
        {"b2026-07-04": np.nan, "b2026-07-08": 1.0}, nan_ok=True
    )
    assert log_retention.apply_retention(log_root, 7, TODAY) == []  # nothing left to do


def test_the_boundary_day_is_kept_and_a_dry_run_deletes_nothing(log_root):
    # keep 3 days up to 07-10: 07-08 .. 07-10 stay; 07-04 is the newest expired day
    before = sorted(str(p) for p in log_root.rglob("*"))
    listed = log_retention.apply_retention(log_root, 3, TODAY, dry_run=True)
    assert sorted(str(p) for p in log_root.rglob("*")) == before
    assert "date=2026-07-04" in {p.name for p in listed}
    assert "date=2026-07-08" not in {p.name for p in listed}
    assert log_retention.apply_retention(log_root, 3, TODAY) == listed
    assert [d for d in _days(log_root, "a", "predictions") if d != "notes"] == ["date=2026-07-08"]


def test_a_deletion_cut_short_is_finished_by_the_next_run_and_hidden_meanwhile(
    log_root, monkeypatch
):
    def rename_only(day):  # a run killed between the rename and the removal
        os.replace(day, day.with_name(f"{inference_log.EXPIRED_PREFIX}{day.name}-killed"))

    monkeypatch.setattr(log_retention, "delete_day", rename_only)
    log_retention.apply_retention(log_root, 7, TODAY)
    hidden = inference_log.unfinished_deletions(log_root)
    assert len(hidden) == 4
    # Readers do not see the half-deleted days.
    assert list(read_log(log_root, "a")["request_id"]) == ["a2026-07-04", "a2026-07-08"]
    monkeypatch.undo()
    assert log_retention.apply_retention(log_root, 7, TODAY) == []
    assert inference_log.unfinished_deletions(log_root) == []
    assert not any(path.exists() for path in hidden)


def test_a_file_gone_since_a_reader_listed_it_is_skipped_not_set_aside(log_root):
    """Retention may remove a day between a reader's listing and its read: the reader goes on
    without it, and does not report it as unreadable."""
    day = log_root / "a" / "predictions" / "date=2026-07-01"
    (listed,) = day.glob("part-*.parquet")
    inference_log.delete_day(day)
    assert inference_log._read_or_set_aside(listed) is None
    assert not (log_root / "a" / inference_log.UNREADABLE / "predictions" / day.name).exists()


def test_cli_deletes_and_reports_what_it_deleted(log_root, capsys):
    argv = ["--log-root", str(log_root), "--keep-days", "7", "--today", "2026-07-10"]
    assert log_retention.main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would delete a/predictions/date=2026-07-01" in out
    assert "would delete 4 day partition(s)" in out
    assert (log_root / "a" / "predictions" / "date=2026-07-01").is_dir()
    assert log_retention.main(argv) == 0
    out = capsys.readouterr().out
    assert "deleted b/predictions/date=2026-07-01" in out
    assert "deleted 4 day partition(s)" in out and "up to 2026-07-10" in out
    assert not (log_root / "a" / "predictions" / "date=2026-07-01").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--keep-days", "0"], "--keep-days must be at least 1, got 0"),
        (["--keep-days", "7", "--log-root", "missing"], "no inference log at"),
    ],
)
def test_cli_refuses_bad_arguments_naming_them(tmp_path, capsys, argv, message):
    argv = argv if "--log-root" in argv else [*argv, "--log-root", str(tmp_path)]
    assert log_retention.main(argv) != 0
    assert message in capsys.readouterr().err
