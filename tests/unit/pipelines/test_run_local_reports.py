"""Reports per project: a second project's run leaves the first one's model card in place."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.run_local import parse_args, reports_dir, write_summary
from pipelines.steps.deploy import DEPLOYMENT_FILE
from pipelines.steps.gate import DECISION_FILE


def finished_run(project: str, artifacts: Path) -> str:
    """A real MLflow run holding what the pipeline's steps log under `reports/`."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.create_experiment(f"{project}-{artifacts.name}", artifact_location=None)
    run_id = client.create_run(experiment).info.run_id
    files = artifacts / project
    files.mkdir(parents=True)
    (files / "model_card.md").write_text(f"# {project} model card\n")
    decision = {
        "promote": True,
        "metric": "roc_auc",
        "confidence": 0.95,
        "intervals": {"challenger": {"value": 0.8, "low": 0.7, "high": 0.9}},
        "reasons": ["better than the baseline"],
    }
    (files / DECISION_FILE).write_text(json.dumps(decision))
    (files / DEPLOYMENT_FILE).write_text(json.dumps({"deployed": True, "reasons": []}))
    client.log_artifacts(run_id, str(files), artifact_path="reports")
    for key, value in {
        "project": project,
        "model_name": f"{project}-classifier",
        "model_version": "1",
    }.items():
        client.set_tag(run_id, key, value)
    return run_id


def test_the_default_report_folder_is_per_project() -> None:
    assert parse_args(["--project", "churn"]).reports is None  # resolved once the config loads
    assert reports_dir("churn") == Path("reports/churn/latest")
    assert reports_dir("fraud", Path("/tmp/r")) == Path("/tmp/r/fraud/latest")


def test_two_projects_run_one_after_the_other_keep_both_reports(tracking, tmp_path) -> None:
    root = tmp_path / "reports"
    for project in ("alpha", "beta"):
        run_id = finished_run(project, tmp_path / "artifacts")
        summary = write_summary(run_id, f"{project}-run", reports_dir(project, root), 1.0)
        assert summary["paths"]["model_card"] == str(root / project / "latest" / "model_card.md")
    for project in ("alpha", "beta"):
        card = root / project / "latest" / "model_card.md"
        assert card.read_text() == f"# {project} model card\n"
        summary = json.loads((card.parent / "run_summary.json").read_text())
        assert summary["project"] == project
    assert not (root / "latest").exists()
