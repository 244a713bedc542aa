"""The explain stage: SHAP explanations of the challenger, global and per row."""

from __future__ import annotations

from pathlib import Path

from pipelines.steps.edge import ArtifactLike, read_frame, say, stage, write_json


def explain_step(
    config_yaml: str,
    run_id: str,
    model: ArtifactLike,
    train: ArtifactLike,
    test: ArtifactLike,
    explanation: ArtifactLike,
) -> None:
    """SHAP global and local explanations of the challenger, logged as artifacts."""
    import mlflow

    from features.split import model_inputs
    from models.explain import explain_model
    from models.registry import load_model

    with stage("explain", config_yaml, run_id) as config:
        settings = config.explain
        background = model_inputs(read_frame(train), config).sample(
            min(settings.background_rows, int(train.metadata.get("rows", 10**9))),
            random_state=config.tuning.seed,
        )
        test_rows = model_inputs(read_frame(test), config)
        rows = test_rows.sample(
            min(settings.explain_rows, len(test_rows)), random_state=config.tuning.seed
        )
        out_dir = Path(explanation.path)
        result = explain_model(
            load_model(Path(model.path)),
            model.metadata["family"],
            background,
            rows.reset_index(drop=True),
            out_dir,
            settings.local_examples,
            config.tuning.seed,
        )
        result.importance.to_csv(out_dir / "shap_importance.csv", index=False)
        write_json(result.local, out_dir / "shap_local.json")
        mlflow.log_artifacts(str(out_dir), "reports/shap")
        explanation.metadata.update(
            {"explainer": result.explainer, "top_features": result.top_features()}
        )
        say(
            config.name,
            "explain",
            f"{result.explainer} SHAP on {len(rows)} rows; top: "
            + ", ".join(result.top_features(3)),
        )
