"""The pipeline steps in-process, in order, against a real MLflow store (the same code the
kfp components call; the kfp.local run itself is in tests/integration)."""

import json
import re
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.gate import SelectionMismatchError
from models.reference import SCORE_COLUMN, TARGET_COLUMN, load_reference
from models.registry import champion_version
from models.tune import config_hash
from pipelines.inprocess import FileArtifact, run_steps
from pipelines.stages import STAGES
from pipelines.steps.data import DataValidationError, validate_step
from pipelines.steps.deploy import deploy_step, infra_candidate, stage_candidate_step
from pipelines.steps.edge import config_from_yaml, read_version
from pipelines.steps.explain import explain_step
from pipelines.steps.export import export_step
from pipelines.steps.gate import DECISION_FILE, gate_step
from pipelines.steps.register import register_step
from pipelines.steps.train import evaluate_step
from tests.conftest import load_as_configured, write_config


@pytest.fixture(scope="module")
def config_yaml(tmp_path_factory):
    path = write_config(
        tmp_path_factory.mktemp("cfg") / "steps.yaml",
        name="steps-test",
        data={"rows": 10_000, "seed": 11},
        tuning={"n_trials": 3},
        gate={"min_gain_over_baseline": -1.0, "min_slice_metric": 0.0},
        evaluation={"costs": {"false_positive": 1.0, "false_negative": 20.0}},
        card={"intended_use": "Queue card payments for fraud review.",
              "sensitive_attributes": ["customer_age", "country"]},
    )  # fmt: skip
    return path.read_text()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, tracking, config_yaml):
    """Run every step once, like the pipeline does, and keep the artifacts."""
    root = tmp_path_factory.mktemp("artifacts")
    return run_steps(
        config_yaml,
        root,
        study_storage=f"sqlite:///{root / 'optuna.db'}",
        serving_repository=str(root / "serving"),
    )


def test_lineage_and_stage_timings_are_logged(outputs):
    run_id, a = outputs
    run = mlflow.get_run(run_id)
    assert len(run.data.tags["dataset_sha256"]) == 64
    assert a["raw_data"].metadata["sha256"] == run.data.tags["dataset_sha256"]
    assert run.data.tags["git_commit"]
    for stage in STAGES:
        assert run.data.metrics[f"stage_seconds.{stage}"] >= 0
    assert run.data.params["best_family"] in {"gbdt", "mlp"}


def test_validation_outputs_and_split_sizes(outputs):
    _, a = outputs
    quarantine = pd.read_parquet(a["quarantine"].path)
    assert len(quarantine) > 0 and quarantine["quarantine_reason"].str.len().gt(0).all()
    assert "PASSED" in Path(a["report"].path).read_text()
    rows = [a[k].metadata["rows"] for k in ("train", "valid", "test")]
    assert sum(rows) == a["clean_data"].metadata["rows"]
    assert rows[0] > rows[1] > 0


def test_models_and_evaluation(outputs):
    _, a = outputs
    assert a["model"].metadata["family"] in {"gbdt", "mlp"}
    assert a["baseline"].metadata["family"] == "baseline"
    assert 0 < a["model"].metadata["threshold"] < 1
    evaluation = json.loads(Path(a["evaluation"].path).read_text())
    iv = evaluation["challenger"]["interval"]
    assert iv["low"] <= iv["value"] <= iv["high"]
    assert {"roc_auc", "pr_auc", "f1", "precision", "recall", "brier", "tp"} <= set(
        evaluation["challenger"]["metrics"]
    )
    # the config's slices and its sensitive attributes (customer_age in quantile bins)
    assert {s["slice"] for s in evaluation["slices"]} == {"channel", "country", "customer_age"}


def test_served_models_are_refit_on_train_and_valid_unless_configured_not_to(
    outputs, config_yaml, tmp_path
):
    from models.registry import load_model
    from pipelines.steps.train import train_step

    run_id, a = outputs
    rows = {k: a[k].metadata["rows"] for k in ("train", "valid")}
    numeric = list(config_from_yaml(config_yaml).numeric_features)
    train_frame = pd.read_parquet(a["train"].path)[numeric]
    both_frame = pd.concat([train_frame, pd.read_parquet(a["valid"].path)[numeric]])

    def fitted_on(artifact) -> str:  # the numeric imputer's medians tell (trees have no scaler)
        preprocess = load_model(Path(artifact.path)).named_steps["preprocess"]
        medians = preprocess.named_transformers_["numeric"].named_steps["impute"].statistics_
        if np.allclose(medians, both_frame.median().to_numpy()):
            return "train + valid"
        return "train" if np.allclose(medians, train_frame.median().to_numpy()) else "?"

    assert not np.allclose(train_frame.median(), both_frame.median())  # the two can be told apart
    for who in ("model", "baseline"):
        assert a[who].metadata["fit_on"] == "train + valid"
        assert fitted_on(a[who]) == "train + valid"
    run = mlflow.get_run(run_id)
    assert run.data.tags["fit_on"] == "train + valid"
    assert run.data.metrics["rows.fit"] == rows["train"] + rows["valid"]

    train_only = config_yaml + "training: {refit_on_validation: false}\n"
    model, baseline = FileArtifact(str(tmp_path / "m")), FileArtifact(str(tmp_path / "b"))
    other_run = mlflow.MlflowClient().create_run(run.info.experiment_id).info.run_id
    train_step(train_only, other_run, a["train"], a["valid"], a["best"], model, baseline)
    assert mlflow.get_run(other_run).data.metrics["rows.fit"] == rows["train"]
    for artifact, refit in ((model, a["model"]), (baseline, a["baseline"])):
        assert artifact.metadata["fit_on"] == "train"
        assert fitted_on(artifact) == "train"
        # the threshold is the train-only fit's either way: chosen on valid before any refit
        assert artifact.metadata["threshold"] == refit.metadata["threshold"]


def test_onnx_export_is_parity_checked_and_logged(outputs):
    run_id, a = outputs
    assert a["onnx_model"].metadata["passed"] is True
    assert a["onnx_model"].metadata["max_abs_diff"] < 1e-4
    assert a["onnx_model"].metadata["rows"] == a["test"].metadata["rows"]
    logged = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="onnx")
    assert (Path(logged) / "model.onnx").read_bytes() == Path(a["onnx_model"].path).read_bytes()
    version = a["registered"].metadata["version"]
    tags = mlflow.MlflowClient().get_model_version("steps-test-classifier", version).tags
    assert float(tags["onnx.parity_max_abs_diff"]) < 1e-4


def test_parity_failure_stops_before_registration(outputs, config_yaml, tmp_path):
    run_id, a = outputs
    strict = config_yaml.replace(
        "name: steps-test", "name: steps-test\nserving: {parity_tolerance: 1.0e-12}"
    )
    assert "parity_tolerance" in strict
    with pytest.raises(Exception, match="parity failed: max abs diff"):
        export_step(strict, run_id, a["model"], a["test"], FileArtifact(str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_version_carries_its_drift_reference(outputs):
    _, a = outputs
    version = a["registered"].metadata["version"]
    reference = load_reference("steps-test-classifier", version)
    train = pd.read_parquet(a["train"].path)
    assert len(reference) == len(train)
    assert reference[SCORE_COLUMN].between(0, 1).all()
    assert reference[TARGET_COLUMN].sum() == train["is_fraud"].sum()


def test_first_challenger_becomes_champion_with_a_record(outputs):
    run_id, a = outputs
    decision = json.loads((Path(a["decision"].path) / DECISION_FILE).read_text())
    assert decision["promote"] is True
    assert champion_version("steps-test-classifier") == a["registered"].metadata["version"]
    card = (Path(a["decision"].path) / "model_card.md").read_text()
    assert "Gate passed:** yes" in card and "dataset_sha256" in card
    # A card a reviewer accepts: use, data per split, threshold, costs, curves, gaps, ethics.
    for part in ("Queue card payments for fraud review.", "**Decision threshold",
                 "| actual positive |", "**Error costs**", "(evaluation_curves.png)",
                 "**Calibration**", "| customer_age | FPR |",
                 "## Ethical considerations"):  # fmt: skip
        assert part in card, part
    assert re.search(r"- train: [\d,]+ rows, base rate [\d.]+%, \d{4}-\d\d-\d\d .* \.\. ", card)
    assert re.search(r"- final fit: train \+ valid, [\d,]+ rows, base rate [\d.]+%", card)
    assert (Path(a["decision"].path) / "evaluation_curves.png").read_bytes()[:4] == b"\x89PNG"
    # The record says when, why, on which rows and under which margins it decided.
    assert decision["trigger"] == mlflow.get_run(run_id).data.tags["pipeline_run"]
    assert len(decision["test_sha256"]) == 64 and decision["bootstrap_samples"] >= 10
    assert decision["bootstrap_groups"] is None  # rows resampled: no split.group_column
    assert decision["margins"]["min_gain_over_baseline"] == -1.0
    assert decision["data"] == "generator: fraud (10,000 rows, seed 11)"
    assert datetime.fromisoformat(decision["decided_at"]).tzinfo is not None
    explanation = Path(a["explanation"].path)
    assert (explanation / "shap_beeswarm.png").is_file()
    assert json.loads((explanation / "shap_local.json").read_text())[0]["top_attributions"]


def _register_again(config_yaml, run_id, a, registered):
    """Register the same challenger once more (a new version of the same model)."""
    register_step(
        config_yaml,
        run_id,
        a["selected"],
        a["baseline"],
        a["train"],
        a["test"],
        a["evaluation"],
        a["onnx_model"],
        registered,
    )


def test_identical_challenger_is_not_promoted_over_the_champion(outputs, config_yaml, tmp_path):
    run_id, a = outputs
    registered, decision = FileArtifact(str(tmp_path / "reg")), FileArtifact(str(tmp_path / "dec"))
    _register_again(config_yaml, run_id, a, registered)
    gate_step(
        config_yaml,
        run_id,
        registered,
        a["selected"],
        a["model"],
        a["baseline"],
        a["test"],
        a["evaluation"],
        a["explanation"],
        decision,
    )
    record = json.loads((Path(decision.path) / DECISION_FILE).read_text())
    assert record["promote"] is False
    assert record["previous_champion"] == a["registered"].metadata["version"]
    assert any("does not beat champion" in r for r in record["reasons"])
    assert "champion" in record["intervals"]
    assert champion_version("steps-test-classifier") == a["registered"].metadata["version"]


def test_batch_that_breaks_the_contract_stops_with_named_expectations(tracking, tmp_path):
    bad = write_config(
        tmp_path / "bad.yaml",
        name="steps-bad",
        data={"rows": 3000},
        contract={"target_rate": [0.2, 0.5], "min_rows": 100},
    ).read_text()
    raw, clean, quarantine, report = (FileArtifact(str(tmp_path / n)) for n in ("r", "c", "q", "h"))
    run_id = load_as_configured(bad, "bad-run", raw)
    with pytest.raises(DataValidationError, match="expect_column_mean_to_be_between on 'is_fraud'"):
        validate_step(bad, run_id, raw, clean, quarantine, report)
    assert "FAILED" in Path(report.path).read_text()
    assert not Path(clean.path).exists()
    run = mlflow.get_run(run_id)
    assert run.data.tags["failed_stage"] == "validate" and run.info.status == "FAILED"


def test_champion_deploys_to_a_triton_repository_once(outputs, tmp_path):
    from serving.deploy import DeployError, deploy_champion
    from serving.model_repository import list_versions, triton_config, write_version

    _, a = outputs
    version = a["registered"].metadata["version"]
    assert deploy_champion("steps-test-classifier", tmp_path) == (version, True)
    assert deploy_champion("steps-test-classifier", tmp_path) == (version, False)
    assert list_versions(tmp_path, "steps-test-classifier") == [int(version)]
    model_dir = tmp_path / "steps-test-classifier"
    onnx_bytes = Path(a["onnx_model"].path).read_bytes()
    assert (model_dir / version / "model.onnx").read_bytes() == onnx_bytes
    config = (model_dir / "config.pbtxt").read_text()
    assert 'name: "amount"' in config and "TYPE_STRING" in config and "dynamic_batching" in config
    write_version(
        tmp_path,
        "steps-test-classifier",
        99,
        onnx_bytes,
        triton_config("steps-test-classifier", onnx_bytes),
    )
    assert deploy_champion("steps-test-classifier", tmp_path) == (version, False)
    assert list_versions(tmp_path, "steps-test-classifier") == [int(version)]  # rolled back
    with pytest.raises(DeployError, match="has no champion yet"):
        deploy_champion("no-such-model", tmp_path)


def test_cluster_variant_is_triton_onnxruntime_on_gpu(outputs, tmp_path):
    from serving.deploy import deploy_champion, main

    _, a = outputs
    version = a["registered"].metadata["version"]
    assert deploy_champion(
        "steps-test-classifier", tmp_path, backend="onnxruntime", kind="KIND_GPU"
    ) == (version, True)
    model_dir = tmp_path / "steps-test-classifier"
    config = (model_dir / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in config and "KIND_GPU" in config
    assert not (model_dir / version / "model.py").exists()
    with pytest.raises(SystemExit):  # the python backend runs on CPU only
        main(["--repo", str(tmp_path), "--backend", "python", "--kind", "KIND_GPU"])


def test_promoted_challenger_is_infra_validated_then_deployed(outputs):
    run_id, a = outputs
    record = json.loads(Path(a["deployment"].path).read_text())
    version = a["registered"].metadata["version"]
    assert record["deployed"] is True and record["version"] == version
    infra = record["infra_validation"]
    assert infra["passed"] and infra["max_abs_diff"] < 1e-4 and infra["rows"] == 500
    assert 0 < infra["p50_ms"] <= infra["p99_ms"] < 50
    assert infra["parameters"]["threshold"] == str(a["selected"].metadata["threshold"])
    assert 0 < record["lead_time_s"] < 600
    assert (Path(record["serving_repository"]) / "steps-test-classifier" / version).is_dir()
    tags = mlflow.MlflowClient().get_model_version("steps-test-classifier", version).tags
    assert tags["deploy.status"] == "deployed"
    assert mlflow.get_run(run_id).data.metrics["deployment_lead_time_s"] == record["lead_time_s"]


def test_failed_infra_validation_keeps_the_champion_and_is_recorded(outputs, config_yaml, tmp_path):
    run_id, a = outputs
    champion = champion_version("steps-test-classifier")
    registered, decision = FileArtifact(str(tmp_path / "reg")), FileArtifact(str(tmp_path / "dec"))
    _register_again(config_yaml, run_id, a, registered)
    Path(decision.path).mkdir()
    (Path(decision.path) / DECISION_FILE).write_text(
        json.dumps({"promote": True, "reasons": ["pretend the gate passed"]})
    )
    impossible = config_yaml.replace(
        "name: steps-test", "name: steps-test\nserving: {p99_budget_ms: 0.001, validation_rows: 20}"
    )
    deployment = FileArtifact(str(tmp_path / "deployment"))
    deploy_step(
        impossible,
        run_id,
        str(tmp_path / "serving"),
        registered,
        a["selected"],
        a["onnx_model"],
        a["test"],
        decision,
        deployment,
    )
    record = json.loads(Path(deployment.path).read_text())
    assert record["deployed"] is False
    assert "p99 latency" in record["reasons"][0] and "> budget 0.001 ms" in record["reasons"][0]
    assert champion_version("steps-test-classifier") == champion
    assert not (tmp_path / "serving").exists()
    tags = (
        mlflow.MlflowClient()
        .get_model_version("steps-test-classifier", registered.metadata["version"])
        .tags
    )
    assert tags["deploy.status"].startswith("not deployed: single-row p99 latency")


# --- promotion integrity (issue 12) ------------------------------------------------------------

MODEL = "steps-test-classifier"


def test_export_and_register_record_the_artifact_hashes(outputs):
    from models.registry import SKOPS_FILE, sha256_hex

    _, a = outputs
    version = a["registered"].metadata["version"]
    info = mlflow.MlflowClient().get_model_version(MODEL, version)
    onnx_bytes = Path(a["onnx_model"].path).read_bytes()
    assert info.tags["onnx_sha256"] == sha256_hex(onnx_bytes) == a["onnx_model"].metadata["sha256"]
    skops = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{version}")) / SKOPS_FILE
    assert info.tags["skops_sha256"] == sha256_hex(skops.read_bytes())


def _gate(config_yaml, run_id, a, tmp_path):
    """Register the challenger once more and gate it; returns the decision record."""
    registered, decision = FileArtifact(str(tmp_path / "reg")), FileArtifact(str(tmp_path / "dec"))
    _register_again(config_yaml, run_id, a, registered)
    gate_step(config_yaml, run_id, registered, a["selected"], a["model"], a["baseline"],
              a["test"], a["evaluation"], a["explanation"], decision)  # fmt: skip
    return json.loads((Path(decision.path) / DECISION_FILE).read_text())


def test_champion_without_threshold_makes_the_gate_refuse_unless_overridden(
    outputs, config_yaml, tmp_path
):
    run_id, a = outputs
    champion = champion_version(MODEL)
    client = mlflow.MlflowClient()
    threshold = client.get_model_version(MODEL, champion).tags["threshold"]
    client.delete_model_version_tag(MODEL, champion, "threshold")
    try:
        refused = _gate(config_yaml, run_id, a, tmp_path / "strict")
        lenient = config_yaml.replace(
            "min_slice_metric: 0.0",
            "min_slice_metric: 0.0\n  allow_baseline_only_when_champion_unusable: true",
        )
        assert "allow_baseline_only_when_champion_unusable: true" in lenient
        overridden = _gate(lenient, run_id, a, tmp_path / "override")
    finally:
        client.set_model_version_tag(MODEL, champion, "threshold", threshold)
    assert refused["promote"] is False
    assert refused["reasons"][0].startswith(
        f"champion version {champion} exists but could not be scored on this test set "
        f"(KeyError: 'version {champion} has no `threshold` tag')"
    )
    assert refused["previous_champion"] == champion and refused["champion_unusable"]
    assert overridden["promote"] is True and overridden["baseline_only_override"] is True
    assert [c["opponent"] for c in overridden["comparisons"]] == ["baseline"]
    assert champion_version(MODEL) == champion


def test_champion_with_its_model_file_missing_makes_the_gate_refuse(outputs, config_yaml, tmp_path):
    from urllib.parse import urlparse

    from models.registry import SKOPS_FILE

    run_id, a = outputs
    champion = champion_version(MODEL)
    folder = Path(
        urlparse(mlflow.MlflowClient().get_model_version_download_uri(MODEL, champion)).path
    )
    skops, hidden = folder / SKOPS_FILE, folder / f"{SKOPS_FILE}.hidden"
    skops.rename(hidden)
    try:
        record = _gate(config_yaml, run_id, a, tmp_path)
    finally:
        hidden.rename(skops)
    assert record["promote"] is False
    assert record["reasons"][0].startswith(
        f"champion version {champion} exists but could not be scored"
    )
    assert "refused" in record["reasons"][0] and champion_version(MODEL) == champion


def _deploy(config_yaml, run_id, a, registered, decision, serving, onnx=None):
    deployment = FileArtifact(str(Path(decision.path).parent / "deployment"))
    deploy_step(config_yaml, run_id, str(serving), registered, a["selected"],
                onnx or a["onnx_model"], a["test"], decision, deployment)  # fmt: skip
    return json.loads(Path(deployment.path).read_text())


def _passed_gate(tmp_path, previous_champion):
    decision = FileArtifact(str(tmp_path / "dec"))
    Path(decision.path).mkdir()
    (Path(decision.path) / DECISION_FILE).write_text(
        json.dumps(
            {
                "promote": True,
                "reasons": ["the gate passed"],
                "previous_champion": previous_champion,
            }
        )  # fmt: skip
    )
    return decision


def test_champion_moved_after_the_gate_refuses_the_promotion_with_a_record(
    outputs, config_yaml, tmp_path
):
    from models.registry import Version, promote, rollback

    run_id, a = outputs
    gated_against = champion_version(MODEL)
    registered = FileArtifact(str(tmp_path / "reg"))
    _register_again(config_yaml, run_id, a, registered)
    decision = _passed_gate(tmp_path, gated_against)
    other = FileArtifact(str(tmp_path / "other"))
    _register_again(config_yaml, run_id, a, other)  # meanwhile another run promotes its version
    promote(Version(MODEL, other.metadata["version"], run_id), "another run",
            expected=gated_against)  # fmt: skip
    try:
        serving = tmp_path / "serving"
        record = _deploy(config_yaml, run_id, a, registered, decision, serving)
        assert record["deployed"] is False
        assert record["reasons"][0].startswith(
            f"refused at promotion: champion of '{MODEL}' is version "
            f"{other.metadata['version']}, not version {gated_against}"
        )
        assert record["infra_validation"]["passed"] is True
        assert champion_version(MODEL) == other.metadata["version"]
        assert not serving.exists()  # refused before anything was published
    finally:
        assert rollback(MODEL, to=gated_against) == gated_against


def test_a_tampered_pipeline_onnx_is_refused_before_infra_validation(
    outputs, config_yaml, tmp_path
):
    from models.registry import ArtifactIntegrityError

    run_id, a = outputs
    champion = champion_version(MODEL)
    registered = FileArtifact(str(tmp_path / "reg"))
    _register_again(config_yaml, run_id, a, registered)
    tampered = FileArtifact(str(tmp_path / "tampered.onnx"), dict(a["onnx_model"].metadata))
    Path(tampered.path).write_bytes(Path(a["onnx_model"].path).read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="does not match its onnx_sha256 tag"):
        _deploy(config_yaml, run_id, a, registered, _passed_gate(tmp_path, champion),
                tmp_path / "serving", onnx=tampered)  # fmt: skip
    assert champion_version(MODEL) == champion and not (tmp_path / "serving").exists()


def test_promotion_writes_per_version_thresholds_into_the_served_config(outputs):
    from serving.decision import thresholds_from_parameters

    _, a = outputs
    record = json.loads(Path(a["deployment"].path).read_text())
    version = int(a["registered"].metadata["version"])
    threshold = float(a["selected"].metadata["threshold"])
    assert record["infra_validation"]["parameters"][f"threshold.v{version}"] == repr(threshold)
    config = (Path(record["serving_repository"]) / MODEL / "config.pbtxt").read_text()
    assert f'key: "threshold.v{version}" value: {{ string_value: "{threshold!r}" }}' in config
    assert thresholds_from_parameters(record["infra_validation"]["parameters"]) == {
        version: threshold
    }


# --- candidate selection (issue 13) -------------------------------------------------------------

SIMPLE = "steps-simple-classifier"


@pytest.fixture(scope="module")
def simplest(outputs, tmp_path_factory):
    """The same trained candidates under a gate where the tuned model cannot be superior
    (required gain 1.0) and the baseline is always within the margin: the baseline is selected
    by non-inferiority, then explained, exported, registered and gated under its own model."""
    _, a = outputs
    root = tmp_path_factory.mktemp("simplest")
    config_yaml = write_config(
        root / "simple.yaml",
        name="steps-simple",
        data={"rows": 10_000, "seed": 11},
        tuning={"n_trials": 3},
        gate={"min_gain_over_baseline": 1.0, "noninferiority_margin": 1.0, "min_slice_metric": 0.0},
    ).read_text()
    names = ("raw", "evaluation", "selected", "explanation", "onnx", "registered", "decision")
    b = {name: FileArtifact(str(root / name)) for name in names}
    run_id = load_as_configured(config_yaml, "simplest", b["raw"])
    evaluate_step(config_yaml, run_id, a["model"], a["baseline"], a["test"],
                  b["evaluation"], b["selected"])  # fmt: skip
    explain_step(config_yaml, run_id, b["selected"], a["train"], a["test"], b["explanation"])
    export_step(config_yaml, run_id, b["selected"], a["test"], b["onnx"])
    register_step(config_yaml, run_id, b["selected"], a["baseline"], a["train"], a["test"],
                  b["evaluation"], b["onnx"], b["registered"])  # fmt: skip
    gate_step(config_yaml, run_id, b["registered"], b["selected"], a["model"],
              a["baseline"], a["test"], b["evaluation"], b["explanation"],
              b["decision"])  # fmt: skip
    return config_yaml, run_id, a, b


def test_tuned_model_selected_by_superiority_under_a_relaxed_gate(outputs):
    _, a = outputs
    evaluation = json.loads(Path(a["evaluation"].path).read_text())
    selection = evaluation["selection"]
    assert selection["candidate"] == "tuned" and selection["rule"] == "superiority"
    assert a["selected"].metadata["candidate"] == "tuned"
    assert Path(a["selected"].path).read_bytes() == Path(a["model"].path).read_bytes()
    assert evaluation["challenger"] == evaluation["tuned"] | {"candidate": "tuned"}
    decision = json.loads((Path(a["decision"].path) / DECISION_FILE).read_text())
    assert decision["selection"]["rule"] == "superiority"
    assert decision["comparisons"][0]["required"] == -1.0  # min_gain_over_baseline


def test_baseline_selected_by_non_inferiority_is_exported_registered_and_gated(simplest):
    _, run_id, a, b = simplest
    evaluation = json.loads(Path(b["evaluation"].path).read_text())
    assert evaluation["selection"]["candidate"] == "baseline"
    assert evaluation["selection"]["rule"] == "non-inferiority"
    assert evaluation["challenger"]["family"] == "baseline"
    assert evaluation["tuned"]["family"] == a["model"].metadata["family"]
    selected = b["selected"]
    assert (
        selected.metadata["family"] == "baseline" and selected.metadata["candidate"] == "baseline"
    )
    assert selected.metadata["threshold"] == a["baseline"].metadata["threshold"]
    assert Path(selected.path).read_bytes() == Path(a["baseline"].path).read_bytes()
    assert b["onnx"].metadata["passed"] is True and b["onnx"].metadata["max_abs_diff"] < 1e-4
    version = b["registered"].metadata["version"]
    tags = mlflow.MlflowClient().get_model_version(SIMPLE, version).tags
    assert tags["family"] == "baseline" and tags["selection.rule"] == "non-inferiority"
    assert float(tags["threshold"]) == a["baseline"].metadata["threshold"]
    decision = json.loads((Path(b["decision"].path) / DECISION_FILE).read_text())
    assert decision["promote"] is True and decision["challenger_candidate"] == "baseline"
    superiority = decision["selection"]["comparisons"][0]
    assert superiority["required"] == 1.0 and superiority["passed"] is False
    # gated against the best candidate (itself, a zero gain, when the baseline is the best)
    row = decision["comparisons"][0]
    assert row["opponent"] == decision["selection"]["best"] and row["required"] == -1.0
    assert row["passed"] and row["gain"] == pytest.approx(
        -superiority["gain"] * (row["opponent"] == "tuned")
    )
    assert decision["reasons"][0].startswith(
        "selection: No tuned model beat the baseline significantly"
    )
    assert "selected the baseline, the simplest model within 1.0000" in decision["reasons"][0]
    card = (Path(b["decision"].path) / "model_card.md").read_text()
    assert "**Model family:** baseline" in card
    assert "**Selected by:** non-inferiority — the baseline model" in card
    assert "## Model selection\nNo tuned model beat the baseline significantly" in card
    assert mlflow.get_run(run_id).data.tags["selection.candidate"] == "baseline"


def test_the_gate_refuses_a_challenger_the_rule_did_not_select(simplest, tmp_path):
    config_yaml, run_id, a, b = simplest
    decision = FileArtifact(str(tmp_path / "dec"))
    with pytest.raises(SelectionMismatchError, match="selection rule picks the baseline"):
        gate_step(config_yaml, run_id, b["registered"], a["model"], a["model"],
                  a["baseline"], a["test"], b["evaluation"], b["explanation"],
                  decision)  # fmt: skip
    assert not Path(decision.path).exists()


def test_baseline_challenger_is_infra_validated_and_deployed(simplest, tmp_path):
    config_yaml, run_id, a, b = simplest
    deployment = FileArtifact(str(tmp_path / "deployment"))
    deploy_step(config_yaml, run_id, str(tmp_path / "serving"), b["registered"],
                b["selected"], b["onnx"], a["test"], b["decision"], deployment)  # fmt: skip
    record = json.loads(Path(deployment.path).read_text())
    version = b["registered"].metadata["version"]
    assert record["deployed"] is True and record["infra_validation"]["passed"]
    assert champion_version(SIMPLE) == version
    assert (tmp_path / "serving" / SIMPLE / version / "model.onnx").read_bytes() == Path(
        b["onnx"].path
    ).read_bytes()


# -- on a cluster: the winner validated in the production Triton image -------------------------


def _production_report(config_yaml, run_id, a, registered, staged, tmp_path) -> Path:
    """What the cluster's production Triton step writes: the staged case, probed.

    This machine's Triton has no onnxruntime backend, so the same candidate is served from a
    python-backend copy; the case and the probe are the staged ones.
    """
    from serving import triton_probe
    from serving.infra_validation import REPOSITORY, stage_candidate
    from serving.launcher import TritonServer
    from serving.processes import free_ports

    config = config_from_yaml(config_yaml)
    candidate = infra_candidate(config, read_version(registered), a["selected"], a["onnx_model"],
                                a["test"])  # fmt: skip
    local = tmp_path / "python-backend"
    stage_candidate(candidate, local)
    http, grpc, metrics = free_ports(3)
    server = TritonServer(run_dir=tmp_path / "run")
    server.start(local / REPOSITORY, http_port=http, grpc_port=grpc, metrics_port=metrics,
                 model_control="none", timeout_s=60)  # fmt: skip
    report = tmp_path / "report" / triton_probe.REPORT_FILE
    try:
        triton_probe.main(["--case", str(Path(staged.path) / triton_probe.CASE_FILE),
                           "--report", str(report), "--url", f"127.0.0.1:{http}"])  # fmt: skip
    finally:
        server.stop()
    return report


def test_on_a_cluster_the_production_triton_report_decides_the_deploy(
    outputs, config_yaml, tmp_path
):
    from models.registry import rollback
    from serving import triton_probe

    run_id, a = outputs
    champion = champion_version(MODEL)
    registered = FileArtifact(str(tmp_path / "reg"))
    _register_again(config_yaml, run_id, a, registered)
    decision = _passed_gate(tmp_path, champion)
    staged = FileArtifact(str(tmp_path / "candidate"))
    stage_candidate_step(config_yaml, run_id, registered, a["selected"], a["onnx_model"],
                         a["test"], decision, staged)  # fmt: skip
    version = registered.metadata["version"]
    served_config = Path(staged.path) / "repo" / MODEL / "config.pbtxt"
    assert 'backend: "onnxruntime"' in served_config.read_text()
    assert (Path(staged.path) / "triton_probe.py").is_file()
    report = _production_report(config_yaml, run_id, a, registered, staged, tmp_path)
    deployment = FileArtifact(str(tmp_path / "deployment"))
    try:
        deploy_step(config_yaml, run_id, str(tmp_path / "serving"), registered,
                    a["selected"], a["onnx_model"], a["test"], decision, deployment,
                    FileArtifact(str(report)))  # fmt: skip
        record = json.loads(Path(deployment.path).read_text())
        assert record["deployed"] is True, record["reasons"]
        infra = record["infra_validation"]
        assert infra["max_abs_diff"] < 1e-4 and infra["rows"] == 500
        assert infra == json.loads(report.read_text()) | {"parameters": infra["parameters"]}
        assert infra["parameters"][f"threshold.v{version}"]
        assert champion_version(MODEL) == version
    finally:
        assert rollback(MODEL, to=champion) == champion
    assert triton_probe.CASE_FILE in {p.name for p in Path(staged.path).iterdir()}


def test_on_a_cluster_no_report_from_the_production_triton_deploys_nothing(
    outputs, config_yaml, tmp_path
):
    run_id, a = outputs
    champion = champion_version(MODEL)
    registered = FileArtifact(str(tmp_path / "reg"))
    _register_again(config_yaml, run_id, a, registered)
    deployment = FileArtifact(str(tmp_path / "deployment"))
    deploy_step(config_yaml, run_id, str(tmp_path / "serving"), registered,
                a["selected"], a["onnx_model"], a["test"], _passed_gate(tmp_path, champion),
                deployment, FileArtifact(str(tmp_path / "absent.json")))  # fmt: skip
    record = json.loads(Path(deployment.path).read_text())
    assert record["deployed"] is False and champion_version(MODEL) == champion
    assert "no readable report from the production Triton validation" in record["reasons"][0]
    assert not (tmp_path / "serving").exists()


def test_on_a_cluster_a_refused_challenger_is_not_staged(outputs, config_yaml, tmp_path):
    run_id, a = outputs
    decision = FileArtifact(str(tmp_path / "dec"))
    Path(decision.path).mkdir()
    (Path(decision.path) / DECISION_FILE).write_text(
        json.dumps({"promote": False, "reasons": ["does not beat the champion"]})
    )
    staged = FileArtifact(str(tmp_path / "candidate"))
    stage_candidate_step(config_yaml, run_id, a["registered"], a["selected"], a["onnx_model"],
                         a["test"], decision, staged)  # fmt: skip
    assert list(Path(staged.path).iterdir()) == []


def test_the_study_name_follows_the_default_search_spaces(config_yaml, monkeypatch):
    """A default range changed in a release starts a new study instead of resuming the old;
    a config that sets its own space is not affected."""
    from configs import schema

    own = config_from_yaml(config_yaml)
    defaults = own.model_copy(update={"tuning": own.tuning.model_copy(update={"search_space": {}})})
    family = next(f for f in own.tuning.families if f in own.tuning.search_space)
    before = {"own": config_hash(own), "defaults": config_hash(defaults)}
    narrowed = dict(schema.DEFAULT_SEARCH_SPACES[family])
    name, spec = next((n, s) for n, s in narrowed.items() if s.type != "categorical")
    narrowed[name] = spec.model_copy(update={"high": spec.high * 0.5})
    monkeypatch.setitem(schema.DEFAULT_SEARCH_SPACES, family, narrowed)
    assert config_hash(defaults) != before["defaults"]
    if all(f in own.tuning.search_space for f in own.tuning.families):
        assert config_hash(own) == before["own"]


@pytest.mark.parametrize("role", ["shadow", "canary"])
def test_a_passing_challenger_is_held_beside_the_champion(outputs, config_yaml, role):
    """`gate.shadow_before_promotion` / `canary_before_promotion`: a challenger that passes
    while a champion serves is infra-validated and published beside it as the shadow (or
    canary, answering `canary.steps[0]`) model, not promoted. Last in this module: it leaves
    the aliases behind."""
    import yaml

    from models.registry import challenger_version
    from serving.challenger_model import challenger_model_name
    from serving.model_repository import list_versions

    run_id, a = outputs
    root, first = Path(a["registered"].path).parent, champion_version(MODEL)
    raw = yaml.safe_load(config_yaml)
    # The same candidate again, accepting a zero gain over the champion: it passes the gate,
    # so it is held.
    raw["gate"] |= {"min_gain_over_champion": -1.0, f"{role}_before_promotion": True}
    holding = yaml.safe_dump(raw, sort_keys=False)
    b = {name: FileArtifact(str(root / role / name))
         for name in ("registered", "decision", "deployment")}  # fmt: skip
    _register_again(holding, run_id, a, b["registered"])
    gate_step(holding, run_id, b["registered"], a["selected"], a["model"], a["baseline"],
              a["test"], a["evaluation"], a["explanation"], b["decision"])  # fmt: skip
    decision = json.loads((Path(b["decision"].path) / DECISION_FILE).read_text())
    second = b["registered"].metadata["version"]
    assert decision["promote"] is True and decision["held_as"] == role
    held = "held in shadow" if role == "shadow" else "rolled out as a canary"
    assert decision["reasons"][0].startswith(f"passed offline; {held} beside champion "
                                             f"version {first}")  # fmt: skip
    serving = root / "serving"
    served_before = list_versions(serving, MODEL)
    deploy_step(holding, run_id, str(serving), b["registered"], a["selected"],
                a["onnx_model"], a["test"], b["decision"], b["deployment"])  # fmt: skip
    record = json.loads(Path(b["deployment"].path).read_text())
    assert record["deployed"] is False and record["held_as"] == role
    assert record["infra_validation"]["passed"] and record["reasons"][0].startswith("held in")
    assert champion_version(MODEL) == first and challenger_version(MODEL, role) == second
    assert list_versions(serving, MODEL) == served_before  # the champion's model is untouched
    name = challenger_model_name(MODEL, role)
    assert list_versions(serving, name) == [int(second)]
    config = (serving / name / "config.pbtxt").read_text()
    assert f'key: "threshold.v{second}"' in config and f'string_value: "{MODEL}"' in config
    if role == "canary":
        assert 'key: "canary_share" value: { string_value: "0.05" }' in config
        tags = mlflow.MlflowClient().get_model_version(MODEL, second).tags
        assert tags["canary.share"] == "0.05" and tags["canary.step"] == "0"
        assert tags["canary.champion"] == first
