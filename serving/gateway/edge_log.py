"""Every answered prediction, written to the inference log by the gateway that answered it.

`EdgeLog.offer` runs on the request path: it appends one record to a bounded buffer and never
blocks or raises. A writer thread turns the buffer into Parquet every `flush_interval_s` (or
`flush_rows`) through `write_partitioned` (fsynced, renamed into place). When the buffer holds
`max_rows` rows, new records are dropped and counted (`gateway_inference_log_dropped_total`,
which alerts); a batch that fails to write is kept and retried, its rows still counting
towards the bound, so memory stays bounded whatever the disk does.

A request of n > 1 rows logs its rows as `<request id>.<i>` (i from 0), the ids that late
labels use (`POST /v2/models/{m}/labels`, `labels.py`); a single-row request logs the request
id itself.

A shadow record (`shadow_of` set: a challenger's answer to a mirrored request) goes to the
model's `shadow/` folder under the same row ids, never to `predictions/` (see
`serving.inference_log`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from models.reference import SCORE_COLUMN
from serving.decision import MISSING_CATEGORY
from serving.gateway.metrics import GatewayMetrics
from serving.inference_log import (
    CALLER,
    DECISION,
    LATENCY_MS,
    MODEL_NAME,
    MODEL_VERSION,
    PREDICTIONS,
    RECEIVED,
    REQUEST_ID,
    SHADOW,
    SHADOW_OF,
    TIMESTAMP,
    TRAFFIC,
    PartialWriteError,
    write_partitioned,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogRecord:
    """One answered request, as the gateway saw it."""

    request_id: str
    timestamp: float  # epoch seconds: the event time the client stated, else `received`
    received: float  # epoch seconds: when the gateway got the request
    model: str
    version: str
    columns: dict[str, list]  # input name -> raw values (floats with NaN, str with "")
    text_inputs: frozenset[str]
    scores: list[float]
    decisions: list[int]
    latency_ms: float
    caller: str
    shadow_of: str | None = None  # a shadow record: the version that answered the caller

    @property
    def rows(self) -> int:
        return len(self.scores)


class EdgeLog:
    """Bounded, non-blocking writer of answered requests to the inference log at `root`."""

    def __init__(
        self,
        root: Path,
        metrics: GatewayMetrics,
        *,
        max_rows: int = 100_000,
        flush_interval_s: float = 1.0,
        flush_rows: int = 5_000,
    ) -> None:
        self.root = Path(root)
        self.metrics = metrics
        self.max_rows, self.flush_interval_s, self.flush_rows = (
            max_rows,
            flush_interval_s,
            flush_rows,
        )
        self._records: deque[LogRecord] = deque()
        self._retry: list[tuple[str, str, pa.Table]] = []  # (model, kind, rows)
        self._rows = 0  # rows buffered or awaiting retry
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="edge-log", daemon=True)

    def start(self) -> EdgeLog:
        self._thread.start()
        return self

    @property
    def depth(self) -> int:
        """Rows buffered or awaiting a retry."""
        return self._rows

    def offer(self, record: LogRecord) -> bool:
        """Buffer `record`; False (and counted as dropped) when the buffer is full."""
        with self._lock:
            if self._rows + record.rows > self.max_rows:
                self.metrics.log_dropped.inc(record.rows)
                return False
            self._records.append(record)
            self._rows += record.rows
            depth = self._rows
        self.metrics.log_queue_depth.set(depth)
        if depth >= self.flush_rows:
            self._wake.set()
        return True

    def close(self, timeout_s: float = 30.0) -> int:
        """Write what is buffered; returns the rows that could not be written (counted)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        with self._lock:
            lost = self._rows
            self._rows = 0
        if lost:
            self.metrics.log_dropped.inc(lost)
            log.error("inference log: %d row(s) could not be written to %s", lost, self.root)
        return lost

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping
            self.flush()
            if stopping:
                return

    def flush(self) -> None:
        """Write the buffer (and earlier failed batches) now; called by the writer thread."""
        with self._lock:
            records = list(self._records)
            self._records.clear()
        groups: dict[tuple[str, str], list[LogRecord]] = {}
        for record in records:
            kind = PREDICTIONS if record.shadow_of is None else SHADOW
            groups.setdefault((record.model, kind), []).append(record)
        pending = self._retry + [
            (model, kind, records_table(group) if kind == PREDICTIONS else shadow_table(group))
            for (model, kind), group in groups.items()
        ]
        self._retry = []
        for model, kind, frame in pending:
            self._write(model, kind, frame)
        self.metrics.log_queue_depth.set(self._rows)

    def _write(self, model: str, kind: str, frame: pa.Table) -> None:
        try:
            write_partitioned(frame, self.root / model, kind, TIMESTAMP)
            written, unwritten = len(frame), None
        except PartialWriteError as exc:
            written, unwritten = len(frame) - len(exc.unwritten), exc.unwritten
            self._report(model, exc)
        except Exception as exc:  # noqa: BLE001 - any I/O failure: keep the rows, retry
            written, unwritten = 0, frame
            self._report(model, exc)
        if unwritten is not None:
            self._retry.append((model, kind, unwritten))
        if written:
            self.metrics.log_written.inc(written)
            with self._lock:
                self._rows -= written

    def _report(self, model: str, exc: Exception) -> None:
        self.metrics.log_write_errors.inc()
        log.error("inference log: rows of %s not written under %s (kept for retry): %s",
                  model, self.root, exc)  # fmt: skip


def row_ids(request_id: str, rows: int) -> list[str]:
    """The log ids of a request's rows: the request id itself for one row, else `<id>.<i>`."""
    return [request_id] if rows == 1 else [f"{request_id}.{i}" for i in range(rows)]


def records_table(records: list[LogRecord]) -> pa.Table:
    """The log rows of one model's `records` (a row per predicted row), an input per column.

    Built as Arrow columns straight from the Python lists: no pandas on the writer thread.
    """
    columns = _scored_rows(records)
    features: dict[str, list] = {}
    done = 0  # rows of the records before this one
    for record in records:
        n = record.rows
        for name, values in record.columns.items():
            column = features.get(name)
            if column is None:  # an input earlier records lacked (another version)
                column = features[name] = [None] * done
            if name in record.text_inputs:
                column += [None if v == MISSING_CATEGORY else v for v in values]
            else:
                column += values
        done += n
        for column in features.values():  # an input this record's version lacks
            if len(column) < done:
                column += [None] * (done - len(column))
    text = frozenset().union(*(record.text_inputs for record in records))
    for name, column in features.items():
        columns[name] = pa.array(column, pa.string() if name in text else pa.float64())
    return pa.table(columns)


def shadow_table(records: list[LogRecord]) -> pa.Table:
    """The shadow rows of one model's shadow `records`: ids, times and caller of the served
    rows, the challenger's version, score and decision, `shadow_of` and `traffic`; no
    features (the served row holds them)."""
    columns = _scored_rows(records, shadow=True)
    columns[TRAFFIC] = pa.array([SHADOW] * len(columns[REQUEST_ID]), pa.string())
    return pa.table(columns)


def _scored_rows(records: list[LogRecord], *, shadow: bool = False) -> dict[str, pa.Array]:
    """The columns every log row has: ids, times, model, version, score, decision, latency,
    caller (and `shadow_of` for shadow rows), a row per predicted row."""
    fields = {TIMESTAMP: "timestamp", RECEIVED: "received", MODEL_NAME: "model",
              MODEL_VERSION: "version", LATENCY_MS: "latency_ms", CALLER: "caller",
              **({SHADOW_OF: "shadow_of"} if shadow else {})}  # fmt: skip
    ids: list[str] = []
    scores: list[float] = []
    decisions: list[int] = []
    repeated: dict[str, list] = {key: [] for key in fields}
    for record in records:
        n = record.rows
        ids += row_ids(record.request_id, n)
        scores += record.scores
        decisions += record.decisions
        for key, attribute in fields.items():
            repeated[key] += [getattr(record, attribute)] * n
    utc = pa.timestamp("ns", tz="UTC")
    columns = {
        REQUEST_ID: pa.array(ids, pa.string()),
        TIMESTAMP: pa.array(_nanoseconds(repeated[TIMESTAMP]), utc),
        RECEIVED: pa.array(_nanoseconds(repeated[RECEIVED]), utc),
        MODEL_NAME: pa.array(repeated[MODEL_NAME], pa.string()),
        MODEL_VERSION: pa.array(repeated[MODEL_VERSION], pa.string()),
        SCORE_COLUMN: pa.array(scores, pa.float64()),
        DECISION: pa.array(decisions, pa.int64()),
        LATENCY_MS: pa.array(repeated[LATENCY_MS], pa.float64()),
        CALLER: pa.array(repeated[CALLER], pa.string()),
    }
    if shadow:
        columns[SHADOW_OF] = pa.array(repeated[SHADOW_OF], pa.string())
    return columns


def _nanoseconds(seconds: list[float]) -> np.ndarray:
    return (np.asarray(seconds, dtype=np.float64) * 1e9).astype(np.int64)
