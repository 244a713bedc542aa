"""Pipeline steps: the I/O and MLflow edge that each kfp component calls.

A component body is one import and one call into this module; each step reads its input
artifacts, calls the plain functions in `features/` and `models/`, writes its outputs with
metadata, and logs to the pipeline's MLflow run. Artifacts are duck-typed (anything with
`.path` and `.metadata`), so the steps run the same inside kfp and in tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd
import yaml

from configs import ProjectConfig, parse_config
from configs.console import Milestones, setup_logging

DECISION_FILE = "decision.json"
DEPLOYMENT_FILE = "deployment.json"


class ArtifactLike(Protocol):
    """What a step needs of a kfp artifact."""

    path: str
    metadata: dict[str, Any]


def config_from_yaml(config_yaml: str) -> ProjectConfig:
    """The validated config carried by the pipeline parameter."""
    return parse_config(yaml.safe_load(config_yaml), source="pipeline parameter config_yaml")


def say(project: str, stage: str, message: str) -> None:
    """One progress line per stage, the same locally and in cluster logs."""
    print(f"[{project}] {stage:<9} {message}", flush=True)


@contextmanager
def stage(name: str, config_yaml: str, run_id: str) -> Iterator[ProjectConfig]:
    """Run a step inside the pipeline's MLflow run, timing it and recording any failure.

    Logging follows `MLOPS_LOG_LEVEL` (inherited from `make ... LOG_LEVEL=` or `--log-level`);
    a failure's next step (`UserError.hint`) is recorded beside it for the runner to print.
    """
    import mlflow

    setup_logging()
    config = config_from_yaml(config_yaml)
    started = time.perf_counter()
    with mlflow.start_run(run_id=run_id):
        try:
            yield config
        except Exception as exc:
            tags = {"failed_stage": name, "failure": f"{exc}"[:4000]}
            hint = getattr(exc, "hint", None)
            if hint:
                tags["failure_hint"] = str(hint)[:4000]
            mlflow.set_tags(tags)
            raise
        mlflow.log_metric(f"stage_seconds.{name}", round(time.perf_counter() - started, 3))


def _write_frame(frame: pd.DataFrame, artifact: ArtifactLike, **metadata: Any) -> None:
    frame.to_parquet(artifact.path, index=False)
    artifact.metadata.update({"rows": len(frame), "columns": list(map(str, frame.columns))})
    artifact.metadata.update(metadata)


def _read_frame(artifact: ArtifactLike) -> pd.DataFrame:
    return pd.read_parquet(artifact.path)


def _write_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def _log_bytes(data: bytes, artifact_path: str) -> None:
    """Log raw bytes to the active run under `artifact_path` (directory/name)."""
    import tempfile

    import mlflow

    folder, name = artifact_path.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(data)
        mlflow.log_artifact(str(Path(tmp) / name), folder)


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, as a user runs it
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("GIT_COMMIT", "unknown")


# --- load ------------------------------------------------------------------------------------


def as_stored(raw: pd.DataFrame) -> pd.DataFrame:
    """The raw table as the load step stores it: mixed-type text columns (numbers with junk)
    kept as text, so Parquet can hold them."""
    mixed = [c for c in raw.columns if raw[c].dtype == object]
    return raw.astype(dict.fromkeys(mixed, "string"))


def load_step(
    config_yaml: str, mlflow_run_id: str, pipeline_run: str, raw_data: ArtifactLike
) -> str:
    """Read the raw table, open (or join) the MLflow run, log config and lineage.

    Returns:
        The MLflow run id that every later step logs into.
    """
    import mlflow

    from features.sources import hash_frame, load_raw
    from models.registry import experiment_id

    config = config_from_yaml(config_yaml)
    if not mlflow_run_id:
        run = mlflow.MlflowClient().create_run(experiment_id(config.name), run_name=pipeline_run)
        mlflow_run_id = run.info.run_id
    with stage("load", config_yaml, mlflow_run_id):
        started = time.perf_counter()
        frame = load_raw(config.data)
        digest = hash_frame(frame)
        _write_frame(as_stored(frame), raw_data, sha256=digest)
        mlflow.set_tags(
            {
                "project": config.name,
                "pipeline_run": pipeline_run,
                "git_commit": _git_commit(),
                "dataset_sha256": digest,
            }
        )
        mlflow.log_params({"data.source": config.data.source, "rows.raw": len(frame)})
        mlflow.log_text(config_yaml, "config.yaml")
        say(
            config.name,
            "load",
            f"{len(frame):,} raw rows, sha256 {digest[:12]} ({time.perf_counter() - started:.1f}s)",
        )
    return mlflow_run_id


# --- validate --------------------------------------------------------------------------------


def validate_step(
    config_yaml: str,
    run_id: str,
    raw_data: ArtifactLike,
    clean_data: ArtifactLike,
    quarantine: ArtifactLike,
    report: ArtifactLike,
) -> None:
    """Repair and quarantine rows, then gate the batch on the Great Expectations suite.

    Raises:
        DataValidationError: A batch-level expectation failed (nothing downstream runs).
    """
    import mlflow

    from features.contract import clean_rows
    from features.expectations import validate_batch
    from features.sources import hash_frame

    with stage("validate", config_yaml, run_id) as config:
        raw = _read_frame(raw_data)
        result = clean_rows(raw, config)
        outcome = validate_batch(result, config, rows_in=len(raw))
        Path(report.path).write_text(outcome.to_html())
        result.quarantine.astype(str).to_parquet(quarantine.path, index=False)
        quarantine.metadata["rows"] = len(result.quarantine)
        mlflow.log_text(outcome.to_html(), "reports/validation_report.html")
        mlflow.log_text(outcome.to_markdown(), "reports/validation_report.md")
        mlflow.log_text(result.quarantine.to_csv(index=False), "reports/quarantine.csv")
        mlflow.log_metrics(
            {
                "rows.clean": len(result.clean),
                "rows.quarantined": len(result.quarantine),
                "quarantine_fraction": result.quarantine_fraction,
            }
        )
        if not outcome.success:
            raise DataValidationError(outcome.failure_message())
        digest = hash_frame(result.clean)
        _write_frame(result.clean, clean_data, sha256=digest)
        mlflow.set_tag("clean_dataset_sha256", digest)
        say(
            config.name,
            "validate",
            f"{len(result.clean):,} clean, "
            f"{len(result.quarantine):,} quarantined, {len(outcome.checks)} expectations passed",
        )


class DataValidationError(RuntimeError):
    """The batch broke the data contract; the message lists each failed expectation."""


# --- split -----------------------------------------------------------------------------------


def split_step(
    config_yaml: str,
    run_id: str,
    clean_data: ArtifactLike,
    train: ArtifactLike,
    valid: ArtifactLike,
    test: ArtifactLike,
) -> None:
    """Split by time (or stratified at random) into train, validation and test."""
    import mlflow

    from features.split import split_data

    with stage("split", config_yaml, run_id) as config:
        parts = split_data(_read_frame(clean_data), config)
        for name, frame, artifact in zip(
            ("train", "valid", "test"), parts, (train, valid, test), strict=True
        ):
            rate = float(frame[config.target].mean())
            _write_frame(frame, artifact, positive_rate=rate)
            mlflow.log_metrics({f"rows.{name}": len(frame), f"positive_rate.{name}": rate})
        say(
            config.name,
            "split",
            " / ".join(f"{len(p):,}" for p in parts)
            + (" by time" if config.time_column else " stratified"),
        )


# --- tune ------------------------------------------------------------------------------------


def _fit_preprocessor(config: ProjectConfig, train: pd.DataFrame):
    from features.split import features_and_target
    from features.transform import build_preprocessor

    X, y = features_and_target(train, config)
    return build_preprocessor(config.numeric_features, config.categorical_features).fit(X), X, y


def default_study_storage(root: Path) -> str:
    """SQLite study storage beside the MLflow store."""
    return f"sqlite:///{(root / 'mlruns' / 'optuna.db').resolve()}"


@dataclass(frozen=True)
class TuningInputs:
    """What the tune stage and every distributed worker need: matrices and the study name."""

    X_train: Any
    y_train: Any
    X_valid: Any
    y_valid: Any
    study_name: str

    @property
    def matrices(self) -> tuple[Any, Any, Any, Any]:
        """(X_train, y_train, X_valid, y_valid), as `models.tune.tune_model` takes them."""
        return self.X_train, self.y_train, self.X_valid, self.y_valid


def tuning_inputs(config: ProjectConfig, train: pd.DataFrame, valid: pd.DataFrame) -> TuningInputs:
    """Subsample to `tuning.tune_rows`, fit the preprocessing, name the study by data and config
    (`<project>-<data hash>-<config hash>`: the same inputs resume the same study)."""
    from features.sources import hash_frame
    from features.split import features_and_target

    if config.tuning.tune_rows and len(train) > config.tuning.tune_rows:
        train = train.sample(config.tuning.tune_rows, random_state=config.tuning.seed)
    preprocess, X, y = _fit_preprocessor(config, train)
    X_valid, y_valid = features_and_target(valid, config)
    fingerprint = hash_frame(train)[:10] + "-" + _config_hash(config)[:8]
    return TuningInputs(
        preprocess.transform(X),
        y.to_numpy(),
        preprocess.transform(X_valid),
        y_valid.to_numpy(),
        f"{config.name}-{fingerprint}",
    )


def tune_step(
    config_yaml: str,
    run_id: str,
    study_storage: str,
    train: ArtifactLike,
    valid: ArtifactLike,
    best: ArtifactLike,
) -> None:
    """Run or resume the Optuna study; write the winning family and parameters."""
    import mlflow

    from models.tune import tune_model

    with stage("tune", config_yaml, run_id) as config:
        inputs = tuning_inputs(config, _read_frame(train), _read_frame(valid))
        storage = config.tuning.storage or study_storage or default_study_storage(Path.cwd())
        if storage.startswith("sqlite:///"):
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        result = tune_model(
            config,
            *inputs.matrices,
            storage=storage,
            study_name=inputs.study_name,
            on_trial=_TuneProgress(config),
        )
        payload = {k: v for k, v in result.__dict__.items() if k != "trials"}
        _write_json(payload, Path(best.path))
        best.metadata.update({"family": result.family, "value": result.value})
        mlflow.log_text(pd.DataFrame(result.trials).to_csv(index=False), "reports/study_trials.csv")
        mlflow.log_params(
            {"study_name": result.study_name, "best_family": result.family}
            | {f"best.{k}": v for k, v in result.params.items()}
        )
        mlflow.log_metrics(
            {
                "study.best_value": result.value,
                "study.trials_complete": result.trials_complete,
                "study.trials_pruned": result.trials_pruned,
            }
        )
        say(
            config.name,
            "tune",
            f"best {result.family} valid {result.metric}={result.value:.4f} "
            f"({result.trials_complete} complete, {result.trials_pruned} pruned)",
        )


class _TuneProgress:
    """Each trial as a line of the component's log; about every tenth of the budget a stage
    line (`12/30 trials, best pr_auc 0.3124 (41s)`) that `make pipeline` shows."""

    def __init__(self, config: ProjectConfig) -> None:
        self.config, self.started = config, time.perf_counter()
        self.milestones = Milestones(config.tuning.n_trials)

    def __call__(self, trial: dict[str, Any]) -> None:
        print(f"  {trial_line(trial)}", flush=True)
        if self.milestones.due(trial["finished"]):
            say(
                self.config.name,
                "tune",
                f"{trial['finished']}/{self.config.tuning.n_trials} trials, best "
                f"{self.config.evaluation.primary_metric} {_num(trial['best'])} "
                f"({time.perf_counter() - self.started:.0f}s)",
            )


def trial_line(t: dict[str, Any]) -> str:
    """One finished trial: number, family, state, value, the study's best, seconds."""
    return (
        f"trial {t['number']:>2} {t['family']:<4} {t['state']:<8} value={_num(t['value'])} "
        f"best={_num(t['best'])} ({_num(t['seconds'], 1)}s)"
    )


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _config_hash(config: ProjectConfig) -> str:
    """The config and the search spaces it tunes (defaults included: a changed default range
    starts a new study instead of resuming one over another space)."""
    import hashlib

    spaces = {
        family: {name: spec.model_dump() for name, spec in config.tuning.space(family).items()}
        for family in config.tuning.families
    }
    text = config.model_dump_json() + json.dumps(spaces, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --- train -----------------------------------------------------------------------------------


def train_step(
    config_yaml: str,
    run_id: str,
    train: ArtifactLike,
    valid: ArtifactLike,
    best: ArtifactLike,
    model: ArtifactLike,
    baseline: ArtifactLike,
) -> None:
    """Fit the winning family and the logistic baseline on the full training split.

    The decision threshold of each is chosen on validation data and kept in metadata.
    """
    from sklearn.pipeline import Pipeline

    from features.split import features_and_target
    from models.evaluate import choose_threshold
    from models.families import BASELINE, build_estimator
    from models.registry import save_model

    with stage("train", config_yaml, run_id) as config:
        tuned = json.loads(Path(best.path).read_text())
        preprocess, X, y = _fit_preprocessor(config, _read_frame(train))
        X_valid, y_valid = features_and_target(_read_frame(valid), config)
        X_matrix = preprocess.transform(X)
        for family, params, artifact in (
            (tuned["family"], tuned["params"], model),
            (BASELINE, {}, baseline),
        ):
            started = time.perf_counter()
            estimator = build_estimator(family, params, config.tuning.seed).fit(
                X_matrix, y.to_numpy()
            )
            fitted = Pipeline([("preprocess", preprocess), ("model", estimator)])
            threshold = choose_threshold(y_valid.to_numpy(), fitted.predict_proba(X_valid)[:, 1])
            save_model(fitted, Path(artifact.path))
            artifact.metadata.update(
                {
                    "family": family,
                    "params": params,
                    "threshold": threshold,
                    "framework": "sklearn",
                    "format": "skops",
                    "candidate": BASELINE if artifact is baseline else "tuned",
                }
            )
            say(
                config.name,
                "train",
                f"{family} fitted on {len(X):,} rows, threshold "
                f"{threshold:.4f} ({time.perf_counter() - started:.1f}s)",
            )


# --- evaluate --------------------------------------------------------------------------------


def _predict(artifact: ArtifactLike, X: pd.DataFrame) -> np.ndarray:
    from models.registry import load_model

    return load_model(Path(artifact.path)).predict_proba(X)[:, 1]


def evaluate_step(
    config_yaml: str,
    run_id: str,
    model: ArtifactLike,
    baseline: ArtifactLike,
    test: ArtifactLike,
    evaluation: ArtifactLike,
    selected: ArtifactLike,
) -> None:
    """Test metrics and bootstrap intervals of the tuned model and the baseline, the choice of
    the challenger between them (`models.gate.select_candidate`), and its per-slice metrics.

    Writes the selected model (a copy of its skops file and metadata, plus the rule) to
    `selected`: the model that later steps explain, export, register, gate and deploy.
    """
    import mlflow

    from features.split import features_and_target
    from models.evaluate import (
        bootstrap_indices,
        bootstrap_scores,
        classification_metrics,
        interval,
        slice_metrics,
    )
    from models.gate import BASELINE, TUNED, select_candidate

    with stage("evaluate", config_yaml, run_id) as config:
        ev, metric = config.evaluation, config.evaluation.primary_metric
        test_frame = _read_frame(test)
        X, labels = features_and_target(test_frame, config)
        y = labels.to_numpy()
        indices = bootstrap_indices(len(y), ev.bootstrap_samples, ev.seed)
        result: dict[str, Any] = {"metric": metric, "confidence": ev.confidence}
        candidates = {TUNED: model, BASELINE: baseline}
        scores = {who: _predict(artifact, X) for who, artifact in candidates.items()}
        thresholds = {who: float(a.metadata["threshold"]) for who, a in candidates.items()}
        for who in candidates:
            metrics = classification_metrics(y, scores[who], thresholds[who])
            draws = bootstrap_scores(metric, y, scores[who], indices, thresholds[who])
            result[who] = {
                "family": str(candidates[who].metadata["family"]),
                "metrics": metrics,
                "interval": interval(metrics[metric], draws, ev.confidence).to_dict(),
            }
            mlflow.log_metrics({f"{who}.test.{k}": float(v) for k, v in metrics.items()})
        selection = select_candidate(
            config, y, (scores[TUNED], thresholds[TUNED]), (scores[BASELINE], thresholds[BASELINE])
        )
        chosen = selection.candidate
        result["selection"] = selection.to_dict()
        result["challenger"] = result[chosen] | {"candidate": chosen}
        mlflow.log_metrics(
            {f"challenger.test.{k}": float(v) for k, v in result[chosen]["metrics"].items()}
        )
        result["slices"] = slice_metrics(
            test_frame, y, scores[chosen], config.slices, thresholds[chosen], ev.slice_min_rows
        )
        Path(selected.path).write_bytes(Path(candidates[chosen].path).read_bytes())
        selected.metadata.update(
            dict(candidates[chosen].metadata) | {"candidate": chosen, "selection": selection.rule}
        )
        _write_json(result, Path(evaluation.path))
        mlflow.log_dict(result, "reports/evaluation.json")
        mlflow.set_tags({"selection.candidate": chosen, "selection.rule": selection.rule})
        iv = result["challenger"]["interval"]
        evaluation.metadata.update(
            {
                "metric": metric,
                "challenger": iv["value"],
                "tuned": result[TUNED]["interval"]["value"],
                "baseline": result[BASELINE]["interval"]["value"],
                "selected": chosen,
                "rule": selection.rule,
            }
        )
        say(
            config.name,
            "evaluate",
            f"tuned test {metric}={result[TUNED]['interval']['value']:.4f}, baseline "
            f"{result[BASELINE]['interval']['value']:.4f}; challenger: {chosen} "
            f"({selection.rule}) [{iv['low']:.4f}, {iv['high']:.4f}], "
            f"{len(result['slices'])} slices",
        )


# --- explain ---------------------------------------------------------------------------------


def explain_step(
    config_yaml: str,
    run_id: str,
    model: ArtifactLike,
    train: ArtifactLike,
    test: ArtifactLike,
    explanation: ArtifactLike,
) -> None:
    """SHAP global and local explanations of the challenger, logged as artifacts."""
    import mlflow

    from features.split import model_inputs
    from models.explain import explain_model
    from models.registry import load_model

    with stage("explain", config_yaml, run_id) as config:
        settings = config.explain
        background = model_inputs(_read_frame(train), config).sample(
            min(settings.background_rows, int(train.metadata.get("rows", 10**9))),
            random_state=config.tuning.seed,
        )
        test_rows = model_inputs(_read_frame(test), config)
        rows = test_rows.sample(
            min(settings.explain_rows, len(test_rows)), random_state=config.tuning.seed
        )
        out_dir = Path(explanation.path)
        result = explain_model(
            load_model(Path(model.path)),
            model.metadata["family"],
            background,
            rows.reset_index(drop=True),
            out_dir,
            settings.local_examples,
            config.tuning.seed,
        )
        result.importance.to_csv(out_dir / "shap_importance.csv", index=False)
        _write_json(result.local, out_dir / "shap_local.json")
        mlflow.log_artifacts(str(out_dir), "reports/shap")
        explanation.metadata.update(
            {"explainer": result.explainer, "top_features": result.top_features()}
        )
        say(
            config.name,
            "explain",
            f"{result.explainer} SHAP on {len(rows)} rows; top: "
            + ", ".join(result.top_features(3)),
        )


# --- export --------------------------------------------------------------------------------


def export_step(
    config_yaml: str,
    run_id: str,
    model: ArtifactLike,
    test: ArtifactLike,
    onnx_model: ArtifactLike,
) -> None:
    """Export the challenger, preprocessing included, to ONNX and prove parity on test rows.

    Raises:
        ParityError: ONNX and in-process probabilities differ by more than the tolerance
            (the model is then neither registered nor deployed).
    """
    import mlflow

    from features.split import model_inputs
    from models.registry import load_model, sha256_hex
    from serving.deploy import ONNX_ARTIFACT
    from serving.onnx_export import TARGET_OPSET, assert_parity, export_onnx

    with stage("export", config_yaml, run_id) as config:
        fitted = load_model(Path(model.path))
        columns = (config.numeric_features, config.categorical_features)
        onnx_bytes = export_onnx(fitted, *columns, name=config.model_name)
        rows = model_inputs(_read_frame(test), config)
        parity = assert_parity(fitted, onnx_bytes, rows, *columns, config.serving.parity_tolerance)
        Path(onnx_model.path).write_bytes(onnx_bytes)
        report = parity.__dict__ | {
            "opset": TARGET_OPSET,
            "bytes": len(onnx_bytes),
            "sha256": sha256_hex(onnx_bytes),
        }
        onnx_model.metadata.update({"framework": "onnx", **report})
        _log_bytes(onnx_bytes, ONNX_ARTIFACT)
        mlflow.log_dict(report, "onnx/parity.json")
        mlflow.log_metric("onnx.parity_max_abs_diff", parity.max_abs_diff)
        say(
            config.name,
            "export",
            f"ONNX {len(onnx_bytes) / 1024:.0f} KiB, parity max |diff| "
            f"{parity.max_abs_diff:.2e} over {parity.rows:,} test rows",
        )


# --- register and gate -----------------------------------------------------------------------


def register_step(
    config_yaml: str,
    run_id: str,
    model: ArtifactLike,
    baseline: ArtifactLike,
    train: ArtifactLike,
    test: ArtifactLike,
    evaluation: ArtifactLike,
    onnx_model: ArtifactLike,
    registered: ArtifactLike,
) -> None:
    """Log challenger, baseline and the drift reference (training rows) to MLflow, and
    register the challenger (the selected candidate, possibly the baseline) as a new version,
    with the SHA-256 of its ONNX graph and of its skops file as version tags (what deploy and
    the gate verify) and the rule that selected it."""
    import mlflow

    from features.split import model_inputs
    from models.reference import log_reference, reference_frame
    from models.registry import (
        ONNX_SHA256_TAG,
        SKOPS_SHA256_TAG,
        load_model,
        log_model,
        logged_skops_sha256,
        register,
        sha256_hex,
    )
    from serving.deploy import ONNX_ARTIFACT

    with stage("register", config_yaml, run_id) as config:
        example = model_inputs(_read_frame(test).head(50), config)
        fitted = load_model(Path(model.path))
        log_model(load_model(Path(baseline.path)), example, name="baseline")
        uri = log_model(fitted, example, name="model")
        log_reference(reference_frame(_read_frame(train), config, fitted))
        run = mlflow.get_run(run_id)
        tags = {
            "family": str(model.metadata["family"]),
            "selection.candidate": str(model.metadata.get("candidate", "tuned")),
            "selection.rule": str(evaluation.metadata.get("rule", "")),
            "threshold": str(model.metadata["threshold"]),
            "baseline.threshold": str(baseline.metadata["threshold"]),
            "dataset_sha256": run.data.tags.get("dataset_sha256", ""),
            "run_id": run_id,
            f"test.{evaluation.metadata['metric']}": f"{evaluation.metadata['challenger']:.6f}",
            "onnx.parity_max_abs_diff": f"{onnx_model.metadata['max_abs_diff']:.3g}",
            "onnx.artifact": ONNX_ARTIFACT,
            ONNX_SHA256_TAG: sha256_hex(Path(onnx_model.path).read_bytes()),
            SKOPS_SHA256_TAG: logged_skops_sha256(uri),
        }
        version = register(uri, config.model_name, run_id, tags)
        _write_json(version.__dict__ | {"model_uri": uri}, Path(registered.path))
        registered.metadata.update(version.__dict__)
        mlflow.set_tags({"model_name": version.name, "model_version": version.version})
        say(config.name, "register", f"{version.name} version {version.version} (alias challenger)")


def gate_step(
    config_yaml: str,
    run_id: str,
    registered: ArtifactLike,
    model: ArtifactLike,
    tuned: ArtifactLike,
    baseline: ArtifactLike,
    test: ArtifactLike,
    evaluation: ArtifactLike,
    explanation: ArtifactLike,
    decision: ArtifactLike,
) -> None:
    """Compare challenger, champion and baseline and decide; the deploy step moves the alias.

    The challenger (`model`) is the candidate the evaluate step selected; the selection is
    recomputed here from the tuned model and the baseline, and a challenger that is not the
    candidate the rule picks stops the step. The comparison with the candidates follows the
    selection's rule; the one with an existing champion always requires a gain.

    Fails closed: a tracking store that does not answer stops the step (nothing moved); a
    champion that exists but cannot be scored (no `threshold` tag, artifact missing or changed,
    features changed) makes the gate refuse, unless
    `gate.allow_baseline_only_when_champion_unusable` allows a baseline-only comparison. The
    record names the champion compared against (`previous_champion`), which the deploy step
    requires to still be champion when it moves the alias.

    Writes the decision record (version tags + JSON artifact) and the model card either way.
    """
    import mlflow

    from features.split import features_and_target
    from models.gate import decide_promotion, select_candidate
    from models.model_card import render_model_card
    from models.registry import champion_version, check_tracking, record_decision

    with stage("gate", config_yaml, run_id) as config:
        version = _version(registered)
        X, labels = features_and_target(_read_frame(test), config)
        y = labels.to_numpy()
        challenger = (_predict(model, X), float(model.metadata["threshold"]))
        base = (_predict(baseline, X), float(baseline.metadata["threshold"]))
        scored_tuned = (_predict(tuned, X), float(tuned.metadata["threshold"]))
        selection = select_candidate(config, y, scored_tuned, base)
        candidate = model.metadata.get("candidate")
        if candidate != selection.candidate:
            raise SelectionMismatchError(
                f"the challenger is the {candidate} model, but on this test set the selection "
                f"rule picks the {selection.candidate} one ({selection.reason})"
            )
        champion, unusable, current = None, "", champion_version(config.model_name)
        if current is not None:
            try:
                champion = _score_champion(config.model_name, current, X)
            except Exception as exc:  # noqa: BLE001 - blocks the promotion, in the record
                check_tracking(mlflow.get_tracking_uri())  # a store that went down stops the run
                unusable = (
                    f"champion version {current} exists but could not be scored on this test "
                    f"set ({exc.__class__.__name__}: {str(exc)[:300]})"
                )
        evaluation_data = json.loads(Path(evaluation.path).read_text())
        verdict = decide_promotion(
            config, y, challenger, base, champion, evaluation_data["slices"], unusable,
            selection=selection, tuned=scored_tuned,
        ).to_dict()  # fmt: skip
        intervals = {
            who: evaluation_data[who]["interval"] for who in ("challenger", "tuned", "baseline")
        }
        for row in verdict["comparisons"]:
            if row["opponent"] == "champion":
                intervals["champion"] = {
                    "value": row["opponent_value"],
                    "low": row["opponent_low"],
                    "high": row["opponent_high"],
                }
        verdict |= {
            "challenger_version": version.version,
            "challenger_candidate": selection.candidate,
            "previous_champion": current,
            "intervals": intervals,
        }
        card = render_model_card(
            project=config.name,
            description=config.description,
            model_name=version.name,
            version=version.version,
            family=str(model.metadata["family"]),
            params=dict(model.metadata.get("params", {})),
            lineage=_lineage(run_id),
            metrics=evaluation_data["challenger"]["metrics"],
            primary={
                "metric": verdict["metric"],
                "confidence": verdict["confidence"],
                "intervals": verdict["intervals"],
            },
            slices=evaluation_data["slices"],
            top_features=_top_features(explanation),
            decision=verdict,
            selection=verdict["selection"],
        )
        out = Path(decision.path)
        out.mkdir(parents=True, exist_ok=True)
        _write_json(verdict, out / DECISION_FILE)
        (out / "model_card.md").write_text(card)
        mlflow.log_dict(verdict, f"reports/{DECISION_FILE}")
        mlflow.log_text(card, "reports/model_card.md")
        mlflow.MlflowClient().update_model_version(version.name, version.version, description=card)
        mlflow.set_tags({"promoted": str(verdict["promote"]).lower()})
        record_decision(version, verdict)
        decision.metadata.update({"promote": verdict["promote"], "version": version.version})
        say(
            config.name,
            "gate",
            ("passed" if verdict["promote"] else "not promoted") + f": {verdict['reasons'][0]}",
        )


class SelectionMismatchError(RuntimeError):
    """The model handed to the gate is not the candidate the selection rule picks."""


def _score_champion(name: str, version: str, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    """The champion's test probabilities and threshold, from its verified skops file."""
    import mlflow

    from models.registry import load_version

    tags = mlflow.MlflowClient().get_model_version(name, version).tags
    if "threshold" not in tags:
        raise KeyError(f"version {version} has no `threshold` tag")
    model = load_version(name, version, tags)
    return model.predict_proba(X)[:, 1], float(tags["threshold"])


def _version(registered: ArtifactLike):
    from models.registry import Version

    data = json.loads(Path(registered.path).read_text())
    return Version(data["name"], data["version"], data["run_id"])


def _lineage(run_id: str) -> dict[str, Any]:
    import mlflow

    run = mlflow.get_run(run_id)
    tags, metrics = run.data.tags, run.data.metrics
    return {
        "dataset_sha256 (raw)": tags.get("dataset_sha256"),
        "dataset_sha256 (clean)": tags.get("clean_dataset_sha256"),
        **{
            f"rows ({part})": int(metrics.get(f"rows.{part}", 0))
            for part in ("clean", "quarantined", "train", "valid", "test")
        },
        "git_commit": tags.get("git_commit"),
        "mlflow_run_id": run_id,
        "pipeline_run": tags.get("pipeline_run"),
    }


def _top_features(explanation: ArtifactLike, k: int = 10) -> list[dict[str, Any]]:
    table = pd.read_csv(Path(explanation.path) / "shap_importance.csv")
    # read_csv labels columns with the header's strings
    return cast(list[dict[str, Any]], table.head(k).to_dict("records"))


# --- deploy --------------------------------------------------------------------------------


def _version_parameters(version, model: ArtifactLike) -> tuple[float, dict[str, str]]:
    """A version's decision threshold and the other config parameters served with it."""
    threshold = float(model.metadata["threshold"])
    return threshold, {"threshold": str(threshold), "registry_version": version.version}


def _candidate(config: ProjectConfig, version, model: ArtifactLike, onnx_model: ArtifactLike,
               test: ArtifactLike):  # fmt: skip
    """The promoted challenger as infra validation proves it (holdout rows, expectations)."""
    import mlflow

    from features.split import model_inputs
    from models.registry import ONNX_SHA256_TAG
    from serving.infra_validation import Candidate

    tags = mlflow.MlflowClient().get_model_version(version.name, version.version).tags
    rows = model_inputs(_read_frame(test).head(config.serving.validation_rows), config)
    threshold, parameters = _version_parameters(version, model)
    return Candidate(
        version.name, int(version.version), Path(onnx_model.path).read_bytes(), rows,
        _predict(model, rows),
        sha256=tags.get(ONNX_SHA256_TAG, ""),
        threshold=threshold,
        parameters=parameters,
        tolerance=config.serving.parity_tolerance,
        p99_budget_ms=config.serving.p99_budget_ms,
    )  # fmt: skip


def stage_candidate_step(
    config_yaml: str,
    run_id: str,
    registered: ArtifactLike,
    model: ArtifactLike,
    onnx_model: ArtifactLike,
    test: ArtifactLike,
    decision: ArtifactLike,
    candidate: ArtifactLike,
) -> None:
    """Cluster: stage a promoted challenger for the production Triton image (the onnxruntime
    backend, as the predictor serves it); a folder without a case when the gate refused.

    Raises:
        ArtifactIntegrityError: the ONNX is not the registered one (nothing is staged).
    """
    from serving.infra_validation import stage_candidate

    with stage("stage-candidate", config_yaml, run_id) as config:
        folder = Path(candidate.path)
        folder.mkdir(parents=True, exist_ok=True)
        verdict = json.loads((Path(decision.path) / DECISION_FILE).read_text())
        if not verdict["promote"]:
            say(config.name, "deploy", "nothing to stage: the gate did not pass")
            return
        version = _version(registered)
        stage_candidate(_candidate(config, version, model, onnx_model, test), folder,
                        backend="onnxruntime")  # fmt: skip
        candidate.metadata.update({"version": version.version, "backend": "onnxruntime"})
        say(config.name, "deploy", f"version {version.version} staged for the production Triton")


def deploy_step(
    config_yaml: str,
    run_id: str,
    serving_repository: str,
    registered: ArtifactLike,
    model: ArtifactLike,
    onnx_model: ArtifactLike,
    test: ArtifactLike,
    decision: ArtifactLike,
    deployment: ArtifactLike,
    production_report: ArtifactLike | None = None,
) -> None:
    """Infra-validate a promoted challenger in a private Triton, then move `champion`.

    Only a challenger the gate passed is validated, from its ONNX verified against the
    registered `onnx_sha256`; only a validated one is published to `serving_repository`
    (where a polling Triton picks it up) and then becomes champion, under the model's
    promotion lock and only if the champion is still the one the gate compared against
    (else refused and recorded: the next run gates against the new champion). A publish that
    fails puts the repository back and leaves the alias. A refusal or failed validation
    leaves the previous champion serving and is recorded, not raised; a changed artifact is
    raised. With `production_report` (the cluster: `stage_candidate_step`, then the production
    Triton image) that report decides instead of a local Triton; a missing one fails closed.
    """
    import mlflow

    from models.registry import ChampionMovedError
    from serving.deploy import switch_champion
    from serving.infra_validation import read_probe_report, served_parameters, validate_candidate

    with stage("deploy", config_yaml, run_id) as config:
        version = _version(registered)
        verdict = json.loads((Path(decision.path) / DECISION_FILE).read_text())
        record: dict[str, Any] = {"version": version.version, "deployed": False}
        if not verdict["promote"]:
            record["reasons"] = [f"gate did not pass: {verdict['reasons'][0]}"]
        else:
            client = mlflow.MlflowClient()
            if production_report is None:
                report = validate_candidate(_candidate(config, version, model, onnx_model, test))
            else:  # staged and probed by the cluster's steps: only the parameters are needed
                threshold, parameters = _version_parameters(version, model)
                served = served_parameters(int(version.version), threshold, parameters)
                report = read_probe_report(Path(production_report.path), served)
            record |= {"infra_validation": report.to_dict(), "reasons": report.reasons}
            expected = verdict.get("previous_champion")
            record["previous_champion"] = expected
            if report.passed:
                try:
                    switch_champion(
                        version.name, version.version, expected=expected,
                        event=f"promoted: {verdict['reasons'][0]}",
                        repo=Path(serving_repository) if serving_repository else None,
                        keep=config.serving.keep_versions,
                    )  # fmt: skip
                except ChampionMovedError as exc:
                    record["reasons"] = [f"refused at promotion: {exc}", *report.reasons]
                else:
                    if serving_repository:
                        record["serving_repository"] = serving_repository
                    info = client.get_model_version(version.name, version.version)
                    record["deployed"] = True
                    record["lead_time_s"] = round(time.time() - info.creation_timestamp / 1000, 2)
                    mlflow.log_metric("deployment_lead_time_s", record["lead_time_s"])
            mlflow.log_metrics({"infra.p99_ms": report.p99_ms,
                                "infra.max_abs_diff": report.max_abs_diff})  # fmt: skip
        _write_json(record, Path(deployment.path))
        deployment.metadata.update({"deployed": record["deployed"]})
        mlflow.log_dict(record, f"reports/{DEPLOYMENT_FILE}")
        mlflow.set_tags({"deployed": str(record["deployed"]).lower()})
        mlflow.MlflowClient().set_model_version_tag(
            version.name, version.version, "deploy.status",
            "deployed" if record["deployed"] else "not deployed: " + record["reasons"][0][:4000],
        )  # fmt: skip
        outcome = "DEPLOYED as champion" if record["deployed"] else "not deployed"
        say(config.name, "deploy", f"{outcome}: {record['reasons'][0]}")
