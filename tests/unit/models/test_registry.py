"""Registry tests against a real MLflow SQLite store and real skops files."""

import json
import socket
import time

import mlflow
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from features.split import model_inputs
from models import registry
from models.registry import RegistryError


def test_skops_round_trip_keeps_predictions(gbdt_model, fraud_config, fraud_splits, tmp_path):
    X = model_inputs(fraud_splits[2].head(200), fraud_config)
    path = tmp_path / "model.skops"
    registry.save_model(gbdt_model, path)
    loaded = registry.load_model(path)
    assert (loaded.predict_proba(X) == gbdt_model.predict_proba(X)).all()


def test_types_outside_the_allow_list_are_refused_at_save(tmp_path):
    sneaky = Pipeline([("f", FunctionTransformer(json.loads))])
    with pytest.raises(RegistryError, match="not in the trusted list"):
        registry.save_model(sneaky, tmp_path / "m.skops")
    assert not (tmp_path / "m.skops").exists()


def test_unreachable_tracking_server_fails_fast_naming_the_uri():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    uri = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    with pytest.raises(RegistryError, match=f"unreachable at MLFLOW_TRACKING_URI={uri}"):
        registry.check_tracking(uri, timeout_s=2)
    assert time.perf_counter() - started < 5
    registry.check_tracking("sqlite:///anything.db")  # embedded stores need no server


def test_configure_tracking_defaults_to_the_embedded_store(tmp_path, monkeypatch, tracking):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    uri = registry.configure_tracking(tmp_path)
    assert uri == registry.default_tracking_uri(tmp_path)
    assert (tmp_path / "mlruns").is_dir()
    mlflow.set_tracking_uri(tracking)


def _register(model, example, name):
    exp = registry.experiment_id("registry-test")
    with mlflow.start_run(experiment_id=exp) as run:
        uri = registry.log_model(model, example)
    return registry.register(uri, name, run.info.run_id, {"threshold": "0.5"})


def test_register_promote_and_rollback_keep_history(
    tracking, gbdt_model, baseline_model, fraud_config, fraud_splits
):
    name = "rollback-test"
    example = model_inputs(fraud_splits[2].head(20), fraud_config)
    assert registry.champion_version(name) is None
    v1 = _register(gbdt_model, example, name)
    with pytest.raises(RegistryError, match="no champion to roll back"):
        registry.rollback(name)
    registry.promote(v1, "first")
    with pytest.raises(RegistryError, match="no earlier champion than version 1"):
        registry.rollback(name)
    v2 = _register(baseline_model, example, name)
    assert registry.champion_version(name) == "1"  # registering alone moves nothing
    registry.promote(v2, "better")
    assert registry.champion_version(name) == "2"
    assert registry.rollback(name) == "1"
    assert registry.champion_version(name) == "1"
    events = [e["event"] for e in registry.champion_history(name)]
    assert events == ["promoted: first", "promoted: better", "rollback from version 2"]

    loaded = registry.load_registered(f"models:/{name}@champion")
    assert (loaded.predict_proba(example) == gbdt_model.predict_proba(example)).all()
    info = mlflow.MlflowClient().get_model_version(name, "2")
    assert info.tags["threshold"] == "0.5"
    signature = mlflow.models.get_model_info(f"models:/{name}/2").signature
    assert signature.inputs.input_names() == list(fraud_config.features)


def test_decision_is_recorded_as_version_tags(tracking, gbdt_model, fraud_config, fraud_splits):
    example = model_inputs(fraud_splits[2].head(20), fraud_config)
    version = _register(gbdt_model, example, "decision-test")
    registry.record_decision(version, {"promote": False, "reasons": ["a", "b"], "metric": "pr_auc"})
    tags = mlflow.MlflowClient().get_model_version("decision-test", version.version).tags
    assert tags["gate.promoted"] == "false" and tags["gate.reasons"] == "a | b"
