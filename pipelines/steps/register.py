"""The register stage: the challenger as a new MLflow model version, with its drift reference
and the hashes of the bytes later stages verify."""

from __future__ import annotations

from pathlib import Path

from pipelines.steps.edge import ArtifactLike, read_frame, say, stage, write_json


def register_step(
    config_yaml: str,
    run_id: str,
    model: ArtifactLike,
    baseline: ArtifactLike,
    train: ArtifactLike,
    test: ArtifactLike,
    evaluation: ArtifactLike,
    onnx_model: ArtifactLike,
    registered: ArtifactLike,
) -> None:
    """Log challenger, baseline and the drift reference (training rows) to MLflow, and
    register the challenger (the selected candidate, possibly the baseline) as a new version,
    with the SHA-256 of its ONNX graph and of its skops file as version tags (what deploy and
    the gate verify) and the rule that selected it."""
    import mlflow

    from features.split import model_inputs
    from models.reference import log_reference, reference_frame
    from models.registry import (
        ONNX_SHA256_TAG,
        SKOPS_SHA256_TAG,
        load_model,
        log_model,
        logged_skops_sha256,
        register,
        sha256_hex,
    )
    from serving.deploy import ONNX_ARTIFACT

    with stage("register", config_yaml, run_id) as config:
        example = model_inputs(read_frame(test).head(50), config)
        fitted = load_model(Path(model.path))
        log_model(load_model(Path(baseline.path)), example, name="baseline")
        uri = log_model(fitted, example, name="model")
        log_reference(reference_frame(read_frame(train), config, fitted))
        run = mlflow.get_run(run_id)
        tags = {
            "family": str(model.metadata["family"]),
            "selection.candidate": str(model.metadata.get("candidate", "tuned")),
            "selection.rule": str(evaluation.metadata.get("rule", "")),
            "threshold": str(model.metadata["threshold"]),
            "baseline.threshold": str(baseline.metadata["threshold"]),
            "dataset_sha256": run.data.tags.get("dataset_sha256", ""),
            "run_id": run_id,
            f"test.{evaluation.metadata['metric']}": f"{evaluation.metadata['challenger']:.6f}",
            "onnx.parity_max_abs_diff": f"{onnx_model.metadata['max_abs_diff']:.3g}",
            "onnx.artifact": ONNX_ARTIFACT,
            ONNX_SHA256_TAG: sha256_hex(Path(onnx_model.path).read_bytes()),
            SKOPS_SHA256_TAG: logged_skops_sha256(uri),
        }
        version = register(uri, config.model_name, run_id, tags)
        write_json(version.__dict__ | {"model_uri": uri}, Path(registered.path))
        registered.metadata.update(version.__dict__)
        mlflow.set_tags({"model_name": version.name, "model_version": version.version})
        say(config.name, "register", f"{version.name} version {version.version} (alias challenger)")
