"""Row-level data contract: repair what a rule says how to repair, quarantine the rest.

Repairs: exact duplicate rows dropped (unless `contract.drop_duplicates` is false), numbers
stored as text with junk parsed, category spellings normalised (case, spaces, hyphens,
configured aliases). Quarantined, with a reason per row ("column: rule (value)"): unparsable
numbers, out-of-range values, unknown categories, missing target, missing or duplicate ids,
unparsable timestamps. Batch-level expectations live in `features.expectations`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from configs.schema import ProjectConfig
from features.timestamps import parse_times

QUARANTINE_REASON = "quarantine_reason"
# Text a numeric column writes for "no value" (compared stripped, case-folded): read as missing,
# not quarantined as "not a number". pandas' own markers ('NA', 'N/A', 'null', ...) never
# reach the parse; '#DIV/0!' and its kin are a spreadsheet's formula errors.
MISSING_TEXT = frozenset(
    {"-", "--", "---", ".", "?", "unknown", "missing", "none", "na", "n/a", "n.a.", "nan",
     "null", "not available", "#n/a", "#div/0!", "#value!", "#num!", "#ref!", "#name?",
     "#null!"}
)  # fmt: skip


class ContractError(ValueError):
    """The table cannot be checked at all (e.g. a required column is missing)."""


@dataclass(frozen=True)
class CleanResult:
    """The clean table, the quarantined rows with reasons, and counts of each repair."""

    clean: pd.DataFrame
    quarantine: pd.DataFrame
    repairs: dict[str, int] = field(default_factory=dict)

    @property
    def quarantine_fraction(self) -> float:
        """Share of (de-duplicated) rows that were quarantined."""
        total = len(self.clean) + len(self.quarantine)
        return len(self.quarantine) / total if total else 0.0


def required_columns(config: ProjectConfig) -> list[str]:
    """Columns the raw table must have, in output order."""
    extra = [c for c in (config.id_column, config.time_column, config.split.group_column) if c]
    return list(dict.fromkeys([*extra, *config.features, config.target]))


def check_columns(frame: pd.DataFrame, config: ProjectConfig) -> None:
    """Raise `ContractError` naming every required column the table lacks."""
    missing = [c for c in required_columns(config) if c not in frame.columns]
    if missing:
        raise ContractError(
            f"column(s) missing from the data: {missing} (required by project '{config.name}'; "
            f"the data has: {sorted(map(str, frame.columns))})"
        )


def normalise_category(values: pd.Series, aliases: dict[str, str] | None = None) -> pd.Series:
    """Lower-case, strip, join words with '_' and apply aliases; missing stays missing.

    Each distinct value is normalised once (a category column has few), then mapped back.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    text = pd.Series(uniques, dtype="string").str.strip().str.lower()
    text = text.str.replace(r"[\s\-]+", "_", regex=True)
    if aliases:
        text = text.replace(aliases)
    normalised = np.append(text.astype(object).where(text.notna(), np.nan).to_numpy(), np.nan)
    return pd.Series(normalised[codes], index=values.index, name=values.name, dtype=object)


def clean_rows(frame: pd.DataFrame, config: ProjectConfig) -> CleanResult:
    """Apply the row-level contract of `config` to a raw table.

    Returns:
        The clean table (required columns only; numeric features as float, categories
        normalised, target as 0/1 int), the quarantined raw rows with a reason column, and
        the number of repairs per rule.

    Raises:
        ContractError: A required column is missing or the target is not binary.
    """
    check_columns(frame, config)
    raw = frame[required_columns(config)]
    deduped = raw.drop_duplicates() if config.contract.drop_duplicates else raw
    repairs = {"exact duplicate rows dropped": len(raw) - len(deduped)}
    out = deduped.copy()
    reasons = pd.Series("", index=out.index, dtype=object)

    def flag(mask: pd.Series, text: str, values: pd.Series | None = None) -> None:
        """Append `text`, and each flagged row's value in brackets when `values` are given, to
        the flagged rows' reasons (built for those rows only)."""
        if mask.any():
            shown = text if values is None else text + " (" + values[mask].astype(str) + ")"
            reasons[mask] = reasons[mask] + shown + "; "

    for column in config.numeric_features:
        parsed, repaired, bad = parse_numbers(out[column])
        repairs[f"{column}: number parsed from text"] = int(repaired.sum())
        flag(bad, f"{column}: not a number", out[column])
        out[column] = parsed
        rule = config.contract.columns.get(column)
        if rule is not None and rule.min is not None:
            flag(parsed < rule.min, f"{column}: below min {rule.min:g}", parsed)
        if rule is not None and rule.max is not None:
            flag(parsed > rule.max, f"{column}: above max {rule.max:g}", parsed)

    for column in config.categorical_features:
        rule = config.contract.columns.get(column)
        normalised = normalise_category(out[column], rule.aliases if rule else None)
        changed = normalised.notna() & (normalised != out[column].astype(object))
        repairs[f"{column}: spelling normalised"] = int(changed.sum())
        out[column] = normalised
        if rule is not None and rule.categories is not None:
            unknown = normalised.notna() & ~normalised.isin(rule.categories)
            flag(unknown, f"{column}: unknown category", normalised)

    raw_target = out[config.target]
    classes = target_spellings(raw_target)
    target, target_bad = binary_target(
        classes, config.positive_label, config.target, one_vs_rest=config.one_vs_rest
    )
    flag(target_bad, f"{config.target}: missing target")
    if classes is not raw_target:  # a text target
        respelled = respelled_labels(raw_target, classes)
        repairs[f"{config.target}: label spelling normalised"] = int(respelled.sum())
    out[config.target] = target

    if config.id_column:
        ids = out[config.id_column]
        flag(ids.isna(), f"{config.id_column}: missing id")
        flag(ids.notna() & ids.duplicated(keep="first"), f"{config.id_column}: duplicate id")
    if config.time_column:
        times = parse_times(out[config.time_column], config.time_column, config.time_unit)
        flag(times.isna(), f"{config.time_column}: not a timestamp")
        out[config.time_column] = times

    bad_rows = reasons != ""
    quarantine = deduped[bad_rows].copy()
    quarantine[QUARANTINE_REASON] = reasons[bad_rows].str.rstrip("; ")
    clean = out[~bad_rows].reset_index(drop=True)
    clean[config.target] = clean[config.target].astype(int)
    return CleanResult(clean=clean, quarantine=quarantine, repairs=repairs)


def missing_text(values: pd.Series) -> pd.Series:
    """Where a value is text that means "no value" (MISSING_TEXT: 'unknown', '-', ...)."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return pd.Series(False, index=values.index)
    return values.astype("string").str.strip().str.casefold().isin(MISSING_TEXT)


def parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse a column to float; returns (parsed, repaired-from-text mask, unparsable mask).

    A missing-value word ('unknown', '-': `missing_text`) is missing, neither repaired nor
    unparsable.
    """
    direct = pd.to_numeric(values, errors="coerce")
    failed = direct.isna() & values.notna() & ~missing_text(values)
    if not failed.any():
        return direct.astype(float), failed, failed
    text = values[failed].astype(str)
    # A comma that is not a thousands separator ('2,5') is a decimal comma or junk: stripping
    # it would read 25, so the value stays unparsable.
    decimal_comma = text.str.contains(r",(?!\d{3}(?!\d))", regex=True)
    rescued = pd.to_numeric(text.str.replace(r"[^0-9.\-]", "", regex=True), errors="coerce")
    rescued = rescued.mask(decimal_comma)
    parsed = direct.astype(float).copy()
    parsed[failed] = rescued
    repaired = failed & parsed.notna()
    return parsed, repaired, failed & parsed.isna()


def target_spellings(values: pd.Series) -> pd.Series:
    """The target with each text class written one way: its most frequent spelling, stripped
    ('No ', 'no' and 'No' are one class, read as 'No'; a blank is missing). Numbers and
    booleans as they are."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values
    text = values.astype("string").str.strip()
    text = text.mask(text == "")
    keys = text.str.casefold()
    common = text.groupby(keys).agg(lambda s: s.value_counts().sort_index().idxmax())
    return keys.map(common).astype("string")


def respelled_labels(raw: pd.Series, classes: pd.Series) -> pd.Series:
    """Rows whose text label `target_spellings` wrote another way (`classes`: its result)."""
    return (classes != raw.astype("string")).fillna(False)


def binary_target(
    classes: pd.Series, label: str | int, target: str, *, one_vs_rest: bool = False
) -> tuple[pd.Series, pd.Series]:
    """Map the target's `classes` (as `target_spellings` returns them) to 0/1 by its positive
    `label`, a text label matched whatever its case (with `one_vs_rest`, every other class is
    0); returns (target, missing mask).

    Raises:
        ContractError: More than two classes without `one_vs_rest`, or none of them is `label`.
    """
    missing = classes.isna()
    names = sorted(map(str, classes[~missing].unique()))
    if len(names) > 2 and not one_vs_rest:
        raise ContractError(
            f"target '{target}' must be binary; found {len(names)} values: {names[:10]} "
            f"(one_vs_rest: true models positive_label {label!r} against the others)"
        )
    if isinstance(classes.dtype, pd.StringDtype):  # text, spelled one way per class
        positive = (classes.str.casefold() == str(label).strip().casefold()).fillna(False)
    elif not isinstance(label, str):
        positive = classes == float(label)
    else:
        positive = classes.astype(str) == label
    if names and not positive.any():
        raise ContractError(
            f"positive_label {label!r} never occurs in target '{target}'; its values are {names}"
        )
    return positive.astype(int).where(~missing, 0), missing
