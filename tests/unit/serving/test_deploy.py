"""serving.deploy and the rollback CLI against a real MLflow store and real repositories:
write before prune, per-version thresholds, verified bytes, rollback on an empty repository."""

from __future__ import annotations

import re
import socket

import pytest

from features.split import model_inputs
from models import registry
from pipelines import rollback
from serving import deploy
from serving.decision import thresholds_from_parameters
from serving.model_repository import CONFIG_FILENAME, MODEL_FILENAME, list_versions
from serving.onnx_export import export_onnx
from tests.conftest import write_config
from tests.served_versions import onnx_artifact_path, register_served_version

NAME = "deploy-test-classifier"
THRESHOLDS = {1: 0.3, 2: 0.4, 3: 0.5}


@pytest.fixture(scope="module")
def versions(tracking, baseline_model, columns, fraud_config, fraud_splits):
    example = model_inputs(fraud_splits[2].head(20), fraud_config)
    onnx_bytes = export_onnx(baseline_model, *columns)
    return [
        register_served_version(NAME, baseline_model, onnx_bytes, t, example)
        for t in THRESHOLDS.values()
    ]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return str(write_config(tmp_path_factory.mktemp("cfg") / "deploy.yaml", name="deploy-test"))


def served_thresholds(repo) -> dict[int, float]:
    text = (repo / NAME / CONFIG_FILENAME).read_text()
    pairs = re.findall(r'key: "([^"]+)" value: \{ string_value: "([^"]*)" \}', text)
    return thresholds_from_parameters(dict(pairs))


def set_champion(version: str | None) -> None:
    """Move the champion through the platform (history kept) to `version`."""
    current = registry.champion_version(NAME)
    if version is not None and current != version:
        registry.promote(registry.Version(NAME, version, None), "test", expected=current)


def test_the_target_is_written_before_older_versions_are_pruned(versions, tmp_path):
    assert deploy.deploy_version(NAME, "1", tmp_path) is True
    assert deploy.deploy_version(NAME, "2", tmp_path, keep=2) is True
    assert list_versions(tmp_path, NAME) == [1, 2]
    assert served_thresholds(tmp_path) == {1: 0.3, 2: 0.4}
    assert deploy.deploy_version(NAME, "3", tmp_path, keep=2) is True
    assert list_versions(tmp_path, NAME) == [2, 3]
    assert {2: 0.4, 3: 0.5}.items() <= served_thresholds(tmp_path).items()
    assert deploy.deploy_version(NAME, "3", tmp_path, keep=1) is False
    assert list_versions(tmp_path, NAME) == [3]
    assert deploy.deploy_version(NAME, "1", tmp_path, keep=2) is True  # back: newer removed
    assert list_versions(tmp_path, NAME) == [1]
    assert served_thresholds(tmp_path)[1] == 0.3


def test_rollback_on_an_empty_repository_leaves_the_target_and_is_idempotent(
    versions, project, tmp_path, capsys
):
    set_champion("1")
    set_champion("2")
    repo = tmp_path / "fresh"
    assert rollback.main(["--project", project, "--repo", str(repo)]) == 0
    assert "champion is now version 1" in capsys.readouterr().out
    assert list_versions(repo, NAME) == [1] and registry.champion_version(NAME) == "1"
    assert rollback.main(["--project", project, "--repo", str(repo)]) == 0  # twice: no move
    assert "champion was already version 1" in capsys.readouterr().out
    assert list_versions(repo, NAME) == [1] and registry.champion_version(NAME) == "1"
    events = [e["event"] for e in registry.champion_history(NAME)]
    assert events.count("rollback from version 2") == 1
    assert rollback.main(["--project", project, "--repo", str(repo), "--to", "2"]) == 0
    assert list_versions(repo, NAME) == [1, 2] and registry.champion_version(NAME) == "2"
    assert rollback.main(["--project", project, "--history"]) == 0
    assert "rollback from version 1" in capsys.readouterr().out.splitlines()[-1]


def test_a_tampered_registry_onnx_is_refused_with_exit_1(versions, project, tmp_path, capsys):
    set_champion("3")
    path = onnx_artifact_path(NAME, "3")
    original = path.read_bytes()
    path.write_bytes(original.replace(b"LinearClassifier", b"LinearClassifieR", 1))
    try:
        assert deploy.main(["--project", project, "--repo", str(tmp_path / "repo")]) == 1
    finally:
        path.write_bytes(original)
    err = capsys.readouterr().err
    expected = registry.sha256_hex(original)
    assert f"artifact of version 3 of '{NAME}' does not match its onnx_sha256 tag" in err
    assert f"expected sha256 {expected}, got " in err
    assert "next: restore the artifact from the pipeline run" in err
    assert not (tmp_path / "repo").exists()
    assert deploy.main(["--project", project, "--repo", str(tmp_path / "repo")]) == 0


def test_a_tampered_repository_copy_is_refused(versions, tmp_path):
    deploy.deploy_version(NAME, "1", tmp_path)
    served = tmp_path / NAME / "1" / MODEL_FILENAME
    served.write_bytes(served.read_bytes() + b"\0")
    with pytest.raises(registry.ArtifactIntegrityError, match="version 1 of 'deploy-test"):
        deploy.deploy_version(NAME, "1", tmp_path)


def test_a_publish_triton_never_confirms_puts_the_repository_back(versions, tmp_path):
    set_champion("1")
    deploy.deploy_version(NAME, "1", tmp_path)
    history = registry.champion_history(NAME)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(deploy.DeployError, match="did not report version 2 of 'deploy-test"):
        deploy.switch_champion(NAME, "2", expected="1", event="promoted: test", repo=tmp_path,
                               triton_url=closed, ready_timeout_s=2)  # fmt: skip
    assert list_versions(tmp_path, NAME) == [1]
    assert registry.champion_version(NAME) == "1"
    assert registry.champion_history(NAME) == history


def test_a_kept_version_without_threshold_is_not_published(versions, tmp_path):
    import mlflow

    client = mlflow.MlflowClient()
    client.delete_model_version_tag(NAME, "2", "threshold")
    try:
        deploy.deploy_version(NAME, "1", tmp_path)
        with pytest.raises(deploy.DeployError, match="version 2 of 'deploy-test-classifier' has "
                           "no `threshold` tag"):  # fmt: skip
            deploy.deploy_version(NAME, "2", tmp_path)
    finally:
        client.set_model_version_tag(NAME, "2", "threshold", "0.4")
    assert list_versions(tmp_path, NAME) == [1]


def test_the_sync_publishes_and_withdraws_the_challengers_the_registry_names(
    versions, project, tmp_path, capsys
):
    """The cluster's sidecar: after the champion, the `shadow` and `canary` aliases are
    followed (a canary at its `canary.share` tag); a cleared alias is withdrawn."""
    set_champion("3")
    repo = tmp_path / "repo"
    registry.hold_challenger(NAME, "canary", "2", champion="3", tags={"share": "0.25"})
    registry.hold_challenger(NAME, "shadow", "1", champion="3")
    try:
        assert deploy.main(["--project", project, "--repo", str(repo)]) == 0
        assert "canary: version 2" in capsys.readouterr().out
        canary = (repo / f"{NAME}__canary" / CONFIG_FILENAME).read_text()
        assert 'key: "canary_share" value: { string_value: "0.25" }' in canary
        assert list_versions(repo, f"{NAME}__shadow") == [1]
        assert registry.tag_challenger(NAME, "canary", "2", {"share": "0.5"})
        assert not registry.tag_challenger(NAME, "canary", "1", {"share": "0.9"})  # not the canary
        assert deploy.main(["--project", project, "--repo", str(repo)]) == 0
        canary = (repo / f"{NAME}__canary" / CONFIG_FILENAME).read_text()
        assert 'key: "canary_share" value: { string_value: "0.5" }' in canary
    finally:
        registry.release_challenger(NAME, "canary", "2", "test over")
        registry.release_challenger(NAME, "shadow", "1", "test over")
    assert deploy.main(["--project", project, "--repo", str(repo)]) == 0
    assert list_versions(repo, f"{NAME}__canary") == list_versions(repo, f"{NAME}__shadow") == []
    assert list_versions(repo, NAME)[-1] == 3
