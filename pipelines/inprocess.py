"""The training DAG called step by step in one Python process, without kfp.

For debugging (breakpoints work), for tests that need coverage of the steps, and as the
plain-script baseline that `make bench-pipeline` compares `kfp.local` against. The order
mirrors `pipelines/training.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import steps

ARTIFACTS = (
    "raw",
    "clean",
    "quarantine",
    "report",
    "train",
    "valid",
    "test",
    "best",
    "model",
    "baseline",
    "evaluation",
    "selected",
    "explanation",
    "onnx",
    "registered",
    "decision",
    "deployment",
)


@dataclass
class FileArtifact:
    """A local stand-in for a kfp artifact: a path plus metadata."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


def run_steps(
    config_yaml: str,
    workdir: Path,
    study_storage: str = "",
    mlflow_run_id: str = "",
    serving_repository: str = "",
) -> tuple[str, dict[str, FileArtifact]]:
    """Run every step in order; returns the MLflow run id and the artifacts by name."""
    workdir.mkdir(parents=True, exist_ok=True)
    a = {name: FileArtifact(str(workdir / name)) for name in ARTIFACTS}
    common = {"config_yaml": config_yaml}
    run_id = steps.load_step(config_yaml, mlflow_run_id, "in-process", a["raw"])
    common["run_id"] = run_id
    steps.validate_step(
        **common,
        raw_data=a["raw"],
        clean_data=a["clean"],
        quarantine=a["quarantine"],
        report=a["report"],
    )
    steps.split_step(
        **common, clean_data=a["clean"], train=a["train"], valid=a["valid"], test=a["test"]
    )
    steps.tune_step(
        **common, study_storage=study_storage, train=a["train"], valid=a["valid"], best=a["best"]
    )
    steps.train_step(
        **common,
        train=a["train"],
        valid=a["valid"],
        best=a["best"],
        model=a["model"],
        baseline=a["baseline"],
    )
    steps.evaluate_step(
        **common,
        model=a["model"],
        baseline=a["baseline"],
        test=a["test"],
        evaluation=a["evaluation"],
        selected=a["selected"],
    )
    # The challenger from here on: the candidate the evaluate step selected.
    steps.explain_step(
        **common,
        model=a["selected"],
        train=a["train"],
        test=a["test"],
        explanation=a["explanation"],
    )
    steps.export_step(**common, model=a["selected"], test=a["test"], onnx_model=a["onnx"])
    steps.register_step(
        **common,
        model=a["selected"],
        baseline=a["baseline"],
        train=a["train"],
        test=a["test"],
        evaluation=a["evaluation"],
        onnx_model=a["onnx"],
        registered=a["registered"],
    )
    steps.gate_step(
        **common,
        registered=a["registered"],
        model=a["selected"],
        tuned=a["model"],
        baseline=a["baseline"],
        test=a["test"],
        evaluation=a["evaluation"],
        explanation=a["explanation"],
        decision=a["decision"],
    )
    steps.deploy_step(
        common["config_yaml"],
        common["run_id"],
        serving_repository=serving_repository,
        registered=a["registered"],
        model=a["selected"],
        onnx_model=a["onnx"],
        test=a["test"],
        decision=a["decision"],
        deployment=a["deployment"],
    )
    return run_id, a
