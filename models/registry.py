"""MLflow edge: tracking store, safe model persistence, registration, aliases and rollback.

Models are stored with skops, never pickle, and loaded against the allow-list below, which
lives in this code and not in the model files (a model cannot vouch for itself).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from configs.console import UserError

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
SKOPS_FILE = "model.skops"
# Every non-builtin type the platform's models contain; saving anything else fails early.
TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "models.torch_mlp.TorchMLPClassifier",
)


class RegistryError(UserError, RuntimeError):
    """The tracking store is unreachable or the registry is not in the expected state."""


def default_tracking_uri(root: Path) -> str:
    """The embedded SQLite store under the project directory."""
    return f"sqlite:///{(root / 'mlruns' / 'mlflow.db').resolve()}"


def configure_tracking(root: Path) -> str:
    """Use `MLFLOW_TRACKING_URI` if set, else the embedded store; check that it answers."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    check_tracking(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # inherited by the pipeline's components
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # clean CLI output
    mlflow.set_tracking_uri(uri)
    return uri


def check_tracking(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the URI, when an MLflow tracking server does not answer."""
    if urlparse(uri).scheme not in {"http", "https"}:
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout_s).raise_for_status()
    except requests.RequestException as exc:
        raise RegistryError(
            f"MLflow tracking server unreachable at MLFLOW_TRACKING_URI={uri} "
            f"({exc.__class__.__name__})",
            hint="start that server, or `unset MLFLOW_TRACKING_URI` to use the embedded store "
            "(mlruns/)",
        ) from None


def experiment_id(project: str, artifact_root: Path | None = None) -> str:
    """The project's experiment, created on first use with artifacts beside the store."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(project)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root is not None:
        location = (artifact_root / project).resolve().as_uri()
    return mlflow.create_experiment(project, artifact_location=location)


def save_model(model: Any, path: Path) -> None:
    """Write a model with skops, refusing types outside `TRUSTED_TYPES`."""
    import skops.io as sio

    data = sio.dumps(model)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise RegistryError(f"model holds types not in the trusted list: {untrusted}")
    path.write_bytes(data)


def load_model(path: Path) -> Any:
    """Read a skops model file against the platform's allow-list."""
    import skops.io as sio

    return sio.load(path, trusted=list(TRUSTED_TYPES))


def log_model(model: Any, example: pd.DataFrame, name: str = "model") -> str:
    """Log a fitted pipeline to the active run (skops, signature, input example); its URI."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict_proba(example)[:, 1])
    info = mlflow.sklearn.log_model(
        model,
        name=name,
        serialization_format="skops",
        skops_trusted_types=list(TRUSTED_TYPES),
        signature=signature,
        input_example=example.head(5),
        pip_requirements=_requirements(model),
    )
    return info.model_uri


def _requirements(model: Any) -> list[str]:
    """Pinned runtime requirements (stated, so MLflow need not import-trace the model)."""
    from importlib.metadata import version

    packages = ["scikit-learn", "skops", "numpy", "pandas", "tabular-mlops"]
    if "TorchMLPClassifier" in repr(model):
        packages.append("torch")
    return [f"{p}=={version(p)}" for p in packages]


def load_registered(model_uri: str) -> Any:
    """Load a logged or registered model (`models:/name@alias`) without unpickling."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        return load_model(local / SKOPS_FILE)


@dataclass(frozen=True)
class Version:
    """A registered model version."""

    name: str
    version: str
    run_id: str | None


def register(model_uri: str, name: str, run_id: str, tags: dict[str, str]) -> Version:
    """Register a logged model as a new version and point the `challenger` alias at it."""
    import mlflow

    client = mlflow.MlflowClient()
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return Version(name, str(version.version), run_id)


def champion_version(name: str) -> str | None:
    """The version behind the `champion` alias, or None."""
    import mlflow

    client = mlflow.MlflowClient()
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return None


def champion_history(name: str) -> list[dict[str, str]]:
    """Every alias move, oldest first (promotions and rollbacks)."""
    import mlflow

    model = mlflow.MlflowClient().get_registered_model(name)
    return json.loads(model.tags.get(HISTORY_TAG, "[]"))


def record_decision(version: Version, decision: dict[str, Any]) -> None:
    """Tag the version with the gate's decision (the JSON record goes to the run)."""
    import mlflow

    client = mlflow.MlflowClient()
    tags = {
        "gate.promoted": str(decision["promote"]).lower(),
        "gate.reasons": " | ".join(decision["reasons"])[:4900],
        "gate.metric": str(decision["metric"]),
    }
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, value)


def promote(version: Version, reason: str) -> None:
    """Move `champion` to this version and append the move to the history."""
    _move_champion(version.name, version.version, f"promoted: {reason}")


def rollback(name: str) -> str:
    """Move `champion` back to the version that held it before the current one.

    Returns:
        The version now behind `champion`.

    Raises:
        RegistryError: There is no champion, or no earlier champion to return to.
    """
    current = champion_version(name)
    if current is None:
        raise RegistryError(f"model '{name}' has no champion to roll back")
    stack = _champion_stack(champion_history(name))
    if len(stack) < 2:
        raise RegistryError(f"model '{name}' has no earlier champion than version {current}")
    target = stack[-2]
    _move_champion(name, target, f"rollback from version {current}")
    return target


def _champion_stack(history: list[dict[str, str]]) -> list[str]:
    """Replay the history: promotions push, rollbacks pop."""
    stack: list[str] = []
    for event in history:
        if event["event"].startswith("rollback"):
            stack.pop()
        else:
            stack.append(event["version"])
    return stack


def _move_champion(name: str, version: str, event: str) -> None:
    import mlflow

    client = mlflow.MlflowClient()
    history = champion_history(name)
    history.append(
        {"version": version, "event": event, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    )
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
