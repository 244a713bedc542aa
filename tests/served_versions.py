"""Registered model versions as the pipeline leaves them (skops model, ONNX in the run, hashes
and threshold as version tags), for the deploy, rollback and promotion-integrity tests."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from models import registry
from serving.deploy import ONNX_ARTIFACT


def register_served_version(
    name: str,
    model: Any,
    onnx_bytes: bytes,
    threshold: float,
    example: pd.DataFrame,
    shap_dir: Path | None = None,
) -> registry.Version:
    """Log `model` and its ONNX to a new run of the `name` experiment and register a version;
    `shap_dir` (the explain step's output) is logged as the run's `reports/shap`."""
    import mlflow

    with mlflow.start_run(experiment_id=registry.experiment_id(name)) as run:
        uri = registry.log_model(model, example)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(ONNX_ARTIFACT).name
            path.write_bytes(onnx_bytes)
            mlflow.log_artifact(str(path), str(Path(ONNX_ARTIFACT).parent))
        if shap_dir is not None:
            mlflow.log_artifacts(str(shap_dir), "reports/shap")
    tags = {
        "threshold": repr(threshold),
        registry.ONNX_SHA256_TAG: registry.sha256_hex(onnx_bytes),
        registry.SKOPS_SHA256_TAG: registry.logged_skops_sha256(uri),
    }
    return registry.register(uri, name, run.info.run_id, tags)


def onnx_artifact_path(name: str, version: str) -> Path:
    """Where a version's ONNX lies in a local (file) artifact store: what an attacker swaps."""
    from urllib.parse import urlparse

    import mlflow

    run = mlflow.get_run(mlflow.MlflowClient().get_model_version(name, version).run_id)
    return Path(urlparse(run.info.artifact_uri).path) / ONNX_ARTIFACT


def bare_versions(name: str, count: int) -> list[registry.Version]:
    """Registered versions without artifacts (alias moves never read them)."""
    import mlflow

    client = mlflow.MlflowClient()
    client.create_registered_model(name)
    created = [client.create_model_version(name, source="s3://unused/model") for _ in range(count)]
    return [registry.Version(name, str(v.version), None) for v in created]


def race(challengers: list[registry.Version], expected: str) -> dict[str, str]:
    """Promote every challenger at once, each from its own thread and gated against `expected`;
    returns {version: "promoted" | "refused"}."""
    import threading

    barrier = threading.Barrier(len(challengers))
    outcomes: dict[str, str] = {}

    def promote(version: registry.Version) -> None:
        barrier.wait()
        try:
            registry.promote(version, f"gated against {expected}", expected=expected)
            outcomes[version.version] = "promoted"
        except registry.ChampionMovedError:
            outcomes[version.version] = "refused"

    threads = [threading.Thread(target=promote, args=(v,)) for v in challengers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes
