"""Profile a CSV, TSV, Parquet or Excel table and write a commented starter config for it.

python -m features.init_config --data data/loans.csv --target default
python -m features.init_config --data data/loans.parquet --target default --id loan_id \\
    --time applied_at --name loans --positive-label yes

Feature roles, exclusions (with a WARNING), the contract's ranges, null shares, category sets
and target rate, the positive class and the primary metric come from the data; split, tuning,
evaluation and gate get defaults sized to the table. The config is validated before it is
written (atomically; an existing file only with --force). Review it, then run
`make pipeline PROJECT=<the written path>`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import sys
import tempfile
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configs import CONFIG_DIR, ConfigError, load_config
from configs.cli import UserError, cli_parser, fail, setup_logging
from configs.schema import SMALL_REFERENCE_ROWS, Family, Monitoring, ProjectConfig, Simulation
from features.profile import ColumnProfile, ProfileError, TableProfile, profile_table
from features.sources import DataSourceError, read_table
from features.timestamps import TIME_UNITS

UNIT_WORDS = {
    "year": "years (2015)",
    "yyyymmdd": "dates (20150331)",
    "s": "seconds since 1970",
    "ms": "milliseconds since 1970",
}

log = logging.getLogger(__name__)

REPO = CONFIG_DIR.parent
NAME_PATTERN = next(
    str(m.pattern) for m in ProjectConfig.model_fields["name"].metadata if hasattr(m, "pattern")
)
RANGE_MARGIN = 0.1  # each end of a numeric range moves out this share of its distance to the median
PR_AUC_BELOW = 0.2  # positive rate under which the primary metric is PR-AUC
SMALL_ROWS = 5_000  # tables below this get larger holdouts
LARGE_ROWS = 100_000  # tables from this size get fewer trials on a subsample
TUNE_ROWS = 100_000
TUNE_CELLS = 3_000_000  # a trial's training matrix at most: 100,000 rows of 30 model inputs
MIN_TUNE_ROWS = 2_000  # however wide the table, a trial fits on at least this many rows
CV_FOLDS = 5  # small untimed tables: trials are scored by 5-fold CV over train + valid
MIN_WINDOW_ROWS = 30  # a monitoring window of fewer rows is noise, whatever the table
WASSERSTEIN_ROWS = 500  # windows against a large reference: 5% false drift per feature
YAML_WIDTH = 88  # values wrap at this width; a comment beside a key may run to 100
NOTE_WIDTH = 100

Path_ = tuple[str, ...]


@dataclass
class Starter:
    """A starter config: the mapping, and comments above or beside keys (by key path)."""

    config: dict[str, Any]
    above: dict[Path_, list[str]] = field(default_factory=dict)
    beside: dict[Path_, str] = field(default_factory=dict)


# -- the config from a profile (pure) ---------------------------------------------------------


def starter_config(profile: TableProfile, *, name: str, data_path: str) -> Starter:
    """The starter config for a profiled table, with the reasons as comments.

    Args:
        profile: The table's profile (`features.profile.profile_table`).
        name: The project name.
        data_path: The table's path as the config should name it.
    """
    rate = profile.positive_rate
    quarantined = round(profile.quarantine_fraction * profile.rows)
    usable = profile.rows - profile.duplicate_rows - quarantined
    small = profile.rows < SMALL_ROWS
    holdout = 0.2 if small else 0.15
    test_rows = round(usable * holdout)
    metric = "pr_auc" if rate < PR_AUC_BELOW else "roc_auc"
    config: dict[str, Any] = {
        "name": name,
        "description": f"{profile.target} from {Path(data_path).name} "
        f"({profile.rows:,} rows; starter config from make init-config).",
        "data": {"source": "file", "path": data_path},
        "target": profile.target,
        "positive_label": profile.positive_label,
        **({"one_vs_rest": True} if profile.one_vs_rest else {}),
    }
    if profile.id_column:
        config["id_column"] = profile.id_column
    if profile.time_column:
        config["time_column"] = profile.time_column
        if profile.time_unit:
            config["time_unit"] = profile.time_unit
    config["numeric_features"] = list(profile.numeric)
    config["categorical_features"] = list(profile.categorical)
    config["slices"] = list(profile.slices)
    config["contract"] = {
        "min_rows": max(1, min(1000, usable // 2)),
        "max_quarantine_fraction": max(0.05, _allowance(profile.quarantine_fraction)),
        "target_rate": list(target_rate_bounds(rate)),
        **({"drop_duplicates": False} if profile.natural_repeats else {}),
        "columns": {c.name: column_rule(c) for c in profile.features},
    }
    config["split"] = {"valid_fraction": holdout, "test_fraction": holdout}
    if profile.group_column:
        config["split"]["group_column"] = profile.group_column
    config["tuning"] = tuning_section(
        profile.rows, holdout, timed=bool(profile.time_column), inputs=model_inputs(profile)
    )
    config["evaluation"] = {
        "primary_metric": metric,
        "bootstrap_samples": 500 if test_rows < 2000 else 200,
        "slice_min_rows": max(30, min(500, test_rows // 10)),
    }
    config["gate"] = {
        "min_gain_over_baseline": 0.0,
        "min_gain_over_champion": 0.0,
        "noninferiority_margin": 0.01,
        "min_slice_metric": 0.0,
    }
    train_rows = usable - 2 * test_rows  # the drift reference
    config |= replay_sections(test_rows, train_rows)
    starter = Starter(config)
    _explain(starter, profile, metric, usable, test_rows, train_rows)
    return starter


def replay_sections(test_rows: int, train_rows: int) -> dict[str, Any]:
    """A `monitoring` section where the defaults would leave `make monitor` nothing to report,
    or windows too small for its drift test: `make simulate` replays the test rows, spread over
    `monitoring.simulation.days` in daily windows, and a window under
    `monitoring.min_window_rows` is skipped.

    The training rows are the drift reference; above `SMALL_REFERENCE_ROWS` Evidently's test
    is the normed Wasserstein distance (drift at 0.1), which flags about 74% of unchanged
    features in 100-row windows and 5% in 500-row ones: windows start at `WASSERSTEIN_ROWS`
    there. The replay spans as many days as fill such windows; a test split smaller than one
    window makes one (not under MIN_WINDOW_ROWS), with a warning in the config.
    """
    days = Simulation.model_fields["days"].default
    default = Monitoring.model_fields["min_window_rows"].default
    least = WASSERSTEIN_ROWS if train_rows > SMALL_REFERENCE_ROWS else default
    floor = max(MIN_WINDOW_ROWS, min(least, test_rows))
    monitoring: dict[str, Any] = {}
    if floor != default:
        monitoring["min_window_rows"] = floor
    if test_rows < days * floor:
        monitoring["simulation"] = {"days": max(1, test_rows // floor)}
    return {"monitoring": monitoring} if monitoring else {}


def column_rule(column: ColumnProfile) -> dict[str, Any]:
    """The contract rule for one feature: range or category set, and its null allowance."""
    rule: dict[str, Any]
    if column.role == "numeric":
        low, high = numeric_range(
            float(column.minimum or 0.0),
            float(column.median or 0.0),
            float(column.maximum or 0.0),
            integer=column.integer,
        )
        rule = {"min": low, "max": high}
    else:
        rule = {"categories": sorted(column.categories)}
    if column.null_fraction > 0:
        rule["max_null_fraction"] = _allowance(column.null_fraction)
    return rule


def numeric_range(
    minimum: float, median: float, maximum: float, *, integer: bool
) -> tuple[float, float]:
    """The observed range, each end pushed out by `RANGE_MARGIN` of its distance from the
    median (a long tail on one side does not widen the other) and rounded outward to a tidy
    step; signs are kept (non-negative data stays non-negative); a 0/1 flag stays [0, 1]."""
    if integer and (minimum, maximum) == (0, 1):
        return 0, 1
    low = _outward(minimum, median - minimum, -1, integer)
    high = _outward(maximum, maximum - median, 1, integer)
    if minimum >= 0:
        low = max(low, 0)
    if maximum <= 0:
        high = min(high, 0)
    return low, high


def _outward(end: float, distance: float, direction: int, integer: bool) -> float:
    """`end` moved `RANGE_MARGIN * distance` in `direction`, rounded away from the data."""
    if distance <= 0:
        return _tidy(end)
    step = 10.0 ** (math.floor(math.log10(distance)) - 1)
    if integer:
        step = max(step, 1.0)
    moved = (end + direction * RANGE_MARGIN * distance) / step
    value = round((math.ceil(moved) if direction > 0 else math.floor(moved)) * step, 12)
    return _tidy(max(value, end) if direction > 0 else min(value, end))


def target_rate_bounds(rate: float) -> tuple[float, float]:
    """Allowed positive rates: the observed odds halved and doubled (3 significant digits)."""
    odds = rate / (1.0 - rate)
    low, high = odds / 2 / (1 + odds / 2), 2 * odds / (1 + 2 * odds)
    return _significant(low, up=False), _significant(high, up=True)


def tuning_section(
    rows: int, holdout: float, timed: bool = False, inputs: int = 1
) -> dict[str, Any]:
    """Trials and families sized to the table; each family searches its default space.

    A trial fits on a sample of the training split when it holds more than `tune_rows(inputs)`
    rows (`inputs`: the model's input columns, categories one-hot). A small table without a
    time column is tuned by cross-validation (`CV_FOLDS`): one validation split of a few
    hundred rows picks a family by noise. A timed table keeps its time-ordered validation split
    (shuffled folds would let the future tune the past).
    """
    train_rows = round(rows * (1 - 2 * holdout))
    large = rows >= LARGE_ROWS
    section: dict[str, Any] = {
        "n_trials": 20 if large else 30,
        "families": list(typing.get_args(Family)),
    }
    sample = tune_rows(inputs)
    if train_rows > sample:
        section["tune_rows"] = sample
    if rows < SMALL_ROWS and not timed:
        section["cv_folds"] = CV_FOLDS
    return section


def tune_rows(inputs: int) -> int:
    """Rows a trial fits on: `TUNE_CELLS` cells of `inputs` columns (a trial's cost grows with
    both: a random forest over 3,000 rows of 400 inputs took 50 s), within
    [`MIN_TUNE_ROWS`, `TUNE_ROWS`], rounded down to a thousand."""
    rows = TUNE_CELLS // max(inputs, 1) // 1000 * 1000
    return max(MIN_TUNE_ROWS, min(TUNE_ROWS, rows))


def model_inputs(profile: TableProfile) -> int:
    """The model's input columns: one per number, one per category (one-hot)."""
    return sum(max(len(c.categories), 1) if c.role == "categorical" else 1
               for c in profile.features)  # fmt: skip


def _allowance(share: float) -> float:
    """An observed share plus half again, at least 2 points more, rounded up to a percent."""
    if share <= 0:
        return 0.0
    return min(1.0, math.ceil((share + max(share / 2, 0.02)) * 100 - 1e-9) / 100)


def _significant(value: float, *, up: bool, digits: int = 3) -> float:
    if value <= 0 or value >= 1:
        return min(max(value, 0.0), 1.0)
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    rounded = (math.ceil if up else math.floor)(value * scale) / scale
    return min(max(rounded, 0.0), 1.0)


def _tidy(value: float) -> float:
    return int(value) if float(value).is_integer() else float(value)  # 3000, not 3000.0


def _percent(share: float) -> str:
    return f"{share:.1%}" if share >= 0.001 or share == 0 else f"{share:.3%}"


def _explain(
    starter: Starter,
    profile: TableProfile,
    metric: str,
    usable: int,
    test_rows: int,
    train_rows: int,
) -> None:
    """The comments: why each inferred value is what it is, and what to review."""
    above, beside, rate = starter.above, starter.beside, profile.positive_rate
    counts = ", ".join(f"{k!r}: {v:,}" for k, v in profile.class_counts.items())
    beside[("id_column",)] = "checked unique per row; not a feature"
    if profile.one_vs_rest:
        mine = str(profile.positive_label)
        rest = sum(v for k, v in profile.class_counts.items() if k != mine)
        counts = (f"{mine!r}: {profile.class_counts[mine]:,}, the other "
                  f"{len(profile.class_counts) - 1} classes: {rest:,}")  # fmt: skip
        beside[("one_vs_rest",)] = (
            f"{len(profile.class_counts)} classes: the model answers 'is it {mine}?'; "
            "a config per class models another"
        )
    beside[("positive_label",)] = f"{profile.label_reason} ({_percent(rate)} of rows; {counts})"
    above[("numeric_features",)] = [
        "Roles: numbers -> numeric; text and booleans -> categorical; integer columns with at "
        "most 10 values covering under half of their range (codes like 408/415/510) -> "
        "categorical; other integers (0/1 flags, counts, 1-10 scores) stay numeric (ordered).",
        *(f"WARNING: excluded '{e.column}': {e.reason}" for e in profile.excluded),
        *(f"WARNING: {note}" for note in profile.notes),
    ]
    above[("slices",)] = ["Evaluated apart: up to two categorical features with 2-10 values."]
    if not profile.slices:
        beside[("slices",)] = "no categorical feature with 2-10 values"
    contract = ("contract",)
    above[contract] = [
        "The data contract, from this table: a batch that breaks it stops the pipeline.",
        f"Ranges: the observed min and max pushed out by {RANGE_MARGIN:.0%} of their distance "
        "from the median and rounded outward (sign kept). Null allowances: the observed share "
        "plus half again (at least 2 points). Categories: every value seen, normalised like "
        "features/contract.py (lower case, '_' for spaces).",
    ]
    beside[(*contract, "min_rows")] = (
        f"half the {usable:,} usable rows, at most 1,000: a smaller batch is a broken export"
    )
    beside[(*contract, "max_quarantine_fraction")] = (
        f"{_percent(profile.quarantine_fraction)} of these rows are quarantined"
        + (f"; {profile.duplicate_rows:,} duplicates dropped" if profile.duplicate_rows else "")
    )
    beside[(*contract, "target_rate")] = f"observed {_percent(rate)}; odds halved / doubled"
    if profile.natural_repeats:
        beside[(*contract, "drop_duplicates")] = (
            f"{profile.natural_repeats:,} rows repeat by nature (no column tells rows apart)"
        )
    for column in profile.features:
        beside[(*contract, "columns", column.name)] = _observed(column)
    order = f"by '{profile.time_column}'" if profile.time_column else "stratified at random"
    if profile.group_column:
        order += f", each '{profile.group_column}' in one part"
    size = "; larger holdouts for a small table" if profile.rows < SMALL_ROWS else ""
    beside[("split",)] = order + size
    if profile.time_unit:
        beside[("time_unit",)] = (
            f"numbers in '{profile.time_column}' read as {UNIT_WORDS[profile.time_unit]}"
        )
    tuning = starter.config["tuning"]
    beside[("tuning", "n_trials")] = f"sized to {profile.rows:,} rows"
    if "tune_rows" in tuning:
        beside[("tuning", "tune_rows")] = (
            f"each trial fits on a sample of the training split ({model_inputs(profile):,} "
            "model inputs)"
        )
    if "cv_folds" in tuning:
        beside[("tuning", "cv_folds")] = (
            f"under {SMALL_ROWS:,} rows: trials scored by CV over train + valid, not one split"
        )
    above[("tuning", "families")] = [
        "Each family searches its default ranges (DEFAULT_SEARCH_SPACES in configs/schema.py); "
        "add search_space.<family> to replace a family's ranges.",
    ]
    beside[("evaluation", "primary_metric")] = (
        f"positives are {_percent(rate)} (< {PR_AUC_BELOW:.0%}): PR-AUC follows the rare class"
        if metric == "pr_auc"
        else f"positives are {_percent(rate)} (>= {PR_AUC_BELOW:.0%}): ROC-AUC ranks both classes"
    )
    beside[("evaluation", "slice_min_rows")] = f"about a tenth of ~{test_rows:,} test rows"
    monitoring = starter.config.get("monitoring", {})
    if "simulation" in monitoring:
        beside[("monitoring", "simulation")] = (
            f"make simulate replays the ~{test_rows:,} test rows: daily windows that report"
        )
    if "min_window_rows" in monitoring:
        beside[("monitoring", "min_window_rows")] = (
            "windows this large or larger are reported; size `window` to your traffic"
        )
    small_window = monitoring.get("min_window_rows", WASSERSTEIN_ROWS) < WASSERSTEIN_ROWS
    if small_window and train_rows > SMALL_REFERENCE_ROWS:
        above[("monitoring",)] = [
            f"WARNING: the ~{test_rows:,} test rows replay as one window of under "
            f"{WASSERSTEIN_ROWS} rows; against over {SMALL_REFERENCE_ROWS:,} training rows the "
            "drift test (Wasserstein, 0.1) flags many unchanged features in windows that small",
        ]
    above[("gate",)] = [
        "A tuned model must beat the baseline significantly to be chosen; otherwise the "
        "simplest model within noninferiority_margin of the best is (the baseline, often, on "
        "small tables), so every run leaves a deployable model. A new model must then beat the "
        "champion. Set a per-slice floor (min_slice_metric) once you know what a slice must "
        "reach. Every other key and its default: docs/configuration.md.",
    ]


def _observed(column: ColumnProfile) -> str:
    nulls = f", {_percent(column.null_fraction)} null" if column.null_fraction else ""
    if column.role == "numeric":
        return f"observed {column.minimum:g} .. {column.maximum:g}{nulls}"
    return f"{len(column.categories)} values{nulls}"


# -- YAML with comments -----------------------------------------------------------------------


def render(starter: Starter, header: list[str]) -> str:
    """The config as YAML: top-level sections as blocks, small leaves in flow style (long
    lists wrapped), comments above keys or beside them when the line has room."""
    lines = [f"# {line}".rstrip() for line in header]

    def emit(mapping: dict[str, Any], path: Path_, indent: int) -> None:
        pad = "  " * indent
        for key, value in mapping.items():
            here = (*path, key)
            above = list(starter.above.get(here, ()))
            note = starter.beside.get(here, "")
            head = f"{pad}{_flow(key)}:"
            inline = f"{head} {_flow(value)}"
            nested = isinstance(value, dict) and any(isinstance(v, dict) for v in value.values())
            block = isinstance(value, dict) and value and (indent == 0 or nested or _long(inline))
            first = head if block else inline
            if note and len(f"{first}  # {note}") > NOTE_WIDTH:
                above, note = [*above, note], ""
            lines.extend(_comment(text, pad) for text in above)
            suffix = f"  # {note}" if note else ""
            if block:
                lines.append(head + suffix)
                emit(value, here, indent + 1)
            elif isinstance(value, list) and _long(inline):
                wrapped = _wrapped(head, value, pad)
                lines.extend([*wrapped[:-1], wrapped[-1] + suffix])
            else:
                lines.append(inline + suffix)

    emit(starter.config, (), 0)
    return "\n".join(lines) + "\n"


def _comment(text: str, pad: str) -> str:
    """A comment paragraph wrapped at `YAML_WIDTH`, continuation lines indented."""
    first, rest = f"{pad}# ", f"{pad}#   "
    return textwrap.fill(text, YAML_WIDTH, initial_indent=first, subsequent_indent=rest)


def _wrapped(head: str, items: list[Any], pad: str) -> list[str]:
    """`head [a, b, ...]` in flow style over as many lines as it needs."""
    lines, current = [], f"{head} ["
    for i, item in enumerate(items):
        piece = _flow(item) + ("]" if i == len(items) - 1 else ",")
        if not current.endswith("[") and _long(f"{current} {piece}"):
            lines.append(current)
            current = f"{pad}    {piece}"
        else:
            current += piece if current.endswith("[") else f" {piece}"
    return [*lines, current]


def _flow(value: Any) -> str:
    text = yaml.safe_dump(
        value, default_flow_style=True, width=math.inf, sort_keys=False, allow_unicode=True
    )
    return text.removesuffix("\n").removesuffix("\n...")


def _long(line: str) -> bool:
    return len(line) > YAML_WIDTH


# -- the command (edge) -----------------------------------------------------------------------


def project_name(stem: str) -> str:
    """A valid project name from a file name (`Pima.te` -> `pima-te`)."""
    candidate = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")
    if not re.fullmatch(NAME_PATTERN, candidate):
        raise UserError(
            f"cannot make a project name from the file name '{stem}' ({NAME_PATTERN})",
            hint="pass --name my-project (make: NAME=my-project)",
        )
    return candidate


def config_data_path(path: Path) -> str:
    """The data path as the config names it: relative to the repository when inside it
    (`make pipeline` runs there), else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(REPO).as_posix()
    except ValueError:
        return str(resolved)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def header_lines(profile: TableProfile, data_path: str, sha256: str, out: str) -> list[str]:
    """Where the config came from and what a person must review before running it."""
    excluded = len(profile.excluded)
    return [
        f"Generated by `make init-config` from {data_path}",
        f"  ({profile.rows:,} rows x {len(profile.columns)} columns, sha256",
        f"  {sha256}).",
        f"Review before `make pipeline PROJECT={out}`:",
        "  - the feature roles and every WARNING"
        + (f" ({excluded} column(s) excluded)" if excluded else ""),
        "  - positive_label and the primary metric (evaluation.primary_metric)",
        "  - the contract: ranges, null allowances, category sets, target rate, min_rows",
        "  - slices, the tuning budget and the gate",
    ]


def write_config(text: str, out: Path) -> None:
    """Validate `text` as a project config, then move it into place atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        load_config(temporary)
        os.replace(temporary, out)
    finally:
        Path(temporary).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        __doc__,
        prog="python -m features.init_config",
        make="make init-config DATA=path TARGET=col [ID=col] [TIME=col] [GROUP=col] [NAME=name]",
    )
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="PATH",
        help="CSV (any of , ; tab |), TSV, Parquet or Excel (.xlsx, one sheet) table",
    )
    parser.add_argument("--target", required=True, metavar="COL", help="the binary label column")
    parser.add_argument(
        "--id", dest="id_column", metavar="COL", help="unique row id column (not a feature)"
    )
    parser.add_argument(
        "--time", dest="time_column", metavar="COL", help="event-time column: split by time"
    )
    parser.add_argument(
        "--group",
        dest="group_column",
        metavar="COL",
        help="entity column (a patient, a customer): its rows stay in one split part "
        "(default: a repeating id- or person-named column)",
    )
    parser.add_argument(
        "--time-unit",
        choices=TIME_UNITS,
        default="auto",
        help="how a numeric time column is read: year, yyyymmdd, s, ms, or auto (by magnitude)",
    )
    parser.add_argument("--name", help="project name (default: from the file name)")
    parser.add_argument(
        "--out", type=Path, metavar="PATH", help="config path (default: configs/<name>.yaml)"
    )
    parser.add_argument(
        "--positive-label",
        metavar="VALUE",
        help="the target value that counts as positive (default: inferred)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing config")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    usage = f"make init-config DATA=path/to/table.csv TARGET={args.target}"
    try:
        name = args.name or project_name(args.data.stem)
        if not re.fullmatch(NAME_PATTERN, name):
            raise UserError(
                f"--name '{name}' is not a project name ({NAME_PATTERN})",
                hint="use lower case letters, digits, '_' and '-', starting with a letter",
            )
        out = args.out or CONFIG_DIR / f"{name}.yaml"
        shown = config_data_path(out)
        if out.exists() and not args.force:
            raise UserError(
                f"{shown} exists; not overwritten",
                hint="pass --force (make: FORCE=1) to replace it, or --name / --out elsewhere",
            )
        frame = read_table(args.data)
        profile = profile_table(
            frame,
            args.target,
            id_column=args.id_column,
            time_column=args.time_column,
            time_unit=args.time_unit,
            positive_label=args.positive_label,
            group_column=args.group_column,
        )
        data_path = config_data_path(args.data)
        starter = starter_config(profile, name=name, data_path=data_path)
        header = header_lines(profile, data_path, file_sha256(args.data), shown)
        write_config(render(starter, header), out)
    except DataSourceError as exc:
        return fail(exc, usage)
    except ConfigError as exc:  # a starter config the schema refuses is a bug here
        return fail(f"the generated config is invalid: {exc}", code=1)
    except UserError as exc:
        return fail(f"{args.data}: {exc}" if isinstance(exc, ProfileError) else exc, exc.hint)
    if "encoding" in frame.attrs:
        log.warning("%s is not UTF-8: read as %s text", args.data, frame.attrs["encoding"])
    for exclusion in profile.excluded:
        log.warning("excluded '%s': %s", exclusion.column, exclusion.reason)
    for note in profile.notes:
        log.warning("%s", note)
    print(
        f"wrote {shown}: {len(profile.numeric)} numeric and {len(profile.categorical)} "
        f"categorical features, {len(profile.excluded)} excluded; positive "
        f"{profile.positive_label!r} = {_percent(profile.positive_rate)}, primary metric "
        f"{starter.config['evaluation']['primary_metric']}"
    )
    print(f"next: review it, then make pipeline PROJECT={shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
