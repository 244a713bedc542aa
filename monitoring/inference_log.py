"""The inference log: every prediction and, later, its label, as Parquet partitioned by day.

Layout under the log root (one folder per model, hive-style day partitions)::

    <root>/<model>/predictions/date=2026-07-01/part-<uuid>.parquet
    <root>/<model>/labels/date=2026-07-03/part-<uuid>.parquet

A prediction row holds request id, timestamp, model name and version, the raw features as
sent, score and decision. `InferenceLogger` writes from a background thread: logging never
blocks or fails a prediction. A batch that cannot be written (bad path, full disk) is kept
and retried at the next flush; what is still unwritten at `close()` is reported (logged at
ERROR and counted in `stats`), never dropped silently. Files appear atomically (written to a
hidden temporary name, then renamed), so a reader never sees half a file.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType

import numpy as np
import pandas as pd

from monitoring.reference import SCORE_COLUMN, TARGET_COLUMN

log = logging.getLogger(__name__)

REQUEST_ID, TIMESTAMP = "request_id", "timestamp"
MODEL_NAME, MODEL_VERSION, DECISION = "model_name", "model_version", "decision"
LABEL_TIMESTAMP = "label_timestamp"
META_COLUMNS = (REQUEST_ID, TIMESTAMP, MODEL_NAME, MODEL_VERSION, SCORE_COLUMN, DECISION)
PREDICTIONS, LABELS = "predictions", "labels"


class InferenceLogError(RuntimeError):
    """The log cannot be read or a record is malformed; the message names what."""


@dataclass
class LogStats:
    """Rows handed to the logger and what became of them."""

    logged: int = 0
    written: int = 0
    pending: int = 0
    failed_writes: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)


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


def write_partitioned(frame: pd.DataFrame, root: Path, kind: str, time_column: str) -> list[Path]:
    """Write `frame` as one file per day under `root/kind/date=YYYY-MM-DD/`.

    All files are first written under hidden temporary names and only then renamed, so a
    failure leaves no visible part of the batch (and a retry writes no duplicates).
    """
    days = pd.to_datetime(frame[time_column], utc=True).dt.strftime("%Y-%m-%d")
    staged: list[tuple[Path, Path]] = []
    try:
        for day, part in frame.groupby(days.to_numpy(), sort=True):
            folder = root / kind / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"part-{uuid.uuid4().hex}.parquet"
            temporary = folder / f".{final.name}.tmp"
            staged.append((temporary, final))
            part.to_parquet(temporary, index=False)
        for temporary, final in staged:
            os.replace(temporary, final)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
    return [final for _, final in staged]


def write_labels(root: Path, model: str, labels: pd.DataFrame) -> None:
    """Append late labels (see `label_frame`) for `model` to the log."""
    write_partitioned(labels, Path(root) / model, LABELS, LABEL_TIMESTAMP)


def read_log(
    root: Path,
    model: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Predictions of `model` in [start, end) with their label (NaN until it arrives).

    Only day partitions that can hold rows of the range are read. The latest label of an id
    wins.
    """
    folder = Path(root) / model
    predictions = _read_kind(folder / PREDICTIONS, start, end)
    if predictions.empty:
        return predictions
    stamps = pd.to_datetime(predictions[TIMESTAMP], utc=True)
    keep = np.ones(len(predictions), dtype=bool)
    if start is not None:
        keep &= (stamps >= _utc(start)).to_numpy()
    if end is not None:
        keep &= (stamps < _utc(end)).to_numpy()
    predictions = predictions[keep].assign(**{TIMESTAMP: stamps[keep]})
    labels = _read_kind(folder / LABELS, None, None)
    if labels.empty:
        return predictions.assign(**{TARGET_COLUMN: np.nan})
    latest = labels.sort_values(LABEL_TIMESTAMP).drop_duplicates(REQUEST_ID, keep="last")
    merged = predictions.merge(latest[[REQUEST_ID, TARGET_COLUMN]], on=REQUEST_ID, how="left")
    return merged.sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def _read_kind(folder: Path, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    first = _utc(start).strftime("%Y-%m-%d") if start is not None else ""
    last = _utc(end).strftime("%Y-%m-%d") if end is not None else "9999"
    files = [
        path
        for day in sorted(folder.glob("date=*"))
        if first <= day.name.removeprefix("date=") <= last
        for path in sorted(day.glob("part-*.parquet"))
    ]
    if not files:
        return pd.DataFrame()
    try:
        return pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)
    except Exception as exc:
        raise InferenceLogError(f"cannot read the inference log under {folder}: {exc}") from exc


def _utc(stamp: pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _new_ids(n: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(n)]


class InferenceLogger:
    """Non-blocking writer of prediction frames (see `prediction_frame`) for one log root.

    `log()` only enqueues; a daemon thread writes every `flush_interval_s` or `flush_rows`.
    """

    def __init__(
        self, root: Path, *, flush_interval_s: float = 1.0, flush_rows: int = 5000
    ) -> None:
        self.root = Path(root)
        self.stats = LogStats()
        self._flush_interval_s, self._flush_rows = flush_interval_s, flush_rows
        self._queue: queue.SimpleQueue[pd.DataFrame | None] = queue.SimpleQueue()
        self._unwritten: list[pd.DataFrame] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()

    def log(self, frame: pd.DataFrame) -> None:
        """Hand rows to the writer; never raises and never waits on I/O."""
        with self._lock:
            self.stats.logged += len(frame)
            self.stats.pending += len(frame)
        self._queue.put(frame)

    def close(self, timeout_s: float = 30.0) -> LogStats:
        """Write what is queued; report (log at ERROR) rows that could not be written."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self.stats.pending:
            log.error(
                "inference log: %d row(s) could not be written to %s: %s",
                self.stats.pending,
                self.root,
                self.stats.last_error or "writer did not finish in time",
            )
        return self.stats

    def _run(self) -> None:
        stop = False
        while not stop:
            item: pd.DataFrame | EllipsisType | None  # ...: timed out, flush what is waiting
            try:
                item = self._queue.get(timeout=self._flush_interval_s)
            except queue.Empty:
                item = ...
            if item is None:
                stop = True
            elif isinstance(item, pd.DataFrame):
                self._unwritten.append(item)
                if sum(map(len, self._unwritten)) < self._flush_rows:
                    continue
            self._flush()

    def _flush(self) -> None:
        if not self._unwritten:
            return
        batch = pd.concat(self._unwritten, ignore_index=True)
        kept = []
        for model, rows in batch.groupby(MODEL_NAME, sort=False):
            try:
                write_partitioned(rows, self.root / str(model), PREDICTIONS, TIMESTAMP)
            except Exception as exc:  # noqa: BLE001 - any I/O failure is reported, then retried
                self._report(f"cannot write {len(rows)} row(s) under {self.root}: {exc}")
                kept.append(rows)
                continue
            with self._lock:
                self.stats.written += len(rows)
                self.stats.pending -= len(rows)
        self._unwritten = kept

    def _report(self, message: str) -> None:
        with self._lock:
            self.stats.failed_writes += 1
            self.stats.last_error = message
            self.stats.errors = [*self.stats.errors, message][-10:]
        log.error("inference log: %s (kept for retry)", message)
