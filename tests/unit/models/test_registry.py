"""Registry tests against a real MLflow SQLite store and real skops files."""

import json
import socket
import threading
import time
from pathlib import Path

import mlflow
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from features.split import model_inputs
from models import registry
from models.registry import RegistryError
from tests.served_versions import bare_versions, race


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
    registry.promote(v1, "first", expected=None)
    with pytest.raises(RegistryError, match="no earlier champion than version 1"):
        registry.rollback(name)
    v2 = _register(baseline_model, example, name)
    assert registry.champion_version(name) == "1"  # registering alone moves nothing
    registry.promote(v2, "better", expected="1")
    assert registry.champion_version(name) == "2"
    assert registry.rollback(name) == "1"
    assert registry.champion_version(name) == "1"
    assert registry.rollback(name) == "1"  # idempotent: the latest promotion is already undone
    history = registry.champion_history(name)
    assert [e["event"] for e in history] == [
        "promoted: first",
        "promoted: better",
        "rollback from version 2",
    ]
    assert [(e["seq"], e["from"], e["state"]) for e in history] == [
        (1, None, "done"),
        (2, "1", "done"),
        (3, "2", "done"),
    ]
    assert registry.rollback(name, to="2") == "2"  # --to: any version that was champion
    with pytest.raises(RegistryError, match="version 9 of 'rollback-test' was never champion"):
        registry.rollback(name, to="9")

    loaded = registry.load_registered(f"models:/{name}/1")
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


# --- fail closed, compare-and-swap, history, verified bytes ---------------------------------


def test_only_a_missing_alias_means_no_champion(tracking, monkeypatch):
    assert registry.champion_version("never-registered") is None
    (v1,) = bare_versions("alias-missing", 1)
    assert registry.champion_version("alias-missing") is None
    registry.promote(v1, "first", expected=None)
    assert registry.champion_version("alias-missing") == "1"

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = f"http://127.0.0.1:{port}"
    mlflow.set_tracking_uri(down)
    try:
        with pytest.raises(RegistryError, match=f"MLFLOW_TRACKING_URI={down}") as error:
            registry.champion_version("alias-missing")
        assert "nothing was moved" in error.value.hint
        with pytest.raises(RegistryError, match=f"MLFLOW_TRACKING_URI={down}"):
            registry.champion_history("alias-missing")
    finally:
        mlflow.set_tracking_uri(tracking)
    assert registry.champion_version("alias-missing") == "1"


def test_promotion_is_a_compare_and_swap(tracking):
    v1, v2, v3 = bare_versions("cas-test", 3)
    registry.promote(v1, "first", expected=None)
    registry.promote(v2, "second", expected="1")
    with pytest.raises(registry.ChampionMovedError, match="is version 2, not version 1") as error:
        registry.promote(v3, "gated against v1", expected="1")
    assert "rerun the pipeline" in error.value.hint
    assert registry.champion_version("cas-test") == "2"
    assert [e["version"] for e in registry.champion_history("cas-test")] == ["1", "2"]


def test_concurrent_promotions_on_sqlite_exactly_one_wins(tracking):
    champion, *challengers = bare_versions("race-sqlite", 3)
    registry.promote(champion, "first", expected=None)
    outcomes = race(challengers, expected="1")
    assert sorted(outcomes.values(), key=str) == ["promoted", "refused"]
    winner = next(v for v, outcome in outcomes.items() if outcome == "promoted")
    assert registry.champion_version("race-sqlite") == winner
    history = registry.champion_history("race-sqlite")
    assert [(e["version"], e["from"], e["state"]) for e in history] == [
        ("1", None, "done"),
        (winner, "1", "done"),
    ]


def test_the_lock_is_exclusive_across_threads_and_reentrant_within_one(tracking):
    seen: list[str] = []

    def contender() -> None:
        try:
            with registry.promotion_lock("lock-test", timeout_s=0.5):
                seen.append("acquired")
        except RegistryError as exc:
            seen.append(str(exc))

    with registry.promotion_lock("lock-test") as target, registry.promotion_lock("lock-test"):
        assert target == str(Path(tracking.removeprefix("sqlite:///")).parent / "locks")
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join()
    assert "another promotion or rollback of 'lock-test' held the lock" in seen[0]
    contender()
    assert seen[1] == "acquired"


def test_history_is_capped_in_its_tag_and_archived_in_order(tracking):
    v1, v2 = bare_versions("history-cap", 2)
    reason = "a long gate reason " * 20
    registry.promote(v1, reason, expected=None)
    for step in range(59):
        ours, theirs = (v2, "1") if step % 2 == 0 else (v1, "2")
        registry.promote(ours, reason, expected=theirs)
    tags = mlflow.MlflowClient().get_registered_model("history-cap").tags
    recent = json.loads(tags[registry.HISTORY_TAG])
    assert len(tags[registry.HISTORY_TAG]) <= registry.TAG_CHARS
    assert 0 < len(recent) <= registry.HISTORY_ENTRIES
    archives = [k for k in tags if k.startswith(registry.ARCHIVE_PREFIX)]
    assert archives and all(len(tags[k]) <= registry.TAG_CHARS for k in archives)
    history = registry.champion_history("history-cap")
    assert [e["seq"] for e in history] == list(range(1, 61))
    assert all(e["state"] == "done" for e in history)
    assert history[-1]["version"] == registry.champion_version("history-cap") == "2"


def test_rollback_refuses_when_history_and_alias_disagree_then_repair(tracking):
    v1, v2, v3 = bare_versions("mismatch-test", 3)
    registry.promote(v1, "first", expected=None)
    registry.promote(v2, "second", expected="1")
    mlflow.MlflowClient().set_registered_model_alias("mismatch-test", "champion", "3")  # by hand
    with pytest.raises(registry.HistoryMismatchError, match="says version 2 but the champion "
                       "alias is at version 3") as error:  # fmt: skip
        registry.rollback("mismatch-test")
    assert "--repair" in error.value.hint
    with pytest.raises(registry.HistoryMismatchError):
        registry.promote(v1, "gated against v3", expected="3")
    assert registry.repair_history("mismatch-test") == ("3", True)
    assert registry.repair_history("mismatch-test") == ("3", False)
    assert registry.champion_history("mismatch-test")[-1]["event"].startswith(
        "repaired: alias found at version 3, history said version 2"
    )
    assert registry.rollback("mismatch-test") == "2"  # the repair's `from`


def test_a_changed_artifact_is_refused_naming_version_and_both_hashes():
    good = registry.sha256_hex(b"registered bytes")
    tags = {registry.ONNX_SHA256_TAG: good}
    assert registry.verify_sha256(b"registered bytes", tags, registry.ONNX_SHA256_TAG,
                                  name="m", version="4") == good  # fmt: skip
    bad = registry.sha256_hex(b"swapped bytes")
    with pytest.raises(registry.ArtifactIntegrityError) as error:
        registry.verify_sha256(b"swapped bytes", tags, registry.ONNX_SHA256_TAG, name="m",
                               version="4")  # fmt: skip
    assert "version 4 of 'm'" in str(error.value)
    assert f"expected sha256 {good}, got {bad}" in str(error.value)
    with pytest.raises(registry.ArtifactIntegrityError, match="has no onnx_sha256 tag"):
        registry.verify_sha256(b"x", {}, registry.ONNX_SHA256_TAG, name="m", version="4")


def test_a_registered_model_is_loaded_only_when_its_skops_file_matches(
    tracking, baseline_model, fraud_config, fraud_splits
):
    example = model_inputs(fraud_splits[2].head(20), fraud_config)
    exp = registry.experiment_id("registry-test")
    with mlflow.start_run(experiment_id=exp) as run:
        uri = registry.log_model(baseline_model, example)
    digest = registry.logged_skops_sha256(uri)
    version = registry.register(uri, "skops-test", run.info.run_id, {})
    loaded = registry.load_version(
        "skops-test", version.version, {registry.SKOPS_SHA256_TAG: digest}
    )
    assert (loaded.predict_proba(example) == baseline_model.predict_proba(example)).all()
    with pytest.raises(registry.ArtifactIntegrityError, match="does not match its skops_sha256"):
        registry.load_version("skops-test", version.version, {registry.SKOPS_SHA256_TAG: "0" * 64})
