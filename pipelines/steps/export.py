"""The export stage: the challenger, preprocessing included, as one ONNX graph, parity proven."""

from __future__ import annotations

from pathlib import Path

from pipelines.steps.edge import ArtifactLike, log_bytes, read_frame, say, stage


def export_step(
    config_yaml: str,
    run_id: str,
    model: ArtifactLike,
    test: ArtifactLike,
    onnx_model: ArtifactLike,
) -> None:
    """Export the challenger, preprocessing included, to ONNX and prove parity on test rows.

    Raises:
        ParityError: ONNX and in-process probabilities differ by more than the tolerance
            (the model is then neither registered nor deployed).
    """
    import mlflow

    from features.split import model_inputs
    from models.registry import load_model, sha256_hex
    from serving.deploy import ONNX_ARTIFACT
    from serving.onnx_export import TARGET_OPSET, assert_parity, export_onnx

    with stage("export", config_yaml, run_id) as config:
        fitted = load_model(Path(model.path))
        columns = (config.numeric_features, config.categorical_features)
        onnx_bytes = export_onnx(fitted, *columns, name=config.model_name)
        rows = model_inputs(read_frame(test), config)
        parity = assert_parity(fitted, onnx_bytes, rows, *columns, config.serving.parity_tolerance)
        Path(onnx_model.path).write_bytes(onnx_bytes)
        report = parity.__dict__ | {
            "opset": TARGET_OPSET,
            "bytes": len(onnx_bytes),
            "sha256": sha256_hex(onnx_bytes),
        }
        onnx_model.metadata.update({"framework": "onnx", **report})
        log_bytes(onnx_bytes, ONNX_ARTIFACT)
        mlflow.log_dict(report, "onnx/parity.json")
        mlflow.log_metric("onnx.parity_max_abs_diff", parity.max_abs_diff)
        say(
            config.name,
            "export",
            f"ONNX {len(onnx_bytes) / 1024:.0f} KiB, parity max |diff| "
            f"{parity.max_abs_diff:.2e} over {parity.rows:,} test rows",
        )
