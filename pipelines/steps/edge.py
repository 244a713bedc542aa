"""What every step shares: its stage inside the pipeline's MLflow run, artifacts as files,
one progress line per stage.

Artifacts are duck-typed (anything with `.path` and `.metadata`), so the steps run the same
inside kfp and in tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import yaml

from configs import ProjectConfig, parse_config
from configs.cli import setup_logging

if TYPE_CHECKING:
    from models.registry import Version


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


def write_frame(frame: pd.DataFrame, artifact: ArtifactLike, **metadata: Any) -> None:
    """A table as Parquet, its rows, columns and `metadata` on the artifact."""
    frame.to_parquet(artifact.path, index=False)
    artifact.metadata.update({"rows": len(frame), "columns": list(map(str, frame.columns))})
    artifact.metadata.update(metadata)


def read_frame(artifact: ArtifactLike) -> pd.DataFrame:
    """A table a previous step wrote."""
    return pd.read_parquet(artifact.path)


def write_json(data: Any, path: Path) -> None:
    """`data` as indented JSON, parent folders created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def log_bytes(data: bytes, artifact_path: str) -> None:
    """Log raw bytes to the active run under `artifact_path` (directory/name)."""
    import tempfile

    import mlflow

    folder, name = artifact_path.rsplit("/", 1)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / name).write_bytes(data)
        mlflow.log_artifact(str(Path(tmp) / name), folder)


def git_commit() -> str:
    """The checkout's commit, else `GIT_COMMIT` (the image has no .git), else "unknown"."""
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


def predict(artifact: ArtifactLike, X: pd.DataFrame) -> np.ndarray:
    """Positive-class probabilities of the skops model in `artifact`."""
    from models.registry import load_model

    return load_model(Path(artifact.path)).predict_proba(X)[:, 1]


def read_version(registered: ArtifactLike) -> Version:
    """The registered version the register step wrote."""
    from models.registry import Version

    data = json.loads(Path(registered.path).read_text())
    return Version(data["name"], data["version"], data["run_id"])
