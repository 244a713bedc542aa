"""Profile a raw table for a new project: feature roles, exclusions, contract facts, target.

`profile_table` is a pure function over a DataFrame; `make init-config` turns its result into
a starter config (`features/init_config.py`). Values are read the way the data contract reads
them (`features.contract`): numbers stored as text are parsed with its rules and categories
are normalised with `normalise_category`, so a contract built from the profile accepts the
table it came from.

Roles: numbers (and text that is mostly numbers, plain or formatted as "$1,234" or "45%")
are numeric features; text and booleans are categorical; an integer column with at most
`MAX_CODE_VALUES` values that cover under half of its range (codes such as 408 / 415 / 510)
is categorical, while other integers (0/1 flags, counts, 1-10 scores) stay numeric so their
order is kept. Text labels are one class whatever their case or surrounding spaces.
Excluded, each with a reason: id-like, constant, date/time-like and high-cardinality text,
single columns that predict the target almost perfectly, and near-duplicates of an earlier
column. Warned about and kept: a column almost strong enough to be a leak. An id-named column
whose values repeat, or one named for a person ('Subject', 'patient') with 20 or more repeating
values (rows of one patient or customer, which a random split would share between train and
test), is a key, not a feature, and becomes the split's group column (`split.group_column`).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from configs.cli import UserError
from features.contract import (
    binary_target,
    missing_text,
    normalise_category,
    parse_numbers,
    respelled_labels,
    target_spellings,
)
from features.timestamps import TimeColumnError, detect_time_unit, parse_times

MAX_CODE_VALUES = 10  # integer columns with at most this many values may be codes
MAX_CATEGORIES = 100  # text with more distinct values is free text or an identifier
MIN_ROWS_PER_CATEGORY = 10  # text with fewer rows per value on average is too sparse to learn
MIN_NUMERIC_SHARE = 0.95  # text whose values are numbers at least this often is numeric
# A number as a sheet formats it ("$1,234.50", "45%", "-€ 12"): the contract's parse keeps its
# digits, sign and point, so it reads the value as written (45% is 45).
FORMATTED_NUMBER = re.compile(r"^\s*[-+]?\s*[$€£¥]?\s*[-+]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?\s*%?\s*$")
LEAK_AUC = 0.99  # a single column with a higher ROC-AUC on its own likely leaks the target
LEAK_REVIEW_AUC = 0.98  # above this (and up to LEAK_AUC) the column is kept with a warning
NEAR_UNIQUE = 0.5  # a column with distinct values for this share of rows tells rows apart
DUPLICATE_CORR = 0.99  # |Pearson correlation| above which two numeric columns are duplicates
MAX_DUPLICATE_VALUES = 50  # one-to-one value maps are checked between columns this small
MIN_GROUPS = 20  # a grouped split needs this many groups (an id-named column with fewer: a code)
MIN_CLASS_ROWS = 10  # fewer rows of a class cannot be split into train / valid / test
MAX_SLICES = 2
PAIR_SAMPLE_ROWS = 100_000  # pairwise and target checks run on a seeded sample this large
TWIN_CELLS = 20_000_000  # rows x numeric columns the correlation check holds (3 x 160 MB)
CONVENTIONAL_POSITIVES = {
    frozenset({"0", "1"}): "1",
    frozenset({"false", "true"}): "true",
    frozenset({"no", "yes"}): "yes",
    frozenset({"n", "y"}): "y",
}
ID_TOKENS = {"id", "ids", "uuid", "guid"}
ID_NAMES = {"rownames", "rowname", "row", "rownum", "row_number", "index", "unnamed: 0"}
# A column named for one of these whose values repeat over `MIN_GROUPS` or more is an entity's
# key (several visits of a subject), not a feature; the split groups by it.
ENTITY_TOKENS = {"subject", "patient", "customer", "client", "participant", "person", "user"}
DATE_PATTERN = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{4})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)

Role = Literal["numeric", "categorical"]


class ProfileError(UserError, ValueError):
    """The table cannot make a binary-classification project; the message names the column."""


@dataclass(frozen=True)
class ColumnProfile:
    """One feature as the contract will see it."""

    name: str
    role: Role
    null_fraction: float
    minimum: float | None = None  # numeric: observed range and median of the parsed values
    median: float | None = None
    maximum: float | None = None
    integer: bool = False  # numeric: every value is a whole number
    categories: tuple[str, ...] = ()  # categorical: normalised values, most frequent first
    smallest_category_share: float = 0.0  # categorical: rows of the rarest value / all rows


@dataclass(frozen=True)
class Exclusion:
    """A column left out of the features, and why."""

    column: str
    kind: Literal["id", "constant", "time", "text", "leak", "duplicate"]
    reason: str


@dataclass(frozen=True)
class TableProfile:
    """What a starter config needs to know about a table."""

    rows: int
    columns: tuple[str, ...]
    target: str
    positive_label: str | int
    label_reason: str
    class_counts: dict[str, int]
    positive_rate: float
    features: tuple[ColumnProfile, ...]
    excluded: tuple[Exclusion, ...]
    notes: tuple[str, ...]  # warnings about kept columns (rows the contract will quarantine)
    quarantine_fraction: float  # share of rows the contract built from this profile quarantines
    duplicate_rows: int  # rows the contract drops as exact duplicates (over the used columns)
    natural_repeats: int  # rows that repeat by nature, kept (contract.drop_duplicates false)
    slices: tuple[str, ...]
    id_column: str | None = None
    time_column: str | None = None
    time_unit: str | None = None  # how a numeric time column is read (None: not numbers)
    group_column: str | None = None  # rows of one entity: kept together by the split

    @property
    def one_vs_rest(self) -> bool:
        """More than two classes: the positive one is modelled against all the others."""
        return len(self.class_counts) > 2

    @property
    def numeric(self) -> tuple[str, ...]:
        """Numeric feature names, in table order."""
        return tuple(c.name for c in self.features if c.role == "numeric")

    @property
    def categorical(self) -> tuple[str, ...]:
        """Categorical feature names, in table order."""
        return tuple(c.name for c in self.features if c.role == "categorical")


def profile_table(
    frame: pd.DataFrame,
    target: str,
    *,
    id_column: str | None = None,
    time_column: str | None = None,
    time_unit: str = "auto",
    positive_label: str | None = None,
    group_column: str | None = None,
    seed: int = 0,
) -> TableProfile:
    """Infer feature roles, exclusions, contract facts and the positive class of a table.

    Args:
        frame: The raw table, as `features.sources.read_table` returns it.
        target: The label column (binary).
        id_column: A unique row id column (not a feature), if any.
        time_column: An event-time column (not a feature), if any.
        time_unit: How a numeric time column is read (`features.timestamps.TIME_UNITS`).
        positive_label: The target value that counts as positive, as text; inferred when None
            (the 1 / true / yes of such a pair, else the minority class).
        group_column: Rows sharing its value are one entity's, kept together by the split
            (not a feature); inferred from a repeating id-named column when None.
        seed: Seed of the row sample that pairwise and target checks use on large tables.

    Raises:
        ProfileError: The target, id, time or group column is missing; the target has one
            class, more than two, too few rows of a class, or does not contain
            `positive_label`; or no usable feature is left; or the time column cannot be read
            as times; or the group column has too few groups or comes with a time column.
    """
    columns = tuple(map(str, frame.columns))
    frame = frame.set_axis(columns, axis=1)
    _check_named_columns(frame, target, id_column, time_column, group_column)
    labels = target_spellings(frame[target])
    label, label_reason, counts = _positive_label(labels, target, positive_label)
    known = labels.notna()
    y = binary_target(labels, label, target, one_vs_rest=len(counts) > 2)[0]

    excluded: list[Exclusion] = []
    notes: list[str] = []
    if labels is not frame[target]:
        notes.extend(_respelling_notes(frame[target], labels, target))
    bad_rows = ~known
    if (~known).any():
        notes.append(
            f"target '{target}': {int((~known).sum()):,} rows without a label are quarantined"
        )
    unit: str | None = None
    if time_column:
        try:
            times = parse_times(frame[time_column], time_column, time_unit)
            unit = (
                detect_time_unit(frame[time_column], time_column)
                if time_unit == "auto"
                else time_unit
            )
        except TimeColumnError as exc:
            raise ProfileError(str(exc), hint=exc.hint) from exc
        if times.isna().any():
            notes.append(
                f"time column '{time_column}': {int(times.isna().sum()):,} values are not "
                "timestamps; those rows are quarantined"
            )
        bad_rows |= times.isna()

    candidates: list[ColumnProfile] = []
    parsed_numbers: dict[str, pd.Series] = {}
    unparsable: dict[str, pd.Series] = {}
    for column in columns:
        if column in (target, id_column, time_column, group_column):
            continue
        verdict = _column(frame[column], len(frame))
        if isinstance(verdict, Exclusion):
            excluded.append(verdict)
            continue
        profile, numbers = verdict
        candidates.append(profile)
        if numbers is not None:
            parsed_numbers[column], unparsable[column] = numbers

    kept, dropped = _screen(candidates, frame, parsed_numbers, y, _sample(known, seed), notes)
    excluded.extend(dropped)
    if not kept:
        reasons = "; ".join(f"'{e.column}' {e.reason}" for e in excluded) or "none"
        raise ProfileError(
            f"no usable feature left besides target '{target}' (excluded: {reasons})",
            hint="add feature columns to the table, or check the exclusions above",
        )
    for column in (c.name for c in kept if c.name in unparsable):
        said = frame[column][missing_text(frame[column])].astype(str).str.strip()
        if len(said):
            words = ", ".join(map(repr, said.value_counts().index[:3]))
            notes.append(f"'{column}': {len(said):,} values such as {words} read as missing")
        bad = unparsable[column]
        if bad.any():
            notes.append(
                f"'{column}': numbers stored as text; {int(bad.sum()):,} values do not parse "
                "and their rows are quarantined"
            )
            bad_rows |= bad
    used = [c.name for c in kept] + [target, *filter(None, [time_column])]
    id_column, repeats, bad_ids, natural_repeats = _row_ids(frame, used, id_column, excluded, notes)
    if time_column is None and group_column is None:
        group_column = _entity_group(frame, excluded, notes)
    bad_rows = (bad_rows | bad_ids) & ~repeats  # the contract drops repeats before it checks
    order = {c: i for i, c in enumerate(columns)}
    return TableProfile(
        rows=len(frame),
        columns=columns,
        target=target,
        positive_label=label,
        label_reason=label_reason,
        class_counts=counts,
        positive_rate=float(y[known & ~repeats & ~bad_rows].mean()),
        features=tuple(kept),
        excluded=tuple(sorted(excluded, key=lambda e: order[e.column])),
        notes=tuple(notes),
        quarantine_fraction=float(bad_rows.sum() / (~repeats).sum()),
        duplicate_rows=int(repeats.sum()),
        natural_repeats=natural_repeats,
        slices=_slices(kept),
        id_column=id_column,
        time_column=time_column,
        time_unit=unit,
        group_column=group_column,
    )


def _row_ids(
    frame: pd.DataFrame,
    used: list[str],
    id_column: str | None,
    excluded: list[Exclusion],
    notes: list[str],
) -> tuple[str | None, pd.Series, pd.Series, int]:
    """The id column (given, or a unique id-like column when rows would otherwise be dropped
    as repeats), the rows the contract drops as exact repeats, the rows with a missing or
    repeated id that it quarantines, and how many repeats are kept instead, as rows that
    repeat by nature (`_repeat_by_nature`). Appends a note for each."""
    repeats = frame.duplicated(subset=[*filter(None, [id_column]), *used])
    if repeats.any() and id_column is None:
        id_column = next(
            (
                e.column
                for e in excluded
                if e.kind == "id" and frame[e.column].notna().all() and frame[e.column].is_unique
            ),
            None,
        )
        if id_column is not None:
            notes.append(
                f"'{id_column}' is used as id_column (unique per row, not a feature): without "
                f"it the contract would drop {int(repeats.sum()):,} rows that repeat over the "
                "used columns as duplicates"
            )
            repeats = frame.duplicated(subset=[id_column, *used])
    if repeats.any() and id_column is None and _repeat_by_nature(frame, used):
        notes.append(
            f"{int(repeats.sum()):,} rows ({repeats.mean():.1%}) repeat exactly over the used "
            f"columns, and none of those columns has distinct values for {NEAR_UNIQUE:.0%} of "
            "the rows: they repeat by nature, kept as observations (contract.drop_duplicates: "
            "false; set it true if the table holds records loaded twice)"
        )
        kept = pd.Series(False, index=frame.index)
        return None, kept, kept, int(repeats.sum())
    if repeats.any():
        notes.append(
            f"{int(repeats.sum()):,} rows ({repeats.mean():.1%}) repeat exactly over the used "
            "columns; the contract drops them as duplicates (rates here are without them)"
        )
    bad_ids = pd.Series(False, index=frame.index)
    if id_column:
        ids = frame[id_column][~repeats]
        bad_ids[ids.index] = ids.isna() | ids.duplicated(keep="first")
        if bad_ids.any():
            notes.append(
                f"id column '{id_column}': {int(bad_ids.sum()):,} missing or repeated ids; "
                "those rows are quarantined"
            )
    return id_column, repeats, bad_ids, 0


def _repeat_by_nature(frame: pd.DataFrame, used: list[str]) -> bool:
    """No used column could tell rows apart: each has distinct values for under NEAR_UNIQUE
    of the rows (a double-loaded table with a measurement in it repeats where the
    measurement cannot)."""
    return all(frame[column].nunique() < NEAR_UNIQUE * len(frame) for column in used)


def _entity_group(frame: pd.DataFrame, excluded: list[Exclusion], notes: list[str]) -> str | None:
    """The first id-named column whose values repeat over at least `MIN_GROUPS` values: rows of
    one entity (a patient, a customer) that a random split would put on both sides, flattering
    the test score; the split keeps them together. Appends a note for each such column."""
    group = None
    for column in (e.column for e in excluded if e.kind == "id"):
        ids = frame[column].dropna()
        entities = ids.nunique()
        if not 1 < entities < len(ids):
            continue
        said = f"'{column}' repeats ({entities:,} values on {len(ids):,} rows)"
        if group is None and entities >= MIN_GROUPS:
            group = column
            notes.append(
                f"{said}: read as an entity; split.group_column keeps each value's rows in one "
                "of train / validation / test, so the test score is not flattered by entities "
                "seen in training (remove that line if its rows are not one entity's)"
            )
        else:
            notes.append(
                f"{said}: if it names an entity, a random split puts the same entity in train "
                "and test and the test score flatters the model; pass it as --group (make: "
                "GROUP=) or split by time (--time)"
            )
    return group


# -- target ----------------------------------------------------------------------------------


def _check_named_columns(
    frame: pd.DataFrame,
    target: str,
    id_column: str | None,
    time_column: str | None,
    group_column: str | None = None,
) -> None:
    have = list(frame.columns)
    named = (("--id", id_column), ("--time", time_column), ("--group", group_column))
    for flag, column in (("target", target), *named):
        if column is not None and column not in have:
            raise ProfileError(
                f"{flag} column '{column}' is not in the table; its columns: {have}",
                hint=f"pass one of the columns above as {flag.lstrip('-').upper()}",
            )
    for flag, column in named:
        if column == target:
            raise ProfileError(
                f"{flag} column '{column}' is the target; name a different column",
                hint=f"drop {flag.lstrip('-').upper()}= or name another column",
            )
    if group_column is None:
        return
    if time_column is not None or group_column == id_column:
        raise ProfileError(
            f"--group column '{group_column}' keeps an entity's rows together in a random split; "
            "it cannot be the --id column or come with --time (a split by time)",
            hint="drop GROUP=, or drop TIME= / ID= or name another column",
        )
    groups = frame[group_column].nunique()
    if groups < MIN_GROUPS:
        raise ProfileError(
            f"--group column '{group_column}' has {groups} values; a grouped split needs at "
            f"least {MIN_GROUPS}",
            hint="drop GROUP= or name the column of the entity (a patient, a customer)",
        )


def _positive_label(
    labels: pd.Series, target: str, given: str | None
) -> tuple[str | int, str, dict[str, int]]:
    """The positive class (typed as the contract compares it), why, and rows per class."""
    counts = labels.value_counts(dropna=True)
    names = {str(value): value for value in counts.index}
    by_name = {str(value): int(n) for value, n in counts.items()}
    if len(counts) == 0:
        raise ProfileError(
            f"target '{target}' has no values (every row is missing)",
            hint="choose a TARGET column that holds the outcome",
        )
    if len(counts) == 1:
        only = next(iter(by_name))
        raise ProfileError(
            f"target '{target}' has a single class ('{only}', {by_name[only]:,} rows); "
            "a classifier needs both outcomes",
            hint="use a table with both outcomes, or another TARGET column",
        )
    if len(counts) > 2 and given is None:
        shown = sorted(by_name)[:20]
        raise ProfileError(
            f"target '{target}' has {len(counts)} classes, binary is needed: {shown}"
            + (" ..." if len(counts) > 20 else ""),
            hint="pass --positive-label CLASS to model that class against the others "
            "(one_vs_rest), or derive a yes/no column and pass it as TARGET",
        )
    chosen = _match_label(names, given) if given is not None else None
    if len(counts) > 2:  # one against the rest (a label was given): two sides to fill
        side = {str(chosen): by_name[str(chosen)]} if chosen is not None else {}
        rest = sum(by_name.values()) - sum(side.values())
        small = {k: v for k, v in side.items() if v < MIN_CLASS_ROWS}
        if rest < MIN_CLASS_ROWS:
            small["(the other classes)"] = rest
    else:
        small = {k: v for k, v in by_name.items() if v < MIN_CLASS_ROWS}
    if small:
        raise ProfileError(
            f"target '{target}' has too few rows of class(es) {small}; "
            f"at least {MIN_CLASS_ROWS} per class are needed to split and evaluate",
            hint="use a larger table",
        )
    if given is not None:
        value = chosen
        if value is None:
            raise ProfileError(
                f"--positive-label '{given}' is not a class of target '{target}'; "
                f"its classes: {sorted(by_name)}",
                hint=f"pass one of {sorted(by_name)} as --positive-label, or leave it out",
            )
        reason = "given on the command line"
    else:
        lowered = {k.strip().lower(): k for k in by_name}
        conventional = CONVENTIONAL_POSITIVES.get(frozenset(lowered))
        if conventional is not None:
            value = names[lowered[conventional]]
            reason = f"the conventional positive of {sorted(by_name)}"
        else:
            # the rarer class is usually the event to predict; a tie takes the later name
            rarest = min(sorted(by_name, reverse=True), key=lambda k: by_name[k])
            value = names[rarest]
            reason = "the minority class"
    return _typed_label(labels, value), reason, by_name


def _match_label(names: dict[str, object], given: str) -> object | None:
    """The class named `given`: as text whatever its case, or as the same number (`1` for a
    class 1.0)."""
    if given in names:
        return names[given]
    folded = {name.casefold(): value for name, value in names.items()}
    if given.strip().casefold() in folded:
        return folded[given.strip().casefold()]
    try:
        number = float(given)
    except ValueError:
        return None
    for value in names.values():
        if isinstance(value, int | float | np.number) and float(value) == number:
            return value
    return None


def _typed_label(labels: pd.Series, value: object) -> str | int:
    """The label as the contract compares it: an int for a numeric (or boolean) column, whose
    values are compared as numbers; the text otherwise."""
    if pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        number = float(value)  # type: ignore[arg-type]
        if not number.is_integer():
            raise ProfileError(
                f"target '{labels.name}' has a non-integer class {number:g}; "
                "the positive label must be a whole number or text",
                hint="map the target to 0/1 or yes/no first",
            )
        return int(number)
    return str(value)


def _respelling_notes(raw: pd.Series, spelled: pd.Series, target: str) -> list[str]:
    """A note when text labels differ from their class's spelling only in case or spaces."""
    respelled = respelled_labels(raw, spelled)
    if not respelled.any():
        return []
    example = raw[respelled].iloc[0]
    return [
        f"target '{target}': {int(respelled.sum()):,} labels differ from their class only in "
        f"case or surrounding spaces (e.g. {example!r} is read as {spelled[respelled].iloc[0]!r})"
    ]


# -- one column ------------------------------------------------------------------------------


def _column(
    values: pd.Series, rows: int
) -> Exclusion | tuple[ColumnProfile, tuple[pd.Series, pd.Series] | None]:
    """Profile one column alone: an exclusion, or its profile and, for a numeric column, its
    parsed values and the mask of values the contract cannot parse (numbers stored as text)."""
    name = str(values.name)
    present = values.dropna()
    distinct = present.nunique()
    if distinct <= 1:
        shown = f"always {present.tolist()[0]!r}" if distinct else "always missing"
        return Exclusion(name, "constant", f"is constant ({shown}): it carries no information")
    if _named_like_id(name):
        return Exclusion(name, "id", "is named like an id: an identifier, not a feature")
    if _last_token(name) in ENTITY_TOKENS and MIN_GROUPS <= distinct < present.size:
        return Exclusion(
            name, "id", f"names an entity ({distinct:,} values on {present.size:,} rows): a key, "
            "not a feature"
        )  # fmt: skip
    if pd.api.types.is_datetime64_any_dtype(values):
        return Exclusion(name, "time", _date_reason(name, present.iloc[0]))
    if pd.api.types.is_bool_dtype(values) or pd.api.types.infer_dtype(present) == "boolean":
        return _categorical(values, rows), None
    if pd.api.types.is_numeric_dtype(values):
        integer = pd.api.types.is_integer_dtype(values)
        if integer and distinct == rows and _width(present) == rows:
            return Exclusion(name, "id", "is id-like (a run of unique integers, one per row)")
        if integer and distinct <= MAX_CODE_VALUES and 2 * distinct < _width(present):
            return _categorical(values, rows), None
        numbers, clean = values.astype(float), pd.Series(False, index=values.index)
        return _numeric(values, numbers, clean), (numbers, clean)
    text = present.astype(str)
    if _dates(text):
        return Exclusion(name, "time", _date_reason(name, text.iloc[0]))
    is_number = pd.to_numeric(text, errors="coerce").notna() | text.str.match(FORMATTED_NUMBER)
    said_missing = missing_text(text)  # 'unknown', '-': missing, whatever the column
    if is_number.any() and is_number.sum() >= MIN_NUMERIC_SHARE * (~said_missing).sum():
        parsed, _, unparsable = parse_numbers(values)  # the contract's parse: junk repaired
        return _numeric(values, parsed, unparsable), (parsed, unparsable)
    if distinct == rows:
        return Exclusion(name, "id", f"is id-like (unique per row, e.g. {text.iloc[0]!r})")
    limit = min(MAX_CATEGORIES, rows // MIN_ROWS_PER_CATEGORY)
    if distinct > limit:
        return Exclusion(
            name,
            "text",
            f"is high-cardinality text ({distinct:,} values in {rows:,} rows, more than "
            f"{limit}): free text or a code; group or encode it yourself",
        )
    return _categorical(values, rows), None


def _width(present: pd.Series) -> int:
    """How many integers the observed range holds (a code's values cover few of them)."""
    return int(present.max() - present.min()) + 1


def _named_like_id(name: str) -> bool:
    if name.strip().lower() in ID_NAMES:
        return True
    return _last_token(name) in ID_TOKENS


def _last_token(name: str) -> str:
    """The name's last word, lower case ('patientID' -> 'id', 'Subject' -> 'subject')."""
    tokens = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)
    return tokens[-1].lower() if tokens else ""


def _dates(text: pd.Series) -> bool:
    sample = text.head(1000)
    return bool(sample.str.match(DATE_PATTERN).mean() >= 0.9)


def _date_reason(name: str, example: object) -> str:
    quoted = shlex.quote(name)
    return (
        f"looks like a date/time (e.g. '{example}'): pass --time {quoted} (make: "
        f"TIME={quoted}) to split by time, or derive features from it"
    )


def _numeric(values: pd.Series, parsed: pd.Series, unparsable: pd.Series) -> ColumnProfile:
    present = parsed.dropna()
    return ColumnProfile(
        name=str(values.name),
        role="numeric",
        null_fraction=float((parsed.isna() & ~unparsable).mean()),  # missing words included
        minimum=float(present.min()),
        median=float(present.median()),
        maximum=float(present.max()),
        integer=bool((present == present.round()).all()),
    )


def _categorical(values: pd.Series, rows: int) -> ColumnProfile:
    counts = normalise_category(values).value_counts(dropna=True)
    return ColumnProfile(
        name=str(values.name),
        role="categorical",
        null_fraction=float(values.isna().mean()),
        categories=tuple(map(str, counts.index)),
        smallest_category_share=float(counts.min() / rows),
    )


# -- columns against the target and each other -----------------------------------------------


def _sample(known: pd.Series, seed: int) -> pd.Index:
    """Labelled rows for the pairwise and target checks (a seeded sample of large tables)."""
    index = known[known].index
    if len(index) <= PAIR_SAMPLE_ROWS:
        return index
    return pd.Index(np.random.default_rng(seed).choice(index, PAIR_SAMPLE_ROWS, replace=False))


def _screen(
    candidates: list[ColumnProfile],
    frame: pd.DataFrame,
    parsed: dict[str, pd.Series],
    y: pd.Series,
    rows: pd.Index,
    notes: list[str],
) -> tuple[list[ColumnProfile], list[Exclusion]]:
    """Drop target leaks, then later near-duplicates of kept columns (table order); append a
    note for each kept column strong enough alone to be a leak worth reviewing."""
    target = y.loc[rows].to_numpy()
    kept: list[ColumnProfile] = []
    dropped: list[Exclusion] = []
    codes: dict[str, pd.Series] = {}
    numbers = _KeptNumbers(len(rows), sum(column.name in parsed for column in candidates))
    for column in candidates:
        name = column.name
        if name in parsed:
            values = parsed[name].loc[rows]
            score = values.fillna(values.min() - 1.0)  # missingness alone may leak too
        else:
            values = frame[name].loc[rows]
            keys = normalise_category(values).fillna("<missing>")
            score = keys.map(pd.Series(target, index=keys.index).groupby(keys).mean())
        auc = _auc(target, score.to_numpy())
        auc = max(auc, 1.0 - auc)
        if auc > LEAK_AUC:
            dropped.append(Exclusion(name, "leak", _leak_reason(values, target, auc)))
            continue
        twin = _twin(name, values, numbers if name in parsed else None, codes)
        if twin is not None:
            dropped.append(twin)
            continue
        kept.append(column)
        if name in parsed:
            numbers.add(name, values)
        if auc > LEAK_REVIEW_AUC:
            notes.append(
                f"'{name}' predicts the target strongly on its own (ROC-AUC {auc:.4f}); kept, "
                "but check it is known before the outcome (else exclude it: a leak)"
            )
        if values.nunique(dropna=False) <= MAX_DUPLICATE_VALUES:
            codes[name] = values.astype(str)
    return kept, dropped


def _auc(target: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC by the rank sum (Mann-Whitney U), ties counted half as in `roc_auc_score`; a
    call of this is about 40 times cheaper than sklearn's checks and curve on a wide table."""
    from scipy.stats import rankdata

    positives = target == 1
    n_pos = int(positives.sum())
    n_neg = len(target) - n_pos
    return float((rankdata(score)[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _leak_reason(values: pd.Series, target: np.ndarray, auc: float) -> str:
    pairs = pd.DataFrame({"v": values.astype(str).to_numpy(), "y": target}).drop_duplicates()
    if len(pairs) == 2 and pairs["v"].nunique() == 2:
        return "is a copy of the target (one value per class): it leaks the label"
    return (
        f"predicts the target almost perfectly on its own (ROC-AUC {auc:.3f}): it likely "
        "leaks the label (recorded after the outcome)"
    )


class _KeptNumbers:
    """The kept numeric columns, for one vectorised correlation pass per new column.

    Pearson correlation over the rows where both columns have a value (as pandas'
    `Series.corr`), from six matrix-vector products: each column is stored centred on its
    mean (correlation does not move with a shift), missing values as 0 with a presence mask.
    Above TWIN_CELLS (rows x columns) it reads every step-th row.
    """

    def __init__(self, rows: int, capacity: int) -> None:
        self.names: list[str] = []
        self._step = -(-rows * capacity // TWIN_CELLS) or 1
        shape = (len(range(0, rows, self._step)), capacity)
        # Column-major: the kept columns [:, :k] are one contiguous block.
        self._values = np.zeros(shape, order="F")  # centred, 0 where missing
        self._squares = np.zeros(shape, order="F")
        self._present = np.zeros(shape, order="F")

    def _centred(self, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        array = values.to_numpy(dtype=float, na_value=np.nan)[:: self._step]
        present = ~np.isnan(array)
        centre = array[present].mean() if present.any() else 0.0
        return np.where(present, array - centre, 0.0), present.astype(float)

    def add(self, name: str, values: pd.Series) -> None:
        column = len(self.names)
        self._values[:, column], self._present[:, column] = self._centred(values)
        self._squares[:, column] = self._values[:, column] ** 2
        self.names.append(name)

    def twin(self, values: pd.Series) -> tuple[str, float] | None:
        """The first kept column with |correlation| above DUPLICATE_CORR, and that value."""
        if not self.names:
            return None
        x, a = self._centred(values)
        k = len(self.names)
        y, yy, b = self._values[:, :k], self._squares[:, :k], self._present[:, :k]
        n, sum_x, sum_y = b.T @ a, b.T @ x, y.T @ a
        sum_xy, sum_xx, sum_yy = y.T @ x, b.T @ (x * x), yy.T @ a
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = (n * sum_xy - sum_x * sum_y) / np.sqrt(
                (n * sum_xx - sum_x**2) * (n * sum_yy - sum_y**2)
            )
        hits = np.flatnonzero(np.abs(corr) > DUPLICATE_CORR)  # NaN (constant, n < 2): no
        return (self.names[hits[0]], float(abs(corr[hits[0]]))) if len(hits) else None


def _twin(
    name: str, values: pd.Series, numbers: _KeptNumbers | None, codes: dict[str, pd.Series]
) -> Exclusion | None:
    """The kept column this one duplicates, if any: |corr| above the bar (`numbers`: this is
    a numeric column), or the same values under another name (a one-to-one map, e.g.
    'female'/'male' and 1/0)."""
    twin = numbers.twin(values) if numbers is not None else None
    if twin is not None:
        other, corr = twin
        return Exclusion(
            name, "duplicate", f"is a near-duplicate of '{other}' (|correlation| {corr:.3f})"
        )
    if values.nunique(dropna=False) > MAX_DUPLICATE_VALUES:
        return None
    mine = values.astype(str)
    for other, theirs in codes.items():
        if mine.nunique() != theirs.nunique():
            continue
        if pd.DataFrame({"a": mine, "b": theirs}).drop_duplicates().shape[0] == mine.nunique():
            return Exclusion(
                name,
                "duplicate",
                f"is a near-duplicate of '{other}' (the same values under other names)",
            )
    return None


def _slices(kept: list[ColumnProfile]) -> tuple[str, ...]:
    """Up to two categorical features with 2-10 values, the most even first."""
    small = [
        c for c in kept if c.role == "categorical" and 2 <= len(c.categories) <= MAX_CODE_VALUES
    ]
    ranked = sorted(small, key=lambda c: -c.smallest_category_share)
    return tuple(c.name for c in ranked[:MAX_SLICES])
