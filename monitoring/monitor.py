"""Per-window monitoring of a served model: drift, data quality and labelled quality.

    python -m monitoring.monitor --project fraud [--pushgateway http://127.0.0.1:9091]

The inference log is cut into windows (`monitoring.window`) and by the model version that
served them. Each window is compared with that version's reference (its training rows):
per-feature and dataset drift (`monitoring.drift`, Evidently's default tests, exact and fast),
prediction drift, missing values and categories unseen in training, attribution drift (mean
|SHAP| per feature on a seeded sample of the window's rows against the version's training
reference, `monitoring.attribution`), and, for rows whose
label has arrived, F1 / PR-AUC / ROC-AUC of the champion and of the run's logistic baseline
on the same rows. The primary metric also gets the window's positives and paired bootstrap
intervals (`quality_evidence`: the champion's, the baseline's and the champion's gain, on the
same resampled rows); a window with fewer than `monitoring.min_positives` positives is
`insufficient_evidence`, and the quality alert never fires on it. Evidently 0.7 reports (HTML
and JSON: drift, data summary, classification) go to
`reports/monitoring/<project>/<window>_v<version>/`, everything is logged to one MLflow run,
and the latest window is pushed to the Pushgateway for Prometheus.

A feature without any value in a window (all missing, or absent from the logged rows) is a
finding, not a crash: it is reported as drifted (method `missing`) and its missing-value
count equals the window's rows (`mlops_input_missing_values`). A window that cannot be
assessed at all (no reference for its version, corrupt scores, ...) records its error in its
`summary.json` and in the run's output, and the other windows are still reported; the run
fails only when every window failed. State files are replaced atomically.

Each run is incremental: a window whose rows, labels and project config are what its last
`summary.json` was computed from (its `basis`, a hash of them) is taken from that summary, not
assessed again (`--recompute` assesses every window). A window that gained rows or late labels
since, or any window after a config change, is assessed again. `--lookback 14D` reads only the
windows of the last 14 days (from the start of the window that holds that time, so no window
is cut): a scheduled run then reads what can still change, not the whole retained log; older
windows keep their summaries and their place in `history.json`. Choose it longer than labels
take to arrive.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from configs import ConfigError, load_config
from configs.cli import UserError, cli_parser, fail, highlight, progress, setup_logging
from configs.schema import ProjectConfig
from models.evaluate import bootstrap_indices, interval, resampled_scores, score
from models.reference import (
    SCORE_COLUMN,
    TARGET_COLUMN,
    MissingReferenceError,
    load_reference,
)
from monitoring.attribution import (
    AVAILABLE,
    UNAVAILABLE,
    VersionAttribution,
    assess_attribution,
    attribution_samples,
    load_version_attribution,
)
from monitoring.contract import GROUPING_LABEL, MONITOR_METRICS, SHADOW_JOB, SHADOW_METRICS
from monitoring.drift import MISSING, NUM, column_drift, detect_drift
from serving.inference_log import DECISION, MODEL_VERSION, REQUEST_ID, TIMESTAMP, read_log
from serving.processes import write_atomic
from serving.pushgateway import PushError, Sample, push

log = logging.getLogger(__name__)

QUALITY_METRICS = ("f1", "pr_auc", "roc_auc")
SUFFICIENT, INSUFFICIENT = "sufficient", "insufficient_evidence"
SUMMARY_FILE = "summary.json"
HISTORY_FILE = "history.json"
SHADOW_FILE = "shadow.json"  # the live comparison of a shadow challenger, when one is registered
REPORTS_ROOT = Path("reports/monitoring")


class MonitorError(UserError, RuntimeError):
    """Nothing to monitor, or no window could be assessed; the message says what to do."""


@dataclass
class WindowReport:
    """Everything measured on one window served by one model version."""

    project: str
    model: str
    version: str
    start: str
    end: str
    rows: int
    labelled_rows: int
    drift: dict[str, Any]
    prediction_drift: dict[str, Any]
    missing_values: dict[str, int]
    unseen_categories: dict[str, int]
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    vs_baseline_pct: dict[str, float] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)  # quality_evidence(); {} unlabelled
    attribution: dict[str, Any] = field(default_factory=dict)  # assess_attribution()
    report_dir: str = ""
    error: str = ""  # why the window could not be assessed ("" when it was)
    basis: str = ""  # window_basis() of what this was computed from
    evidently: bool = False  # its Evidently reports were rendered from the same basis

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass
class _Version:
    reference: pd.DataFrame
    baseline: Any = None
    baseline_threshold: float = 0.5
    run_id: str = ""
    # The version's explainer and training reference, or why they could not be had.
    attribution: VersionAttribution | BaseException | None = None


def windows(frame: pd.DataFrame, length: str) -> Iterator[tuple[pd.Timestamp, str, pd.DataFrame]]:
    """(window start, served version, rows) in time order."""
    starts = window_starts(frame[TIMESTAMP], length)
    for (start, version), rows in frame.groupby([starts, frame[MODEL_VERSION]], sort=True):
        yield cast(pd.Timestamp, start), str(version), rows  # keys of a datetime column


def window_basis(rows: pd.DataFrame, config: ProjectConfig) -> str:
    """A hash of everything a window's report is computed from: the project config and, in
    order, its rows' ids, times, scores, decisions, labels and features. Numbers hash as
    float64, so a label column read as integers (every row labelled) or as floats (some not
    yet) hashes alike, and a column absent from the log hashes as missing values."""
    digest = hashlib.sha256(config.model_dump_json().encode())
    for column in (REQUEST_ID, TIMESTAMP, SCORE_COLUMN, DECISION, TARGET_COLUMN, *config.features):
        values = rows[column] if column in rows else pd.Series(np.nan, index=rows.index)
        if pd.api.types.is_numeric_dtype(values):
            values = values.astype("float64")
        digest.update(column.encode())
        digest.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def previous_report(folder: Path, basis: str, evidently: bool) -> WindowReport | None:
    """The window's last report when it was computed from `basis` and holds what this run
    writes (Evidently's reports when `evidently`); None when it must be assessed again."""
    try:
        report = WindowReport(**json.loads((folder / SUMMARY_FILE).read_text()))
    except (OSError, ValueError, TypeError):  # none yet, unreadable, or an older layout
        return None
    if report.failed or report.basis != basis or (evidently and not report.evidently):
        return None
    return replace(report, report_dir=str(folder))


def _fixed(length: str) -> bool:
    try:
        pd.Timedelta(length)
    except ValueError:
        return False
    return True


def lookback_start(now: pd.Timestamp, lookback: pd.Timedelta, length: str) -> pd.Timestamp:
    """The start of the window that holds `now - lookback`: reading from there, every window
    is read whole."""
    moment = pd.Timestamp(now)
    moment = (moment.tz_localize("UTC") if moment.tzinfo is None else moment) - lookback
    return window_starts(pd.Series([moment]), length).iloc[0]


def window_starts(stamps: pd.Series, length: str) -> pd.Series:
    """The start of the window (of `length`: a fixed span, floored, or a calendar period) that
    holds each UTC time in `stamps`."""
    if _fixed(length):
        return stamps.dt.floor(length)
    naive = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.dt.to_period(length).dt.start_time.dt.tz_localize("UTC")


def assess(
    rows: pd.DataFrame,
    served: _Version,
    config: ProjectConfig,
) -> dict[str, Any]:
    """Drift, input quality and labelled quality of one window (pure; no I/O).

    A feature absent from `rows` counts as missing in every row, and a feature without any
    value is drifted (method "missing"), so one broken feature never hides the others. The
    window's attribution drift is measured with `served.attribution`; a version or window that
    cannot be explained is `unavailable` there and the rest is still assessed.
    """
    reference = served.reference
    rows = rows.reindex(columns=list(dict.fromkeys([*rows.columns, *config.features])))
    drift = detect_drift(
        reference,
        rows,
        config.numeric_features,
        config.categorical_features,
        config.monitoring.drift_share_threshold,
        missing_is_drift=True,
    )
    prediction = column_drift(reference[SCORE_COLUMN], rows[SCORE_COLUMN], NUM, SCORE_COLUMN)
    unseen = {
        c: int((rows[c].notna() & ~rows[c].isin(reference[c].dropna().unique())).sum())
        for c in config.categorical_features
    }
    labelled = rows[rows[TARGET_COLUMN].notna()]
    quality, versus, evidence = _quality(labelled, served, config) if len(labelled) else ({},) * 3
    return {
        "drift": drift.to_dict(),
        "prediction_drift": asdict(prediction),
        "missing_values": {c: int(rows[c].isna().sum()) for c in config.features},
        "unseen_categories": unseen,
        "labelled_rows": len(labelled),
        "quality": quality,
        "vs_baseline_pct": versus,
        "evidence": evidence,
        "attribution": assess_attribution(rows, served.attribution, config),
    }


def _quality(
    labelled: pd.DataFrame, served: _Version, config: ProjectConfig
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, Any]]:
    from features.split import model_inputs

    y = labelled[TARGET_COLUMN].to_numpy(int)
    scored = {"champion": (labelled[SCORE_COLUMN].to_numpy(), labelled[DECISION].to_numpy())}
    if served.baseline is not None:
        p = served.baseline.predict_proba(model_inputs(labelled, config))[:, 1]
        scored["baseline"] = (p, (p >= served.baseline_threshold).astype(int))
    quality = {model: _metrics(y, p, decisions) for model, (p, decisions) in scored.items()}
    champion = quality["champion"]
    versus = {}
    if "baseline" in quality:
        for metric in QUALITY_METRICS:
            base = quality["baseline"][metric]
            if np.isfinite(base) and base > 0:
                versus[metric] = round(100 * (champion[metric] - base) / base, 4)
    return quality, versus, quality_evidence(y, scored, config)


def quality_evidence(
    y: np.ndarray, scored: dict[str, tuple[np.ndarray, np.ndarray]], config: ProjectConfig
) -> dict[str, Any]:
    """Positives and paired bootstrap intervals of the primary metric on one labelled window.

    Every model is scored on the same resampled rows (`evaluation.bootstrap_samples` resamples,
    seed `evaluation.seed`, percentile intervals at `evaluation.confidence`, as the gate does),
    so `gain` (champion minus baseline, on the metric's scale) is a paired interval. F1 is
    computed on the decisions each model made, the AUCs on its scores.

    Args:
        y: Labels (0/1) of the window's labelled rows.
        scored: model name ("champion", "baseline") -> (scores, decisions) on those rows.
        config: Project config (primary metric, bootstrap settings, `monitoring.min_positives`).

    Returns:
        `metric`, `positives`, `min_positives`, `state` (`sufficient` or
        `insufficient_evidence`), the bootstrap settings, and `{value, low, high}` per model
        and for `gain` (only with a baseline); bounds are NaN when no resample has both classes.
    """
    ev, positives = config.evaluation, int(np.sum(y))
    metric, least = ev.primary_metric, config.monitoring.min_positives
    indices = bootstrap_indices(len(y), ev.bootstrap_samples, ev.seed)
    out: dict[str, Any] = {
        "metric": metric,
        "positives": positives,
        "min_positives": least,
        "state": SUFFICIENT if positives >= least else INSUFFICIENT,
        "bootstrap_samples": ev.bootstrap_samples,
        "confidence": ev.confidence,
        "seed": ev.seed,
    }
    draws = {}
    for model, (p, decisions) in scored.items():
        values = decisions if metric == "f1" else p  # decisions >= 0.5 are the model's own
        draws[model] = resampled_scores(metric, y, values, indices)
        out[model] = _bounds(score(metric, y, values), draws[model], ev.confidence)
    if "baseline" in draws:
        gain = out["champion"]["value"] - out["baseline"]["value"]
        out["gain"] = _bounds(gain, draws["champion"] - draws["baseline"], ev.confidence)
    return out


def _bounds(point: float, draws: np.ndarray, confidence: float) -> dict[str, float]:
    if not np.isfinite(draws).any():  # every resample held one class: no interval
        return {"value": point, "low": float("nan"), "high": float("nan")}
    return interval(point, draws, confidence).to_dict()


def _metrics(y: np.ndarray, p: np.ndarray, decisions: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score

    from models.evaluate import score

    return {
        "f1": float(f1_score(y, decisions, zero_division=0)),
        "pr_auc": score("pr_auc", y, p),
        "roc_auc": score("roc_auc", y, p),
        "positives": int(y.sum()),
    }


def report_features(
    drift: dict[str, Any], attribution: VersionAttribution | BaseException | None, limit: int
) -> list[str]:
    """The `limit` features a window's Evidently report shows: those the drift check (`drift`,
    as `assess` returns it) flags, most drifted first; then the most attributed in training
    (when the version's attribution reference could be had); then table order."""
    checked = drift["columns"]
    flagged = [c["column"] for c in sorted(checked, key=lambda c: -c["score"]) if c["drifted"]]
    ranked = (
        list(attribution.reference.index) if isinstance(attribution, VersionAttribution) else []
    )
    ordered = dict.fromkeys([*flagged, *ranked, *(c["column"] for c in checked)])
    return list(ordered)[:limit]


def evidently_reports(
    reference: pd.DataFrame,
    rows: pd.DataFrame,
    config: ProjectConfig,
    out: Path,
    sample_rows: int,
    features: list[str] | None = None,
) -> None:
    """Evidently 0.7 HTML and JSON: drift and data summary of `features` (default: all) and
    the score; classification if labelled."""
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset, DataDriftPreset, DataSummaryPreset
    from sklearn.exceptions import UndefinedMetricWarning

    shown = [f for f in config.features if features is None or f in features]
    columns = [*shown, SCORE_COLUMN]
    rows = rows.reindex(columns=list(dict.fromkeys([*rows.columns, *columns, TARGET_COLUMN])))
    # Evidently refuses a column without values; monitoring.drift reports those as drifted.
    tested = [c for c in columns if rows[c].notna().any()]
    definition = DataDefinition(
        numerical_columns=[*(f for f in config.numeric_features if f in shown), SCORE_COLUMN],
        categorical_columns=[f for f in config.categorical_features if f in shown],
        classification=[
            BinaryClassification(target=TARGET_COLUMN, prediction_probas=SCORE_COLUMN, pos_label=1)
        ],
    )

    def dataset(frame: pd.DataFrame, with_label: bool) -> Any:
        frame = frame.sample(min(len(frame), sample_rows), random_state=0)
        keep = [*columns, TARGET_COLUMN] if with_label else columns
        frame = frame[keep].assign(**({TARGET_COLUMN: frame[TARGET_COLUMN].astype(int)}
                                      if with_label else {}))  # fmt: skip
        return Dataset.from_pandas(frame.reset_index(drop=True), data_definition=definition)

    out.mkdir(parents=True, exist_ok=True)
    drift = Report([DataDriftPreset(columns=tested), DataSummaryPreset()]).run(
        dataset(rows, False), dataset(reference, False)
    )
    drift.save_html(str(out / "drift.html"))
    drift.save_json(str(out / "drift.json"))
    labelled = rows[rows[TARGET_COLUMN].notna()]
    if labelled[TARGET_COLUMN].nunique() == 2:
        with warnings.catch_warnings():  # windows with few positives: precision may be 0/0
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            quality = Report([ClassificationPreset()]).run(
                dataset(labelled, True), dataset(reference, True)
            )
        quality.save_html(str(out / "classification.html"))
        quality.save_json(str(out / "classification.json"))


def samples(report: WindowReport, primary_metric: str) -> list[Sample]:
    """The gauges of one window, named as in `monitoring.contract`."""
    out = [
        Sample("mlops_window_end_timestamp_seconds", pd.Timestamp(report.end).timestamp()),
        Sample("mlops_window_rows", report.rows),
        Sample("mlops_window_labelled_rows", report.labelled_rows),
        Sample("mlops_serving_model_version", float(report.version)),
        Sample("mlops_drift_share", report.drift["drift_share"]),
        Sample("mlops_dataset_drift", float(report.drift["dataset_drift"])),
        Sample("mlops_prediction_drift_score", report.prediction_drift["score"]),
        Sample("mlops_monitor_last_success_timestamp_seconds", time.time()),
    ]
    for column in report.drift["columns"]:
        out.append(Sample("mlops_feature_drift_score", column["score"],
                          {"feature": column["column"], "method": column["method"]}))  # fmt: skip
        out.append(Sample("mlops_feature_drift_detected", float(column["drifted"]),
                          {"feature": column["column"]}))  # fmt: skip
    for model, metrics in report.quality.items():
        for metric in QUALITY_METRICS:
            out.append(Sample("mlops_model_quality", metrics[metric],
                              {"metric": metric, "model": model}))  # fmt: skip
    for metric, pct in report.vs_baseline_pct.items():
        primary = str(metric == primary_metric).lower()
        out.append(Sample("mlops_model_quality_vs_baseline_pct", pct,
                          {"metric": metric, "primary": primary}))  # fmt: skip
    out += evidence_samples(report.evidence)
    out += attribution_samples(report.attribution)
    for name, counts in (("mlops_input_missing_values", report.missing_values),
                         ("mlops_input_unseen_categories", report.unseen_categories)):  # fmt: skip
        out += [Sample(name, float(n), {"feature": c}) for c, n in counts.items()]
    return out


def evidence_samples(evidence: dict[str, Any]) -> list[Sample]:
    """Positives, evidence state and interval bounds of one labelled window ([] unlabelled)."""
    if not evidence:
        return []
    metric = evidence["metric"]
    out = [
        Sample("mlops_window_positives", float(evidence["positives"])),
        Sample("mlops_quality_evidence_sufficient", float(evidence["state"] == SUFFICIENT)),
    ]
    for model in ("champion", "baseline"):
        for bound in ("low", "high"):
            if model in evidence:
                out.append(Sample("mlops_model_quality_interval", evidence[model][bound],
                                  {"metric": metric, "model": model, "bound": bound}))  # fmt: skip
    for bound, key in (("estimate", "value"), ("low", "low"), ("high", "high")):
        if "gain" in evidence:
            out.append(Sample("mlops_model_quality_gain", evidence["gain"][key],
                              {"metric": metric, "bound": bound}))  # fmt: skip
    return out


def run_monitor(
    config: ProjectConfig,
    *,
    log_root: Path | None = None,
    out_root: Path = REPORTS_ROOT,
    since: pd.Timestamp | None = None,
    pushgateway: str | None = None,
    evidently: bool = True,
    recompute: bool = False,
) -> list[WindowReport]:
    """Assess every window of the log since `since` (those unchanged since their last report
    are taken from it, unless `recompute`); write, log and push the results.

    A window that cannot be assessed is returned with its `error` (and written to its
    `summary.json`); the others are still written to `history.json`, logged and pushed.

    Raises:
        MonitorError: The log holds no rows of the project's model in the range, no window is
            large enough, or every window failed (each one's error named).
    """
    settings = config.monitoring
    log_root = Path(log_root or settings.log_path)
    frame = read_log(log_root, config.model_name, start=since)
    if frame.empty:
        raise MonitorError(
            f"no predictions of {config.model_name} under {log_root}"
            + (f" since {since}" if since is not None else "")
            + ": nothing has been served and logged yet"
        )
    versions: dict[str, _Version | Exception] = {}
    reports = []
    unchanged_dirs: set[str] = set()  # taken from their summaries: their files are in MLflow
    for start, version, rows in progress(windows(frame, settings.window), desc="windows"):
        if len(rows) < settings.min_window_rows:
            log.info("window %s v%s: %d rows < min_window_rows, skipped", start, version, len(rows))
            continue
        folder = out_root / config.name / f"{start:%Y%m%dT%H%M}_v{version}"
        basis = window_basis(rows, config)
        unchanged = None if recompute else previous_report(folder, basis, evidently)
        if unchanged is not None:
            log.info("window %s v%s: unchanged since its last report, not assessed again",
                     start, version)  # fmt: skip
            reports.append(unchanged)
            unchanged_dirs.add(unchanged.report_dir)
            continue
        report = WindowReport(
            project=config.name,
            model=config.model_name,
            version=version,
            start=start.isoformat(),
            end=rows[TIMESTAMP].max().isoformat(),
            rows=len(rows),
            labelled_rows=0,
            drift={},
            prediction_drift={},
            missing_values={},
            unseen_categories={},
            basis=basis,
        )
        try:
            if version not in versions:
                try:
                    versions[version] = _load_version(config, version)
                except Exception as exc:  # noqa: BLE001 - remembered: fails each of its windows
                    versions[version] = exc
            served = versions[version]
            if isinstance(served, Exception):
                raise served
            for key, value in assess(rows, served, config).items():
                setattr(report, key, value)
            if evidently:
                shown = report_features(report.drift, served.attribution, settings.report_features)
                evidently_reports(served.reference, rows, config, folder,
                                  settings.report_sample_rows, shown)  # fmt: skip
                report.evidently = True
        except Exception as exc:  # noqa: BLE001 - one bad window must not stop the others
            report = replace(report, error=f"{type(exc).__name__}: {exc}", **_EMPTY_RESULT)
            log.error("window %s v%s not assessed: %s", start, version, report.error)
        folder.mkdir(parents=True, exist_ok=True)
        report.report_dir = str(folder)
        write_atomic(folder / SUMMARY_FILE, json.dumps(asdict(report), indent=2, default=float))
        reports.append(report)
    if not reports:
        raise MonitorError(
            f"no window of {config.model_name} has {settings.min_window_rows} rows "
            f"(monitoring.min_window_rows): send more traffic, or lower that setting"
        )
    assessed = [r for r in reports if not r.failed]
    if not assessed:
        raise _all_failed(config, reports)
    _write_history(out_root / config.name, assessed)
    _log_to_mlflow(config, reports, unchanged_dirs)
    if pushgateway:
        latest = _latest_of_champion(config.model_name, assessed)
        push(pushgateway, "monitor", samples(latest, config.evaluation.primary_metric),
             {GROUPING_LABEL: config.name}, MONITOR_METRICS)  # fmt: skip
    record_shadow(config, log_root, out_root, since, pushgateway)
    return reports


def record_shadow(
    config: ProjectConfig,
    log_root: Path,
    out_root: Path,
    since: pd.Timestamp | None,
    pushgateway: str | None,
) -> None:
    """With a shadow challenger registered: its live comparison with the champion, written to
    `shadow.json` and pushed under job `shadow` (`monitoring/shadow.py`; it decides nothing).
    A comparison that cannot be made is logged, not raised: drift and quality still stand."""
    from monitoring.shadow import ShadowError, shadow_summary

    try:
        found = shadow_summary(config, log_root, since=since)
    except ShadowError as exc:
        log.warning("%s: no shadow comparison: %s", config.name, exc)
        return
    if found is None:
        return
    summary, gauges = found
    (out_root / config.name).mkdir(parents=True, exist_ok=True)
    write_atomic(out_root / config.name / SHADOW_FILE, json.dumps(summary, indent=2, default=float))
    if pushgateway:
        push(pushgateway, SHADOW_JOB, gauges, {GROUPING_LABEL: config.name}, SHADOW_METRICS)


# What a failed window reports: nothing measured (not zeros, which would read as "no drift").
_EMPTY_RESULT: dict[str, Any] = {
    "labelled_rows": 0,
    "drift": {},
    "prediction_drift": {},
    "missing_values": {},
    "unseen_categories": {},
    "quality": {},
    "vs_baseline_pct": {},
    "evidence": {},
    "attribution": {},
}


def _all_failed(config: ProjectConfig, reports: list[WindowReport]) -> MonitorError:
    lines = [f"  {r.start} v{r.version}: {r.error}" for r in reports]
    if all(r.error.startswith(MissingReferenceError.__name__) for r in reports):
        hint = f"make pipeline PROJECT={config.name} (a new version logs its reference)"
    else:
        hint = f"fix the cause named above (each window's {SUMMARY_FILE} records its error)"
    return MonitorError(
        f"every window of {config.model_name} failed ({len(reports)}):\n" + "\n".join(lines),
        hint=hint,
    )


def _latest_of_champion(model_name: str, reports: list[WindowReport]) -> WindowReport:
    """The newest window served by the current champion (what the gauges and alerts are
    about); the newest window of any version if the champion served none of these."""
    from models.registry import champion_version

    served = [r for r in reports if r.version == champion_version(model_name)]
    return served[-1] if served else reports[-1]


def _load_version(config: ProjectConfig, version: str) -> _Version:
    import mlflow

    from models.registry import load_registered

    served = _Version(reference=load_reference(config.model_name, version))
    details = mlflow.MlflowClient().get_model_version(config.model_name, version)
    served.run_id = details.run_id or ""
    if "baseline.threshold" in details.tags:
        served.baseline = load_registered(f"runs:/{details.run_id}/baseline")
        served.baseline_threshold = float(details.tags["baseline.threshold"])
    if config.monitoring.attribution_sample_rows:
        try:
            served.attribution = load_version_attribution(config.model_name, version)
        except Exception as exc:  # noqa: BLE001 - remembered: each of its windows says why
            served.attribution = exc
            log.warning("version %s: attribution drift unavailable: %s", version, exc)
    return served


def _write_history(folder: Path, reports: list[WindowReport]) -> None:
    """`history.json`: every window assessed so far (newest run wins for a window).

    Replaced atomically. An unreadable history (a crash of an older, non-atomic writer) is
    moved aside to `history.json.unreadable-<time>` and a new one started.
    """
    path = folder / HISTORY_FILE
    known = []
    if path.exists():
        try:
            known = json.loads(path.read_text())
        except ValueError as exc:
            aside = path.with_name(f"{path.name}.unreadable-{time.time_ns()}")
            path.replace(aside)
            log.error(
                "%s is not valid JSON (%s): moved to %s, starting a new one", path, exc, aside
            )
    fresh = {(r.start, r.version) for r in reports}
    kept = [w for w in known if (w["start"], w["version"]) not in fresh]
    rows = sorted(kept + [asdict(r) for r in reports], key=lambda w: (w["start"], w["version"]))
    write_atomic(path, json.dumps(rows, indent=1, default=float))


def _log_to_mlflow(
    config: ProjectConfig, reports: list[WindowReport], unchanged_dirs: set[str]
) -> None:
    """One run: every window's gauges; the report files only of windows assessed now (an
    unchanged window's files went to the run that assessed it)."""
    import mlflow

    from models.registry import experiment_id

    failed = [r for r in reports if r.failed]
    with mlflow.start_run(
        experiment_id=experiment_id(config.name),
        run_name=f"monitor-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}",
        tags={"kind": "monitoring", "model_name": config.model_name,
              "failed_windows": str(len(failed)), "unchanged_windows": str(len(unchanged_dirs))},
    ):  # fmt: skip
        for step, report in enumerate(r for r in reports if not r.failed):
            values = {
                "drift_share": report.drift["drift_share"],
                "dataset_drift": float(report.drift["dataset_drift"]),
                "prediction_drift": report.prediction_drift["score"],
                "rows": report.rows,
            }
            for model, metrics in report.quality.items():
                values |= {f"{model}.{m}": metrics[m] for m in QUALITY_METRICS}
            if report.attribution.get("state") == AVAILABLE:
                values |= {
                    "attribution.ranking_changed": float(report.attribution["ranking_changed"]),
                    "attribution.rank_correlation": report.attribution["rank_correlation"],
                    "attribution.top_k_overlap": report.attribution["top_k_overlap"],
                    "attribution.seconds": report.attribution["seconds"],
                }
            if report.evidence:
                values["positives"] = report.evidence["positives"]
                gain = report.evidence.get("gain", {})
                values |= {f"gain.{bound}": v for bound, v in gain.items()}
            finite = {k: float(v) for k, v in values.items() if np.isfinite(v)}
            mlflow.log_metrics(finite, step=step)
            if report.report_dir not in unchanged_dirs:
                mlflow.log_artifacts(report.report_dir, f"windows/{Path(report.report_dir).name}")
        if failed:
            mlflow.log_dict({"windows": [asdict(r) for r in failed]}, "failed_windows.json")


def _print(reports: list[WindowReport], primary: str) -> None:
    print(f"{'window':<26} {'ver':>3} {'rows':>6} {'labels':>6} {'pos':>5} {'drift':>6} "
          f"{primary:>8} {'vs base':>8} {'gain interval':>17}")  # fmt: skip
    for r in reports:
        if r.failed:
            print(highlight(f"{r.start:<26} {r.version:>3} {r.rows:>6} FAILED: {r.error}",
                            ["FAILED"]))  # fmt: skip
            continue
        value = r.quality.get("champion", {}).get(primary, float("nan"))
        versus = r.vs_baseline_pct.get(primary, float("nan"))
        gain = r.evidence.get("gain", {})
        span = f"{gain['low']:+.3f}..{gain['high']:+.3f}" if gain else "-"
        flags = " DRIFT" if r.drift["dataset_drift"] else ""
        flags += " FEW-POSITIVES" if r.evidence.get("state") == INSUFFICIENT else ""
        attribution = r.attribution.get("state")
        flags += " RANKING" if attribution == AVAILABLE and r.attribution["ranking_changed"] else ""
        flags += " NO-ATTRIBUTION" if attribution == UNAVAILABLE else ""
        empty = [c["column"] for c in r.drift["columns"] if c["method"] == MISSING]
        flags += f" MISSING {','.join(empty)}" if empty else ""
        positives = r.evidence.get("positives", 0)
        print(highlight(f"{r.start:<26} {r.version:>3} {r.rows:>6} {r.labelled_rows:>6} "
                        f"{positives:>5} {r.drift['drift_share']:>6.2f} {value:>8.3f} "
                        f"{versus:>+7.1f}% {span:>17}{flags}",
                        ["DRIFT", "MISSING", "FEW-POSITIVES", "RANKING",
                         "NO-ATTRIBUTION"]))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli_parser(
        __doc__, prog="python -m monitoring.monitor", make="make monitor [PROJECT=...]"
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument("--log-path", type=Path, help="inference log root (monitoring.log_path)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--since", type=pd.Timestamp, help="only windows from this time on")
    start.add_argument(
        "--lookback",
        type=pd.Timedelta,
        help="only the windows of this long before now, e.g. 14D (longer than labels take)",
    )
    parser.add_argument("--out", type=Path, default=REPORTS_ROOT, help="report folder root")
    parser.add_argument("--pushgateway", help="Pushgateway URL, e.g. http://127.0.0.1:9091")
    parser.add_argument(
        "--recompute", action="store_true", help="assess unchanged windows again too"
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    from models.registry import RegistryError, configure_tracking

    project = args.project
    try:
        config = load_config(project)
        configure_tracking(Path.cwd())
        since = args.since
        if args.lookback is not None:
            since = lookback_start(pd.Timestamp.now(tz="UTC"), args.lookback,
                                   config.monitoring.window)  # fmt: skip
        reports = run_monitor(config, log_root=args.log_path, out_root=args.out,
                              since=since, pushgateway=args.pushgateway,
                              recompute=args.recompute)  # fmt: skip
    except MonitorError as exc:  # no traffic (or too little) logged, or every window failed
        return fail(exc, f"make simulate PROJECT={project} (with the model served: make serve "
                         f"PROJECT={project})")  # fmt: skip
    except (ConfigError, PushError, RegistryError) as exc:
        return fail(exc)
    _print(reports, config.evaluation.primary_metric)
    print(f"reports: {args.out / config.name}")
    failed = [r for r in reports if r.failed]
    if failed:
        names = ", ".join(f"{r.start} v{r.version}" for r in failed)
        log.warning("%d of %d windows not assessed (%s); the others were reported",
                    len(failed), len(reports), names)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
