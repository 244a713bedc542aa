"""The inference log: every prediction and, later, its label, as Parquet partitioned by day.

Layout under the log root (one folder per model, hive-style day partitions)::

    <root>/<model>/predictions/date=2026-07-01/part-<uuid>.parquet
    <root>/<model>/labels/date=2026-07-03/part-<uuid>.parquet
    <root>/<model>/shadow/date=2026-07-01/part-<uuid>.parquet

A prediction row holds request id, timestamp, model name and version, the raw features as
sent, score and decision; the gateway (`serving.gateway.edge_log`) writes one for every row
it answers, with latency and caller. Files are fsynced, then renamed into place, so a reader
never sees half a file; a file that cannot be read is set aside (`<model>/_unreadable/`) and
reported, and the rest of the log stays readable.

Shadow rows (a challenger's scores for mirrored live requests, `serving.gateway.shadow`) live
in their own `shadow/` folder, never among `predictions/`: every reader of served traffic (the
monitor, the retrain loop, the KPI page) reads `predictions/` only and cannot count a shadow
score as served. A shadow row has the served row's id, timestamp and caller, the challenger's
version, score and decision, `shadow_of` (the version that answered the caller) and
`traffic` = "shadow"; no features (they are in the served row). `read_shadow` reads them.

Retention (`serving.log_retention`, daily on the cluster) deletes whole day partitions older
than a number of days: each is first renamed out of the readers' sight (`.expired-...`), then
removed, so a reader sees a day whole or not at all, and a deletion cut short is finished by the
next run. A label's day is never earlier than its prediction's, so a kept prediction keeps its
label.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from models.reference import SCORE_COLUMN, TARGET_COLUMN
from serving.processes import fsync_dir

log = logging.getLogger(__name__)

REQUEST_ID, TIMESTAMP = "request_id", "timestamp"
MODEL_NAME, MODEL_VERSION, DECISION = "model_name", "model_version", "decision"
# Written by the gateway (serving/gateway): `timestamp` is the event time a client states
# (a replay, a backfill) or else the arrival time, which `received_at` always holds.
LATENCY_MS, CALLER, RECEIVED = "latency_ms", "caller", "received_at"
LABEL_TIMESTAMP = "label_timestamp"
UNREADABLE = "_unreadable"  # where a file that cannot be read is set aside
META_COLUMNS = (REQUEST_ID, TIMESTAMP, MODEL_NAME, MODEL_VERSION, SCORE_COLUMN, DECISION)
PREDICTIONS, LABELS, SHADOW = "predictions", "labels", "shadow"
SHADOW_OF, TRAFFIC = "shadow_of", "traffic"  # shadow rows: the version the caller got; "shadow"
KINDS = (PREDICTIONS, LABELS, SHADOW)
DAY_PREFIX, EXPIRED_PREFIX = "date=", ".expired-"  # a day partition; one being deleted


class InferenceLogError(RuntimeError):
    """The log cannot be read or a record is malformed; the message names what."""


class PartialWriteError(OSError):
    """Some day files of a batch were published, the rest (`unwritten`) were not."""

    def __init__(self, message: str, unwritten: pd.DataFrame | pa.Table) -> None:
        super().__init__(message)
        self.unwritten = unwritten


def prediction_frame(
    *,
    model: str,
    version: str,
    features: pd.DataFrame,
    scores: np.ndarray,
    decisions: np.ndarray,
    request_ids: Iterable[str] | None = None,
    timestamps: Iterable[pd.Timestamp] | None = None,
) -> pd.DataFrame:
    """One log row per prediction; ids default to new UUIDs and timestamps to now (UTC)."""
    clash = sorted(set(features.columns) & set(META_COLUMNS))
    if clash:
        raise InferenceLogError(f"feature column(s) {clash} clash with log columns {META_COLUMNS}")
    n = len(features)
    ids = [str(i) for i in request_ids] if request_ids is not None else _new_ids(n)
    when = (
        pd.to_datetime(pd.Series(list(timestamps)), utc=True)
        if timestamps is not None
        else pd.Series([pd.Timestamp.now(tz="UTC")] * n)
    )
    if len(ids) != n or len(when) != n:
        raise InferenceLogError(f"{n} rows but {len(ids)} ids and {len(when)} timestamps")
    meta = pd.DataFrame(
        {
            REQUEST_ID: ids,
            TIMESTAMP: when.to_numpy(),
            MODEL_NAME: model,
            MODEL_VERSION: str(version),
            SCORE_COLUMN: np.asarray(scores, dtype=float),
            DECISION: np.asarray(decisions, dtype=int),
        }
    )
    return pd.concat([meta, features.reset_index(drop=True)], axis=1)


def label_frame(
    request_ids: Iterable[str], labels: Iterable[int], arrived: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Late labels (0/1) for earlier predictions, keyed by request id."""
    ids = [str(i) for i in request_ids]
    values = np.asarray(list(labels), dtype=int)
    if len(ids) != len(values):
        raise InferenceLogError(f"{len(ids)} request ids but {len(values)} labels")
    if not np.isin(values, (0, 1)).all():
        raise InferenceLogError(f"labels must be 0 or 1, got {sorted(set(values.tolist()))}")
    now = arrived or pd.Timestamp.now(tz="UTC")
    return pd.DataFrame({REQUEST_ID: ids, TARGET_COLUMN: values, LABEL_TIMESTAMP: now})


def write_partitioned(
    rows: pd.DataFrame | pa.Table, root: Path, kind: str, time_column: str
) -> list[Path]:
    """Write `rows` as one Parquet file per day under `root/kind/date=YYYY-MM-DD/`.

    Each file is written under a hidden temporary name, fsynced, then renamed into place (and
    its folder fsynced), so a reader never sees half a file and a published file survives a
    crash. A failure before any rename leaves nothing visible (the caller retries the whole
    batch); a failure after some renames raises `PartialWriteError` carrying only the rows of
    the days not published (as the type given), so a retry never duplicates rows. The work is
    done by Arrow, which keeps a writer thread off the interpreter lock (the gateway's log).
    """
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pandas(rows, preserve_index=False)
    stamps = table.column(time_column)
    if not pa.types.is_timestamp(stamps.type):
        stamps = pa.array(pd.to_datetime(stamps.to_pandas(), utc=True))
    nanoseconds = pc.cast(  # whatever the unit stated (pandas keeps a parsed string's seconds)
        pc.cast(stamps, pa.timestamp("ns", tz=stamps.type.tz)), pa.int64()
    ).to_numpy(zero_copy_only=False)
    day_numbers = nanoseconds // 86_400_000_000_000
    staged: list[tuple[Path, Path, np.ndarray]] = []
    published: list[Path] = []
    try:
        for day in np.unique(day_numbers):
            label = np.datetime64(int(day), "D")
            folder = root / kind / f"date={label}"
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"part-{uuid.uuid4().hex}.parquet"
            temporary = folder / f".{final.name}.tmp"
            mask = day_numbers == day
            staged.append((temporary, final, mask))
            pq.write_table(table.filter(pa.array(mask)), temporary)
            _fsync_file(temporary)
        for temporary, final, _ in staged:
            os.replace(temporary, final)
            published.append(final)
            fsync_dir(final.parent)
    except OSError as exc:
        if not published:
            raise
        left = np.zeros(len(table), dtype=bool)
        for _, final, mask in staged:
            if final not in published:
                left |= mask
        rest = table.filter(pa.array(left))
        raise PartialWriteError(
            f"{len(published)} of {len(staged)} day files published under {root / kind}: {exc}",
            rest if isinstance(rows, pa.Table) else rest.to_pandas(),
        ) from exc
    finally:
        for temporary, _, _ in staged:
            temporary.unlink(missing_ok=True)
    return published


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def write_predictions(root: Path, model: str, predictions: pd.DataFrame) -> None:
    """Append prediction rows (see `prediction_frame`) for `model`: batch scoring, backfills.

    Online predictions are written by the gateway (`serving.gateway.edge_log`).
    """
    write_partitioned(predictions, Path(root) / model, PREDICTIONS, TIMESTAMP)


def write_labels(root: Path, model: str, labels: pd.DataFrame) -> None:
    """Append late labels (see `label_frame`) for `model` to the log."""
    write_partitioned(labels, Path(root) / model, LABELS, LABEL_TIMESTAMP)


def read_log(
    root: Path,
    model: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    *,
    written_since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Predictions of `model` in [start, end) with their label (NaN until it arrives).

    Only day partitions that can hold rows of the range are read; with `written_since`, only
    the files (predictions and labels) written from then on, by their modification time (a
    published file is never modified): rows that arrived since then, whatever event time they
    state, for a reader of recent arrivals only. The latest label of an id wins.
    """
    folder = Path(root) / model
    predictions = _read_range(folder / PREDICTIONS, start, end, written_since)
    if predictions.empty:
        return predictions
    labels = _read_kind(folder / LABELS, None, None, written_since)
    if labels.empty:
        return predictions.assign(**{TARGET_COLUMN: np.nan})
    latest = labels.sort_values(LABEL_TIMESTAMP).drop_duplicates(REQUEST_ID, keep="last")
    merged = predictions.merge(latest[[REQUEST_ID, TARGET_COLUMN]], on=REQUEST_ID, how="left")
    return merged.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def read_shadow(
    root: Path,
    model: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Shadow rows of `model` in [start, end) (by the served row's timestamp), without labels
    (join them through `read_log` on the request id)."""
    rows = _read_range(Path(root) / model / SHADOW, start, end)
    if rows.empty:
        return rows
    return rows.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def _read_range(
    folder: Path,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    written_since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The rows of one kind under `folder` with a timestamp in [start, end), times as UTC."""
    rows = _read_kind(folder, start, end, written_since)
    if rows.empty:
        return rows
    stamps = pd.to_datetime(rows[TIMESTAMP], utc=True)
    keep = np.ones(len(rows), dtype=bool)
    if start is not None:
        keep &= (stamps >= _utc(start)).to_numpy()
    if end is not None:
        keep &= (stamps < _utc(end)).to_numpy()
    return rows[keep].assign(**{TIMESTAMP: stamps[keep]})


def _read_kind(
    folder: Path,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    written_since: pd.Timestamp | None = None,
) -> pd.DataFrame:
    first = _utc(start).strftime("%Y-%m-%d") if start is not None else ""
    last = _utc(end).strftime("%Y-%m-%d") if end is not None else "9999"
    files = [
        path
        for day in sorted(folder.glob(f"{DAY_PREFIX}*"))
        if first <= day.name.removeprefix(DAY_PREFIX) <= last
        for path in sorted(day.glob("part-*.parquet"))
    ]
    if written_since is not None:
        epoch_s = _utc(written_since).timestamp()
        files = [path for path in files if _written_since(path, epoch_s)]
    frames = [frame for frame in map(_read_or_set_aside, files) if frame is not None]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def _written_since(path: Path, epoch_s: float) -> bool:
    try:
        return path.stat().st_mtime >= epoch_s
    except FileNotFoundError:  # its day expired since the listing
        return False


def _read_or_set_aside(path: Path) -> pd.DataFrame | None:
    """One log file, or None after moving an unreadable one to `<model>/_unreadable/`; None for
    a file gone since it was listed (its day expired meanwhile)."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        log.info("inference log: %s was removed while being read (retention)", path)
        return None
    except Exception as exc:  # noqa: BLE001 - any corrupt file: set aside, report, read the rest
        kind_folder = path.parent.parent
        aside = kind_folder.parent / UNREADABLE / kind_folder.name / path.parent.name / path.name
        try:
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, aside)
            where = f"moved to {aside}"
        except OSError as move_error:
            where = f"left in place ({move_error})"
        log.error("inference log: unreadable file %s skipped, %s: %s", path, where, exc)
        return None


def expired_days(root: Path, keep_days: int, today: pd.Timestamp) -> list[Path]:
    """The day partitions of every model and kind under `root` (those set aside as unreadable
    included) older than the last `keep_days` days up to `today` (UTC), oldest first."""
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, got {keep_days}")
    cutoff = (_utc(today).normalize() - pd.Timedelta(days=keep_days - 1)).strftime("%Y-%m-%d")
    days = [
        day
        for folder in _kind_folders(root)
        for day in folder.glob(f"{DAY_PREFIX}*")
        if day.is_dir() and day.name.removeprefix(DAY_PREFIX) < cutoff
    ]
    return sorted(days, key=lambda day: (day.name, str(day)))


def delete_day(day: Path) -> None:
    """Delete one day partition: renamed out of readers' sight first, then removed."""
    hidden = day.with_name(f"{EXPIRED_PREFIX}{day.name}-{uuid.uuid4().hex}")
    os.replace(day, hidden)
    fsync_dir(day.parent)
    shutil.rmtree(hidden)


def unfinished_deletions(root: Path) -> list[Path]:
    """Partitions that a cut-short `delete_day` renamed but did not remove."""
    return sorted(
        path for folder in _kind_folders(root) for path in folder.glob(f"{EXPIRED_PREFIX}*")
    )


def _kind_folders(root: Path) -> list[Path]:
    """`<model>/<kind>` and `<model>/_unreadable/<kind>` folders under `root` that exist."""
    return [
        folder / kind
        for model in sorted(Path(root).iterdir())
        if model.is_dir() and not model.is_symlink()
        for folder in (model, model / UNREADABLE)
        for kind in KINDS
        if (folder / kind).is_dir()
    ]


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _new_ids(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]
