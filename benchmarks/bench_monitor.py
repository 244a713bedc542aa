"""Benchmark: the platform's drift check vs Evidently's DataDriftPreset, on the same Parquet files.

    python -m benchmarks.bench_monitor [--reference-rows 1000000] [--current-rows 500000]
        [--columns 20] [--seed 7] [--out reports]

Generates seeded reference and current data (about 3/4 numeric, 1/4 categorical columns;
some shifted, some not, one shifted just past the threshold, NaNs, a new category) and
writes both to Parquet in a temporary directory. Each contender then runs in its own fresh
Python process, so peak memory (`ru_maxrss`) is its own: (a) the platform,
`monitoring.drift.detect_drift_parquet`; (b) what a user would otherwise write: both files
read into pandas and `Report([DataDriftPreset()])` run on them. Wall time runs from reading
the files to having per-column decisions. A child per contender that only imports its
modules gives the baseline RSS. Per-column decisions must be identical, except where
Evidently's score lies within ±0.01 of the threshold ("borderline"). Writes
`<out>/bench_monitor.md` and `.json`; exits 1 when the bar (platform >= 5x faster, <= 1/2
the peak memory, decisions agreeing) fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from configs.cli import cli_parser, highlight, setup_logging
from monitoring.drift import CAT, NUM, ColumnDrift, DriftResult, detect_drift_parquet

REPO = Path(__file__).resolve().parents[1]
MIN_SPEEDUP = 5.0  # Evidently wall time over the platform's, at least
MAX_MEMORY_RATIO = 0.5  # platform peak RSS over Evidently's, at most
LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
BORDERLINE = 0.01  # |Evidently score - threshold| within which a differing decision is tolerated
CONTENDERS = {
    "platform": "platform: detect_drift_parquet",
    "evidently": "pandas + Evidently DataDriftPreset",
}
# ValueDrift's `method` in a snapshot is the stattest's display name (legacy stattests/*.py)
EVIDENTLY_METHODS = {
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
}


# --- data ---

Maker = Callable[[np.random.Generator, int, bool], np.ndarray]


def _with_missing(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = x.copy()
    x[rng.random(x.size) < 0.05] = np.nan
    x[rng.random(x.size) < 0.001] = np.inf
    return x


# name: values(rng, rows, is_current); the first few cover the most cases for small --columns
NUMERIC: dict[str, Maker] = {
    "normal_same": lambda r, n, c: r.normal(0, 1, n),
    "normal_shift": lambda r, n, c: r.normal(0.5 if c else 0, 1, n),
    "normal_near": lambda r, n, c: r.normal(0.105 if c else 0, 1, n),  # W/std ~ 0.105
    "binary_shift": lambda r, n, c: (r.random(n) < (0.5 if c else 0.3)).astype(float),
    "lognormal_scale": lambda r, n, c: r.lognormal(0, 0.5, n) * (1.3 if c else 1),
    "missing_same": lambda r, n, c: _with_missing(r.normal(10, 2, n), r),
    "uniform_same": lambda r, n, c: r.uniform(0, 1, n),
    "poisson_shift": lambda r, n, c: r.poisson(12 if c else 10, n).astype(float),
    "exponential_small": lambda r, n, c: r.exponential(1.05 if c else 1, n),  # W ~ 0.05
    "binary_same": lambda r, n, c: (r.random(n) < 0.2).astype(float),
    "missing_shift": lambda r, n, c: _with_missing(r.normal(11 if c else 10, 2, n), r),
    "gamma_same": lambda r, n, c: r.gamma(2, 2, n),
    "ordinal_shift": lambda r, n, c: r.choice(4, n, p=[0.1, 0.2, 0.3, 0.4] if c else [0.25] * 4),
    "t_same": lambda r, n, c: r.standard_t(5, n),
    "mixture_shift": lambda r, n, c: (
        np.where(r.random(n) < (0.3 if c else 0.1), 5, 0) + r.normal(0, 1, n)
    ),
}


def _categories(
    k: int, shifted: Sequence[float] | None = None, nulls: float = 0.0, unseen: float = 0.0
) -> Maker:
    """k string categories, uniform in the reference; `shifted` shares in the current, which
    also has an `unseen` share of a category the reference never has."""

    def make(rng: np.random.Generator, n: int, current: bool) -> np.ndarray:
        names = np.array([f"v{i}" for i in range(k)] + ["unseen", None], dtype=object)
        p = np.asarray(shifted if current and shifted is not None else [1 / k] * k)
        new = unseen if current else 0.0
        return names[rng.choice(k + 2, n, p=[*(p * (1 - nulls - new)), new, nulls])]

    return make


CATEGORICAL: dict[str, Maker] = {
    "cat_shift": _categories(4, [0.4, 0.3, 0.2, 0.1]),
    "cat_same": _categories(6),
    "cat_unseen_value": _categories(5, unseen=0.05),
    "cat_missing_same": _categories(3, nulls=0.1),
    "cat_many_small": _categories(12, [0.09] * 6 + [0.46 / 6] * 6),
}


def make_frames(
    reference_rows: int, current_rows: int, columns: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """Seeded reference and current frames; returns (reference, current, numeric, categorical)."""
    n_cat = min(max(1, columns // 4), len(CATEGORICAL))
    n_num = columns - n_cat
    if not 1 <= n_num <= len(NUMERIC):
        raise SystemExit(f"--columns must be between 2 and {len(NUMERIC) + len(CATEGORICAL)}")
    makers = {f"n{i:02d}_{k}": NUMERIC[k] for i, k in enumerate(list(NUMERIC)[:n_num])}
    makers |= {f"c{i:02d}_{k}": CATEGORICAL[k] for i, k in enumerate(list(CATEGORICAL)[:n_cat])}
    frames = []
    for current, rows in ((False, reference_rows), (True, current_rows)):
        data = {}
        for j, (name, make) in enumerate(makers.items()):
            data[name] = make(np.random.default_rng([seed, j, current]), rows, current)
        frames.append(pd.DataFrame(data))
    return frames[0], frames[1], list(makers)[:n_num], list(makers)[n_num:]


# --- Evidently, the plain alternative ---


def evidently_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> DriftResult:
    """Evidently's own `Report([DataDriftPreset()])` on the frames, as a `DriftResult`."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=list(numeric), categorical_columns=list(categorical)
    )
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return drift_from_snapshot(
        snapshot.dict(), {c: NUM for c in numeric} | {c: CAT for c in categorical}
    )


def drift_from_snapshot(snapshot: Mapping[str, Any], kinds: Mapping[str, str]) -> DriftResult:
    """Per-column decisions from a DataDriftPreset snapshot run with `include_tests=True`.

    A column drifted when its "Value Drift" test failed; the dataset drifted when the
    "Share of Drifted Columns: Less <drift_share>" test failed.
    """
    failed = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in snapshot["tests"]}
    columns, share = [], None
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            columns.append(
                ColumnDrift(
                    column=config["column"],
                    kind=kinds[config["column"]],
                    method=EVIDENTLY_METHODS[config["method"]],
                    score=float(metric["value"]),
                    threshold=float(config["threshold"]),
                    drifted=failed[metric["id"]],
                )
            )
        elif config["type"].endswith(":DriftedColumnsCount"):
            share, threshold = float(metric["value"]["share"]), float(config["drift_share"])
            dataset_drift = failed[metric["id"]]
    if share is None:
        raise ValueError("snapshot has no DriftedColumnsCount metric")
    return DriftResult(tuple(columns), share, dataset_drift, threshold)


# --- one contender per fresh process ---


def _child(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run one contender (or only its imports) here; wall time and this process's peak RSS."""
    import resource

    if mode in ("evidently", "imports-evidently"):
        import evidently.presets  # noqa: F401
    result = None
    started = time.perf_counter()
    if mode == "platform":
        result = detect_drift_parquet(
            spec["reference"], spec["current"], spec["numeric"], spec["categorical"]
        )
    elif mode == "evidently":
        reference, current = pd.read_parquet(spec["reference"]), pd.read_parquet(spec["current"])
        result = evidently_drift(reference, current, spec["numeric"], spec["categorical"])
    wall = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"wall_s": wall, "peak_rss_mib": peak_mib, "result": result and result.to_dict()}


def measure(mode: str, spec_path: Path) -> dict[str, Any]:
    """Run `_child(mode)` in a fresh interpreter and return what it measured.

    The child is started by a bare interpreter (`LAUNCHER`), not by this process: Linux
    carries the parent address space's peak RSS into a vforked child's `ru_maxrss` across
    exec, which would add this process's data generation to every child's peak.
    """
    out = spec_path.with_name(f"{mode}.json")
    child = [sys.executable, "-m", "benchmarks.bench_monitor", "--child", mode]
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", LAUNCHER, *child, "--spec", str(spec_path), "--child-out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def _result(d: Mapping[str, Any]) -> DriftResult:
    columns = tuple(ColumnDrift(**c) for c in d["columns"])
    return DriftResult(columns, d["drift_share"], d["dataset_drift"], d["drift_share_threshold"])


def compare(platform: DriftResult, evidently: DriftResult) -> list[dict[str, Any]]:
    """Per-column rows: both scores and decisions, and whether they agree.

    agreement is "yes" (same method and decision), "borderline" (decisions differ but
    Evidently's score is within ±0.01 of its threshold) or "NO".
    """
    ours = {c.column: c for c in platform.columns}
    rows: list[dict[str, Any]] = []
    for ev in evidently.columns:
        pl = ours.get(ev.column)
        if pl is not None and pl.method == ev.method and pl.drifted == ev.drifted:
            agreement = "yes"
        elif (
            pl is not None and pl.method == ev.method and abs(ev.score - ev.threshold) <= BORDERLINE
        ):
            agreement = "borderline"
        else:
            agreement = "NO"
        rows.append(
            {
                "column": ev.column,
                "kind": ev.kind,
                "method": ev.method
                if pl is None or pl.method == ev.method
                else f"{pl.method} / {ev.method}",
                "threshold": ev.threshold,
                "platform_score": None if pl is None else pl.score,
                "evidently_score": ev.score,
                "platform_drifted": None if pl is None else pl.drifted,
                "evidently_drifted": ev.drifted,
                "near_threshold": abs(ev.score - ev.threshold) <= BORDERLINE,
                "agreement": agreement,
            }
        )
    if set(ours) != {r["column"] for r in rows}:
        raise ValueError(
            f"column sets differ: {sorted(set(ours))} vs {sorted(r['column'] for r in rows)}"
        )
    return rows


def run_benchmark(
    reference_rows: int, current_rows: int, columns: int, seed: int, out: Path
) -> dict[str, Any]:
    """Generate, write, measure every contender in its own process, compare, write the report."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        reference, current, numeric, categorical = make_frames(
            reference_rows, current_rows, columns, seed
        )
        spec: dict[str, Any] = {
            "reference": str(tmp_path / "reference.parquet"),
            "current": str(tmp_path / "current.parquet"),
            "numeric": numeric,
            "categorical": categorical,
        }
        reference.to_parquet(spec["reference"], index=False)
        current.to_parquet(spec["current"], index=False)
        del reference, current
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec))
        runs = {
            m: measure(m, spec_path)
            for m in ("imports-platform", "platform", "imports-evidently", "evidently")
        }
    platform, evidently = _result(runs["platform"]["result"]), _result(runs["evidently"]["result"])
    rows = compare(platform, evidently)
    summary = {
        "reference_rows": reference_rows,
        "current_rows": current_rows,
        "columns": len(numeric) + len(categorical),
        "numeric": len(numeric),
        "categorical": len(categorical),
        "seed": seed,
        "cpus": os.cpu_count(),
        "runs": {
            name: {k: runs[mode][k] for k in ("wall_s", "peak_rss_mib")}
            | {"imports_only_rss_mib": runs[f"imports-{mode}"]["peak_rss_mib"]}
            for mode, name in CONTENDERS.items()
        },
        "speedup": runs["evidently"]["wall_s"] / runs["platform"]["wall_s"],
        "memory_ratio": runs["platform"]["peak_rss_mib"] / runs["evidently"]["peak_rss_mib"],
        "agreement": all(r["agreement"] != "NO" for r in rows),
        "borderline": [r["column"] for r in rows if r["agreement"] == "borderline"],
        "max_score_difference": max(abs(r["platform_score"] - r["evidently_score"]) for r in rows),
        "dataset_drift": {"platform": platform.dataset_drift, "evidently": evidently.dataset_drift},
        "drift_share": {"platform": platform.drift_share, "evidently": evidently.drift_share},
        "per_column": rows,
    }
    summary["bar_passed"] = bool(
        summary["speedup"] >= MIN_SPEEDUP
        and summary["memory_ratio"] <= MAX_MEMORY_RATIO
        and summary["agreement"]
        and platform.dataset_drift == evidently.dataset_drift
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_monitor.json").write_text(json.dumps(summary, indent=2))
    (out / "bench_monitor.md").write_text(render(summary, platform, evidently))
    return summary


def render(s: Mapping[str, Any], platform: DriftResult, evidently: DriftResult) -> str:
    """The Markdown report."""
    n = s["columns"]
    lines = [
        "# Drift check benchmark: monitoring.drift vs Evidently DataDriftPreset",
        "",
        f"Data: {s['reference_rows']:,} reference and {s['current_rows']:,} current rows, "
        f"{n} columns ({s['numeric']} numeric, {s['categorical']} categorical), seed {s['seed']}, "
        f"in Parquet. Machine: {s['cpus']} CPUs. Each contender runs in its own fresh Python "
        "process; wall time runs from reading the Parquet files to per-column decisions; peak "
        "RSS is the process's `ru_maxrss`, imports-only RSS that of a process that imports the "
        "same modules and reads nothing.",
        "",
        "| contender | wall s | peak RSS MiB | imports-only RSS MiB | drifted columns |",
        "|---|---|---|---|---|",
    ]
    for (name, run), result in zip(s["runs"].items(), (platform, evidently), strict=True):
        lines.append(
            f"| {name} | {run['wall_s']:.2f} | {run['peak_rss_mib']:,.0f} "
            f"| {run['imports_only_rss_mib']:,.0f} | {len(result.drifted_columns)}/{n} |"
        )
    agree = sum(r["agreement"] == "yes" for r in s["per_column"])
    lines += [
        "",
        f"- Speed-up: {s['speedup']:.1f}x (bar: >= {MIN_SPEEDUP:g}x)",
        f"- Peak memory, platform / Evidently: {s['memory_ratio']:.3f} "
        f"(bar: <= {MAX_MEMORY_RATIO:g})",
        f"- Decision agreement: {agree}/{n} identical, {len(s['borderline'])} borderline"
        f"{''.join(f' {c}' for c in s['borderline'])} (tolerated when Evidently's score is within "
        f"±{BORDERLINE:g} of the threshold); largest score difference "
        f"{s['max_score_difference']:.1e}",
        f"- Dataset drift (share of drifted columns >= {platform.drift_share_threshold:g}): "
        f"platform {platform.dataset_drift} ({platform.drift_share:.2f}), "
        f"Evidently {evidently.dataset_drift} ({evidently.drift_share:.2f})",
        f"- Bar: {'PASS' if s['bar_passed'] else 'FAIL'}",
        "",
        "| column | kind | method | threshold | platform score | Evidently score "
        "| platform drifted | Evidently drifted | agreement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["per_column"]:
        near = " (near threshold)" if r["near_threshold"] and r["agreement"] == "yes" else ""
        lines.append(
            f"| {r['column']} | {r['kind']} | {r['method']} | {r['threshold']:g} "
            f"| {r['platform_score']:.6g} | {r['evidently_score']:.6g} | {r['platform_drifted']} "
            f"| {r['evidently_drifted']} | {r['agreement']}{near} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        __doc__, prog="python -m benchmarks.bench_monitor", make="make bench-monitor"
    )
    parser.add_argument(
        "--reference-rows", type=int, default=1_000_000, help="reference rows (default 1M)"
    )
    parser.add_argument(
        "--current-rows", type=int, default=500_000, help="current rows (default 500k)"
    )
    parser.add_argument("--columns", type=int, default=20, help="columns (default 20)")
    parser.add_argument("--seed", type=int, default=7, help="data seed (default 7)")
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), help="report directory (default reports)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.child:
        args.child_out.write_text(json.dumps(_child(args.child, json.loads(args.spec.read_text()))))
        return 0
    summary = run_benchmark(
        args.reference_rows, args.current_rows, args.columns, args.seed, args.out
    )
    print(highlight((args.out / "bench_monitor.md").read_text(), ("PASS", "FAIL")), end="")
    return 0 if summary["bar_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
