"""Event-time parsing: the one rule by which a project's time column becomes timestamps.

Date-time text ("2015-03-31", "2015-03-31T12:00:00+01:00") and datetime values are read as
such, whatever the unit. Numbers (or text made only of numbers) are read by `time_unit`:

- `year`: 2015 is 2015-01-01; `yyyymmdd`: 20150331 is 2015-03-31;
- `s` / `ms`: seconds / milliseconds since 1970-01-01 UTC;
- `auto` (the default) picks the one band all values fall in: years 1800-2200, dates
  18000101-22001231, seconds 1e8-9.2e9 (1973-2261), milliseconds 1e11-9.2e12; numbers that
  fit no single band are refused, with an error naming the column and the accepted forms.

A value the chosen rule cannot read (a 13th month, text that is no date) becomes NaT, which
the contract quarantines; a column of which no value can be read is refused. Timestamps come
back as naive UTC (`datetime64[ns]`), time zones converted.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import pandas as pd

from configs.cli import UserError

TimeUnit = Literal["auto", "year", "yyyymmdd", "s", "ms"]
TIME_UNITS: tuple[str, ...] = get_args(TimeUnit)
NUMERIC_UNITS = ("year", "yyyymmdd", "s", "ms")

# (unit, lowest, highest) a number must lie in for `auto` to read it in that unit
AUTO_BANDS: tuple[tuple[str, float, float], ...] = (
    ("year", 1800, 2200),
    ("yyyymmdd", 18000101, 22001231),
    ("s", 1e8, 9.2e9),
    ("ms", 1e11, 9.2e12),
)
ACCEPTED_FORMS = (
    "date-time text (2015-03-31, 2015-03-31T12:00:00Z), datetime values, or numbers read by "
    "the config key time_unit: year (2015), yyyymmdd (20150331), s or ms (seconds or "
    "milliseconds since 1970-01-01 UTC), auto (years 1800-2200, dates 18000101-22001231, "
    "seconds 1e8-9.2e9, milliseconds 1e11-9.2e12)"
)
_EPOCH_LIMIT_S = pd.Timestamp.max.timestamp()  # beyond it pandas' nanoseconds overflow


class TimeColumnError(UserError, ValueError):
    """The time column cannot be read as timestamps; the message names the column."""


def parse_times(values: pd.Series, column: str, unit: str = "auto") -> pd.Series:
    """Read a time column as naive-UTC timestamps by the module's rule.

    Args:
        values: The raw column.
        column: Its name (for errors).
        unit: How numbers are read: one of `TIME_UNITS`.

    Raises:
        TimeColumnError: `unit` is unknown; the column is boolean; `auto` finds numbers in no
            single band; or no value of the column can be read.
    """
    if unit not in TIME_UNITS:
        raise TimeColumnError(
            f"time column '{column}': time_unit '{unit}' is not one of {list(TIME_UNITS)}",
            hint=f"accepted forms: {ACCEPTED_FORMS}",
        )
    if pd.api.types.is_bool_dtype(values):
        raise _refuse(column, "holds true/false values")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    numbers = _as_numbers(values)
    if numbers is not None:
        chosen = detect_time_unit(values, column) if unit == "auto" else unit
        parsed = _from_numbers(numbers, chosen or "s")  # None: no number present
    else:
        text = values.astype(object).where(values.notna())
        parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
        parsed = parsed.dt.tz_localize(None).astype("datetime64[ns]")
    if values.notna().any() and parsed.isna().all():
        sample = ", ".join(repr(v) for v in values.dropna().astype(str).unique()[:3])
        raise _refuse(column, f"has no value that reads as a time (e.g. {sample})")
    return parsed.set_axis(values.index)


def detect_time_unit(values: pd.Series, column: str) -> str | None:
    """The unit `auto` reads a numeric time column in; None when the column is not numbers.

    Raises:
        TimeColumnError: The numbers fit no single band of `AUTO_BANDS`.
    """
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return None
    numbers = _as_numbers(values)
    if numbers is None:
        return None
    known = numbers.dropna()
    if known.empty:
        return None
    low, high = float(known.min()), float(known.max())
    whole = bool(np.all(np.mod(known, 1) == 0))
    for unit, lowest, highest in AUTO_BANDS:
        if lowest <= low and high <= highest and (whole or unit in ("s", "ms")):
            return unit
    raise _refuse(
        column,
        f"holds numbers from {low:,.6g} to {high:,.6g}, which time_unit auto cannot read as "
        "one unit; set time_unit in the config if they are years, yyyymmdd dates or epoch "
        "seconds / milliseconds",
    )


def _refuse(column: str, problem: str) -> TimeColumnError:
    return TimeColumnError(
        f"time column '{column}' {problem}; accepted forms: {ACCEPTED_FORMS}",
        hint="set time_unit next to time_column (docs/configuration.md), or fix the column",
    )


def _as_numbers(values: pd.Series) -> pd.Series | None:
    """The column as floats when every present value is a number (or numeric text), else None."""
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    present = values.dropna()
    if present.empty:
        return None
    numbers = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    if numbers.isna().any():
        return None
    return pd.to_numeric(values.astype(object).where(values.notna()), errors="coerce").astype(float)


def _from_numbers(numbers: pd.Series, unit: str) -> pd.Series:
    if unit in ("s", "ms"):
        seconds = numbers / 1000 if unit == "ms" else numbers
        seconds = seconds.where(seconds.abs() < _EPOCH_LIMIT_S)
        return pd.to_datetime(seconds, unit="s", errors="coerce").astype("datetime64[ns]")
    whole = numbers.where(np.mod(numbers, 1) == 0)
    if unit == "year":
        whole = whole.where(whole.between(1678, 2261))
        parts = pd.DataFrame({"year": whole, "month": 1, "day": 1})
    else:
        whole = whole.where(whole.between(16780101, 22611231))
        parts = pd.DataFrame(
            {"year": whole // 10000, "month": whole // 100 % 100, "day": whole % 100}
        )
    parsed = pd.to_datetime(parts, errors="coerce")
    return parsed.where(whole.notna()).astype("datetime64[ns]")


def utc_times(values: pd.Series, column: str, unit: str = "auto") -> pd.Series:
    """`parse_times`, time-zone aware in UTC (what the inference log and monitor use)."""
    return parse_times(values, column, unit).dt.tz_localize("UTC")
