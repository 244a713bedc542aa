"""Shared fixtures: repo paths, a small project config, and a real MLflow SQLite store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = REPO / "tests" / "configs" / "fraud_small.yaml"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def write_config(path: Path, **overrides) -> Path:
    """Write the small fraud config with nested overrides ({'tuning': {'n_trials': 2}})."""
    raw = yaml.safe_load(SMALL_CONFIG.read_text())
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def load_as_configured(config_yaml: str, pipeline_run: str, raw_data) -> str:
    """The load step with the config's own run parameters, as `make pipeline` passes them;
    returns the MLflow run id."""
    from configs import run_parameters
    from pipelines.steps.data import load_step
    from pipelines.steps.edge import config_from_yaml

    parameters = run_parameters(config_from_yaml(config_yaml))
    return load_step(config_yaml, "", pipeline_run, **parameters, raw_data=raw_data).run_id


@pytest.fixture(scope="session")
def tracking(tmp_path_factory) -> str:
    """A real MLflow tracking store (SQLite) for the session; env var set for subprocesses."""
    import mlflow

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    yield uri
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
