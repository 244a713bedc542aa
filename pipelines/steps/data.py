"""The data stages: load the raw table (and open the MLflow run), validate it against the data
contract, split it into train, validation and test."""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from pipelines.steps.edge import (
    ArtifactLike,
    config_from_yaml,
    git_commit,
    read_frame,
    say,
    stage,
    write_frame,
)


def as_stored(raw: pd.DataFrame) -> pd.DataFrame:
    """The raw table as the load step stores it: mixed-type text columns (numbers with junk)
    kept as text, so Parquet can hold them."""
    mixed = [c for c in raw.columns if raw[c].dtype == object]
    return raw.astype(dict.fromkeys(mixed, "string"))


class Loaded(NamedTuple):
    """What the load step hands on: the MLflow run and the run's config (parameters applied)."""

    run_id: str
    config_yaml: str


def load_step(
    config_yaml: str,
    mlflow_run_id: str,
    pipeline_run: str,
    n_trials: int,
    primary_metric: str,
    min_gain_over_baseline: float,
    noninferiority_margin: float,
    min_gain_over_champion: float,
    raw_data: ArtifactLike,
) -> Loaded:
    """Apply the run's parameters to the config, read the raw table, open (or join) the MLflow
    run, log the config and lineage.

    Returns:
        The MLflow run id that every later step logs into, and the config they all run with
        (`config_yaml` with the run parameters of `configs.RUN_PARAMETERS` applied).
    """
    import mlflow

    from configs import run_parameters, with_run_parameters
    from features.sources import hash_frame, load_raw
    from models.registry import experiment_id

    parameters = {"n_trials": n_trials, "primary_metric": primary_metric,
                  "min_gain_over_baseline": min_gain_over_baseline,
                  "noninferiority_margin": noninferiority_margin,
                  "min_gain_over_champion": min_gain_over_champion}  # fmt: skip
    config = with_run_parameters(config_from_yaml(config_yaml), parameters)
    config_yaml = config.model_dump_json(exclude_defaults=True)
    if not mlflow_run_id:
        run = mlflow.MlflowClient().create_run(experiment_id(config.name), run_name=pipeline_run)
        mlflow_run_id = run.info.run_id
    with stage("load", config_yaml, mlflow_run_id):
        started = time.perf_counter()
        frame = load_raw(config.data)
        digest = hash_frame(frame)
        write_frame(as_stored(frame), raw_data, sha256=digest)
        mlflow.set_tags(
            {
                "project": config.name,
                "pipeline_run": pipeline_run,
                "git_commit": git_commit(),
                "dataset_sha256": digest,
            }
        )
        encoding = frame.attrs.get("encoding")
        mlflow.log_params({"data.source": config.data.source, "rows.raw": len(frame)})
        if encoding:
            mlflow.log_param("data.encoding", encoding)
        mlflow.log_params({f"run.{k}": v for k, v in run_parameters(config).items()})
        mlflow.log_text(config_yaml, "config.yaml")
        say(
            config.name,
            "load",
            f"{len(frame):,} raw rows{f' (read as {encoding})' if encoding else ''}, sha256 "
            f"{digest[:12]} ({time.perf_counter() - started:.1f}s)",
        )
    return Loaded(mlflow_run_id, config_yaml)


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
        raw = read_frame(raw_data)
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
        write_frame(result.clean, clean_data, sha256=digest)
        mlflow.set_tag("clean_dataset_sha256", digest)
        say(
            config.name,
            "validate",
            f"{len(result.clean):,} clean, "
            f"{len(result.quarantine):,} quarantined, {len(outcome.checks)} expectations passed",
        )


class DataValidationError(RuntimeError):
    """The batch broke the data contract; the message lists each failed expectation."""


def split_step(
    config_yaml: str,
    run_id: str,
    clean_data: ArtifactLike,
    train: ArtifactLike,
    valid: ArtifactLike,
    test: ArtifactLike,
) -> None:
    """Split by time (or stratified at random, groups kept whole) into train, validation and
    test."""
    import mlflow

    from features.split import split_data

    with stage("split", config_yaml, run_id) as config:
        parts = split_data(read_frame(clean_data), config)
        for name, frame, artifact in zip(
            ("train", "valid", "test"), parts, (train, valid, test), strict=True
        ):
            rate = float(frame[config.target].mean())
            write_frame(frame, artifact, positive_rate=rate)
            mlflow.log_metrics({f"rows.{name}": len(frame), f"positive_rate.{name}": rate})
            if config.time_column and len(frame):
                stamps = pd.to_datetime(frame[config.time_column])
                mlflow.set_tag(f"time_range.{name}", f"{stamps.min()} .. {stamps.max()}")
        say(
            config.name,
            "split",
            " / ".join(f"{len(p):,}" for p in parts)
            + (" by time" if config.time_column else " stratified")
            + (f", by '{config.split.group_column}' groups" if config.split.group_column else ""),
        )
