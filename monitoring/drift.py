"""Fast data drift: Evidently 0.7.23 `DataDriftPreset`'s per-column decisions, default settings.

Same tests, thresholds and decisions as Evidently, computed from sorted arrays and value
counts instead of Evidently's pandas pipeline (histograms, correlations and plots for every
column, each computed more than once). `detect_drift_parquet` reads one column at a time,
so peak memory stays near one column of each file. Source mirrored (paths under
`evidently/legacy/`):

- `calculations/data_drift.py::get_one_column_drift`: ±inf become NaN and NaN is dropped per
  column; an empty column is an error. The test is chosen on the cleaned columns.
- `calculations/stattests/registry.py::_get_default_stattest`, with `n_values` the distinct
  values of reference and current together and "large" meaning more than 1000 reference rows:
  numerical large: Jensen-Shannon if `n_values <= 5` else Wasserstein (normed);
  numerical small: chi-square if `2 < n_values <= 5`, Z-test if `n_values <= 2`, else K-S;
  categorical large: Jensen-Shannon; categorical small: chi-square if `n_values > 2` else Z.
- Thresholds and decisions from `calculations/stattests/*.py`: wasserstein 0.1 (`>=`),
  jensenshannon 0.1 (`>=`), ks 0.05 (`p <= t`), chisquare 0.05 (`p < t`), z 0.05 (`p < t`).
- `calculations/data_drift.py::get_dataset_drift`: dataset drift when the share of drifted
  columns is `>=` `drift_share` (0.5); the new API's test `lt(drift_share)` fails likewise.
- Evidently's `DriftedColumnsCount` runs the legacy `get_drift_for_columns`, which drops ±inf
  only from columns that also hold a NaN (`is_contains_nans`); for a column with ±inf and no
  NaN its count can disagree with its own per-column `ValueDrift`. The share here always
  follows the per-column decisions.
- Column kinds, when not given, as `evidently/core/datasets.py::infer_column_type` types them
  (see `infer_kinds`).

Beyond Evidently: with `missing_is_drift=True`, a column absent from the current data or
without a single value in it is reported as drifted (method `missing`, score 1.0: the share
of current rows without a value) instead of being an error, so one broken feature in a
monitoring window is a finding, not a crash. The reference must still hold every column.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from os import PathLike
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy import stats
from scipy.spatial import distance

from configs.schema import SMALL_REFERENCE_ROWS  # registry.py: `shape[0] <= 1000` is "small"

NUM, CAT = "num", "cat"
LOW_CARDINALITY = 5  # registry.py: numerical `n_values <= 5` is tested like a category
INTEGER_CARDINALITY_LIMIT = 10  # core/datasets.py: ints with <= 10 distinct values are categorical
# name: (default threshold, drifted(score, threshold)), from each stattest module
METHODS = {
    "wasserstein": (0.1, lambda s, t: s >= t),
    "jensenshannon": (0.1, lambda s, t: s >= t),
    "ks": (0.05, lambda s, t: s <= t),
    "chisquare": (0.05, lambda s, t: s < t),
    "z": (0.05, lambda s, t: s < t),
}
# Not Evidently's: a column with no value in the current data (score: its missing share, 1.0).
MISSING = "missing"

ArrayLike: TypeAlias = np.ndarray | pd.Series | pa.Array | pa.ChunkedArray


class EmptyColumnError(ValueError):
    """A column has no usable value on one side (`side`: "reference" or "current")."""

    def __init__(self, message: str, side: str) -> None:
        super().__init__(message)
        self.side = side


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test: Evidently's method name, score, threshold and decision."""

    column: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """Per-column results and the dataset-level decision (share of drifted columns)."""

    columns: tuple[ColumnDrift, ...]
    drift_share: float
    dataset_drift: bool
    drift_share_threshold: float

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.drifted)

    def column(self, name: str) -> ColumnDrift:
        """The result for column `name` (KeyError if absent)."""
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "drift_share_threshold": self.drift_share_threshold,
            "number_of_drifted_columns": len(self.drifted_columns),
            "columns": [asdict(c) for c in self.columns],
        }


def summarize_drift(
    columns: Iterable[ColumnDrift], drift_share_threshold: float = 0.5
) -> DriftResult:
    """Dataset drift from column results: share of drifted columns `>=` the threshold."""
    columns = tuple(columns)
    if not columns:
        raise ValueError("no columns to test for drift")
    share = sum(c.drifted for c in columns) / len(columns)
    return DriftResult(columns, share, bool(share >= drift_share_threshold), drift_share_threshold)


def infer_kinds(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) names as Evidently types a frame given without a DataDefinition.

    Mirrors `core/datasets.py::infer_column_type`: float dtypes are numeric; int dtypes are
    categorical up to 10 distinct values, else numeric; bool and category are categorical;
    strings are categorical when at most half of the non-null values are distinct (else text).
    Text and other dtypes (nullable `Int64`, datetime, ...) are left out.
    """
    kinds = {name: _inferred_kind(frame[name]) for name in frame.columns}
    return [c for c, k in kinds.items() if k == NUM], [c for c, k in kinds.items() if k == CAT]


def _inferred_kind(s: pd.Series) -> str | None:
    dtype = s.dtype.name
    if dtype.startswith("float"):
        return NUM
    if dtype.startswith("int"):
        return CAT if s.nunique() <= INTEGER_CARDINALITY_LIMIT else NUM
    if dtype in ("bool", "category"):
        return CAT
    if dtype == "object":
        present = s.dropna()
        if present.empty or not (
            isinstance(present.iloc[0], str) and isinstance(present.iloc[-1], str)
        ):
            return None
    elif dtype not in ("string", "str"):
        return None
    return CAT if s.nunique() <= s.count() * 0.5 else None


def column_drift(
    reference: ArrayLike, current: ArrayLike, kind: str, column: str = ""
) -> ColumnDrift:
    """Evidently's default drift test for one column.

    Args:
        reference: Reference values (NumPy, pandas or pyarrow); NaN, null and ±inf are dropped.
        current: Current values, likewise.
        kind: "num" or "cat".
        column: Name reported in the result and in errors.

    Returns:
        The method Evidently would choose, its score, threshold and decision.

    Raises:
        EmptyColumnError: A side with no finite value (no value, for categories) left.
        ValueError: Unknown kind, or a numeric column holding something else.
    """
    if kind == NUM:
        method, score = _numeric_test(
            _finite(reference, column, "reference"), _finite(current, column, "current")
        )
    elif kind == CAT:
        method, score = _categorical_test(
            _counts(reference, column, "reference"), _counts(current, column, "current")
        )
    else:
        raise ValueError(f"column '{column}': kind must be '{NUM}' or '{CAT}', not {kind!r}")
    threshold, rule = METHODS[method]
    return ColumnDrift(column, kind, method, float(score), threshold, bool(rule(score, threshold)))


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    drift_share_threshold: float = 0.5,
    *,
    missing_is_drift: bool = False,
) -> DriftResult:
    """Drift of every listed column between two frames, as `DataDriftPreset()` decides it.

    Args:
        reference, current: the two frames.
        numeric, categorical: the columns to test, by kind.
        drift_share_threshold: dataset drift when at least this share of columns drifted.
        missing_is_drift: a column absent from `current`, or with no value in it, is drifted
            (method "missing") instead of an error.

    Raises:
        ValueError: A listed column is missing from either frame (from `reference` only, with
            `missing_is_drift`), has no value, or is listed as both kinds.
    """
    available = {"reference": reference.columns, "current": current.columns}
    if missing_is_drift:
        del available["current"]
    kinds = _kinds(numeric, categorical, available)
    return summarize_drift(
        (
            _column_or_missing(
                reference[c],
                current[c] if c in current.columns else None,
                kind,
                c,
                missing_is_drift,
            )
            for c, kind in kinds.items()
        ),
        drift_share_threshold,
    )


def detect_drift_parquet(
    reference_path: str | PathLike[str],
    current_path: str | PathLike[str],
    numeric: Sequence[str],
    categorical: Sequence[str],
    drift_share_threshold: float = 0.5,
    *,
    missing_is_drift: bool = False,
) -> DriftResult:
    """`detect_drift` on two Parquet files, reading one column of each at a time.

    Raises:
        ValueError: As `detect_drift`.
    """
    files = {"reference": pq.ParquetFile(reference_path), "current": pq.ParquetFile(current_path)}
    available = {k: f.schema_arrow.names for k, f in files.items()}
    current_names = set(available["current"])
    if missing_is_drift:
        del available["current"]
    kinds = _kinds(numeric, categorical, available)

    def read(side: str, name: str) -> pa.ChunkedArray:
        return files[side].read(columns=[name], use_threads=False).column(0)

    return summarize_drift(
        (
            _column_or_missing(
                read("reference", c),
                read("current", c) if c in current_names else None,
                kind,
                c,
                missing_is_drift,
            )
            for c, kind in kinds.items()
        ),
        drift_share_threshold,
    )


def _missing_drift(column: str, kind: str) -> ColumnDrift:
    """The result for a column without any value in the current data: drifted."""
    return ColumnDrift(column, kind, MISSING, 1.0, 1.0, True)


def _column_or_missing(
    reference: ArrayLike, current: ArrayLike | None, kind: str, column: str, missing_is_drift: bool
) -> ColumnDrift:
    if current is None:
        return _missing_drift(column, kind)
    try:
        return column_drift(reference, current, kind, column)
    except EmptyColumnError as exc:
        if missing_is_drift and exc.side == "current":
            return _missing_drift(column, kind)
        raise


# --- the tests ---


def _numeric_test(ref: np.ndarray, cur: np.ndarray) -> tuple[str, float]:
    """Sorts `ref` and `cur` in place (fresh arrays from `_finite`)."""
    std = _pandas_std(ref)  # before sorting: same summation order as Evidently's np.std(Series)
    ref.sort()
    cur.sort()
    merged = np.concatenate((ref, cur))
    merged.sort(kind="mergesort")  # two sorted runs: one merge
    deltas = np.diff(merged)
    n_values = 1 + int(np.count_nonzero(deltas))
    if n_values <= LOW_CARDINALITY:
        return _categorical_test(_sorted_counts(ref), _sorted_counts(cur))
    if ref.size <= SMALL_REFERENCE_ROWS:
        return "ks", float(stats.ks_2samp(ref, cur).pvalue)
    return "wasserstein", _wasserstein_sorted(ref, cur, merged, deltas) / max(std, 0.001)


def _categorical_test(ref: Mapping[Any, int], cur: Mapping[Any, int]) -> tuple[str, float]:
    keys = sorted(ref.keys() | cur.keys(), key=repr)  # any fixed order; Evidently's is a set's
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    ref_counts = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    cur_counts = np.array([cur.get(k, 0) for k in keys], dtype=np.float64)
    if n_ref > SMALL_REFERENCE_ROWS:
        # jensenshannon.py via utils.get_binned_data(feel_zeroes=False): shares of the union keys
        return "jensenshannon", float(
            distance.jensenshannon(ref_counts / n_ref, cur_counts / n_cur)
        )
    if len(keys) > 2:
        with np.errstate(divide="ignore", invalid="ignore"):  # a new category: p = 0, as Evidently
            p = stats.chisquare(cur_counts, ref_counts * (n_cur / n_ref)).pvalue
        return "chisquare", float(p)
    return "z", _z_test(ref, cur, n_ref, n_cur, keys)


def _z_test(ref: Mapping[Any, int], cur: Mapping[Any, int], n1: int, n2: int, keys: list) -> float:
    """z_stattest.py: two-proportion Z-test of "not the smallest value"; p = 1 when constant."""
    if len(keys) == 1:
        return 1.0
    first = min(keys)
    p1, p2 = (n1 - ref.get(first, 0)) / n1, (n2 - cur.get(first, 0)) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _wasserstein_sorted(
    u: np.ndarray, v: np.ndarray, merged: np.ndarray, deltas: np.ndarray
) -> float:
    """scipy.stats.wasserstein_distance (`_cdf_distance`, p=1) from sorted inputs, same arrays."""
    u_cdf = u.searchsorted(merged[:-1], "right") / u.size
    v_cdf = v.searchsorted(merged[:-1], "right") / v.size
    return float(np.vecdot(np.abs(u_cdf - v_cdf), deltas))


def _pandas_std(x: np.ndarray) -> float:
    """Population std as pandas' nanops.nanvar computes it (what `np.std(Series)` calls)."""
    mean = x.sum(dtype=np.float64) / x.size
    return math.sqrt(((mean - x) ** 2).sum(dtype=np.float64) / x.size)


# --- cleaning, as get_one_column_drift: replace ±inf with NaN, then dropna ---


def _finite(values: ArrayLike, column: str, side: str) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if pa.types.is_null(values.type):  # a column logged without any value
            raise EmptyColumnError(f"column '{column}' in the {side} data has no value", side)
        if not (
            pa.types.is_integer(values.type)
            or pa.types.is_floating(values.type)
            or pa.types.is_boolean(values.type)
        ):
            raise ValueError(f"column '{column}' in the {side} data is not numeric: {values.type}")
        x = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)  # null -> NaN
    elif isinstance(values, pd.Series):
        if values.isna().all():  # all None has dtype object: empty, not "not numeric"
            raise EmptyColumnError(f"column '{column}' in the {side} data has no value", side)
        if not pd.api.types.is_numeric_dtype(values):
            raise ValueError(f"column '{column}' in the {side} data is not numeric: {values.dtype}")
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise EmptyColumnError(f"column '{column}' in the {side} data has no finite value", side)
    return x


def _counts(values: ArrayLike, column: str, side: str) -> dict[Any, int]:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        vc = pc.value_counts(values)
        counts = dict(
            zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True)
        )
    else:
        counts = pd.Series(values).value_counts(dropna=True).to_dict()
    counts = {k: n for k, n in counts.items() if n > 0 and not _missing(k)}
    if not counts:
        raise EmptyColumnError(f"column '{column}' in the {side} data has no value", side)
    return counts


def _missing(key: Any) -> bool:
    return key is None or key is pd.NA or (isinstance(key, float) and not math.isfinite(key))


def _sorted_counts(sorted_values: np.ndarray) -> dict[float, int]:
    keys, counts = np.unique(sorted_values, return_counts=True)
    return dict(zip(keys.tolist(), counts.tolist(), strict=True))


def _kinds(
    numeric: Sequence[str], categorical: Sequence[str], available: Mapping[str, Iterable[str]]
) -> dict[str, str]:
    both = set(numeric) & set(categorical)
    if both:
        raise ValueError(f"columns listed as both numeric and categorical: {sorted(both)}")
    kinds = {c: NUM for c in numeric} | {c: CAT for c in categorical}
    for side, names in available.items():
        names = set(names)
        missing = [c for c in kinds if c not in names]
        if missing:
            raise ValueError(f"columns missing from the {side} data: {missing}")
    return kinds
