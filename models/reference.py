"""The drift reference of a model version: its training rows, logged beside the model.

The register step logs the training split (model inputs, 0/1 target and the model's own
probability) as Parquet into the version's MLflow run, so every window is compared with the
data of the version that served it. Parquet is data, not code: safe to read from a shared store.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from configs.schema import ProjectConfig

REFERENCE_ARTIFACT = "reference/train.parquet"
TARGET_COLUMN = "label"  # the 0/1 target in reference and labelled log frames
SCORE_COLUMN = "score"  # probability of the positive class


class MissingReferenceError(LookupError):
    """A model version has no logged reference data."""


def reference_frame(train: pd.DataFrame, config: ProjectConfig, model: Any) -> pd.DataFrame:
    """Model inputs of `train` with its 0/1 label and the model's score."""
    from features.split import features_and_target

    X, y = features_and_target(train, config)
    return X.assign(**{TARGET_COLUMN: y.to_numpy(), SCORE_COLUMN: model.predict_proba(X)[:, 1]})


def log_reference(frame: pd.DataFrame) -> None:
    """Log `frame` to the active MLflow run as the version's reference."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
        frame.to_parquet(path, index=False)
        mlflow.log_artifact(str(path), str(Path(REFERENCE_ARTIFACT).parent))


def load_reference(model_name: str, version: str) -> pd.DataFrame:
    """The reference frame logged with `model_name` version `version`."""
    import mlflow

    run_id = mlflow.MlflowClient().get_model_version(model_name, str(version)).run_id
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp
            )
        except Exception as exc:
            raise MissingReferenceError(
                f"{model_name} version {version} (run {run_id}) has no {REFERENCE_ARTIFACT}; "
                "it was registered before references were logged: retrain it"
            ) from exc
        return pd.read_parquet(path)
