"""Kubeflow Pipelines v2 components: thin wrappers, one import and one call each.

The bodies run in the pipeline image on a cluster and in the current interpreter under
`kfp.local`; all logic lives in `pipelines.steps` (one module per stage) and the packages it calls.
"""

import os
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

# The image the cluster runs (built by `make image`); the package is installed in it.
PIPELINE_IMAGE = os.environ.get("PIPELINE_IMAGE", "ghcr.io/tabular-mlops/pipeline-python:0.1.0")

# The image's lock pins the kfp SDK that compiles the pipeline (tests/unit/infra/test_image.py),
# so no step runs a `pip install kfp` at start (nothing to install, no package index needed).
component = dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)


@component
def load_data(
    config_yaml: str,
    mlflow_run_id: str,
    pipeline_run: str,
    n_trials: int,
    primary_metric: str,
    min_gain_over_baseline: float,
    noninferiority_margin: float,
    min_gain_over_champion: float,
    raw_data: Output[Dataset],
) -> NamedTuple("Loaded", [("run_id", str), ("config_yaml", str)]):  # type: ignore[valid-type]
    """Apply the run parameters to the config, read the raw table and open the MLflow run;
    returns the run id and the config every later step runs with."""
    from pipelines.steps.data import load_step

    return load_step(config_yaml, mlflow_run_id, pipeline_run, n_trials, primary_metric,
                     min_gain_over_baseline, noninferiority_margin, min_gain_over_champion,
                     raw_data)  # fmt: skip


@component
def validate_data(
    config_yaml: str,
    run_id: str,
    raw_data: Input[Dataset],
    clean_data: Output[Dataset],
    quarantine: Output[Dataset],
    report: Output[HTML],
):
    """Repair, quarantine and gate the batch on its data contract."""
    from pipelines.steps.data import validate_step

    validate_step(config_yaml, run_id, raw_data, clean_data, quarantine, report)


@component
def split_data(
    config_yaml: str,
    run_id: str,
    clean_data: Input[Dataset],
    train: Output[Dataset],
    valid: Output[Dataset],
    test: Output[Dataset],
):
    """Time-based (or stratified) train / validation / test split."""
    from pipelines.steps.data import split_step

    split_step(config_yaml, run_id, clean_data, train, valid, test)


@component
def tune_model(
    config_yaml: str,
    run_id: str,
    study_storage: str,
    train: Input[Dataset],
    valid: Input[Dataset],
    best: Output[Artifact],
):
    """Optuna study over the model families (RDB storage, resumable)."""
    from pipelines.steps.tune import tune_step

    tune_step(config_yaml, run_id, study_storage, train, valid, best)


@component
def tune_worker_ids(tune_workers: int) -> list:
    """Ids of the extra tuning workers (1 .. tune_workers - 1; the tune stage is worker 0)."""
    return list(range(1, tune_workers))


@component
def tune_worker(
    config_yaml: str,
    study_storage: str,
    train: Input[Dataset],
    valid: Input[Dataset],
    worker: int,
):
    """One more worker on the tune stage's study (needs PostgreSQL `study_storage`)."""
    from pipelines.tune_distributed import tune_worker_step

    tune_worker_step(config_yaml, study_storage, train, valid, worker)


@component
def train_model(
    config_yaml: str,
    run_id: str,
    train: Input[Dataset],
    valid: Input[Dataset],
    best: Input[Artifact],
    model: Output[Model],
    baseline: Output[Model],
):
    """Fit the tuned challenger and the logistic baseline."""
    from pipelines.steps.train import train_step

    train_step(config_yaml, run_id, train, valid, best, model, baseline)


@component
def evaluate_model(
    config_yaml: str,
    run_id: str,
    model: Input[Model],
    baseline: Input[Model],
    test: Input[Dataset],
    evaluation: Output[Metrics],
    selected: Output[Model],
):
    """Test metrics with bootstrap intervals and slices; selects the challenger (tuned model by
    superiority, else the simplest non-inferior candidate)."""
    from pipelines.steps.train import evaluate_step

    evaluate_step(config_yaml, run_id, model, baseline, test, evaluation, selected)


@component
def explain_model(
    config_yaml: str,
    run_id: str,
    model: Input[Model],
    train: Input[Dataset],
    test: Input[Dataset],
    explanation: Output[Artifact],
):
    """SHAP global and local explanations of the selected challenger."""
    from pipelines.steps.explain import explain_step

    explain_step(config_yaml, run_id, model, train, test, explanation)


@component
def export_model(
    config_yaml: str,
    run_id: str,
    model: Input[Model],
    test: Input[Dataset],
    onnx_model: Output[Model],
):
    """ONNX export of the challenger with a parity check on the test set."""
    from pipelines.steps.export import export_step

    export_step(config_yaml, run_id, model, test, onnx_model)


@component
def register_model(
    config_yaml: str,
    run_id: str,
    model: Input[Model],
    baseline: Input[Model],
    train: Input[Dataset],
    test: Input[Dataset],
    evaluation: Input[Metrics],
    onnx_model: Input[Model],
    registered: Output[Artifact],
):
    """Register the challenger in MLflow (alias `challenger`) with its drift reference; needs a
    parity-checked ONNX."""
    from pipelines.steps.register import register_step

    register_step(
        config_yaml, run_id, model, baseline, train, test, evaluation, onnx_model, registered
    )


@component
def gate_model(
    config_yaml: str,
    run_id: str,
    registered: Input[Artifact],
    model: Input[Model],
    tuned: Input[Model],
    baseline: Input[Model],
    test: Input[Dataset],
    evaluation: Input[Metrics],
    explanation: Input[Artifact],
    decision: Output[Artifact],
):
    """Promotion gate: pass the challenger only when it clears its selection rule and beats the
    champion; write the record."""
    from pipelines.steps.gate import gate_step

    gate_step(
        config_yaml,
        run_id,
        registered,
        model,
        tuned,
        baseline,
        test,
        evaluation,
        explanation,
        decision,
    )


@component
def deploy_model(
    config_yaml: str,
    run_id: str,
    serving_repository: str,
    registered: Input[Artifact],
    model: Input[Model],
    onnx_model: Input[Model],
    test: Input[Dataset],
    decision: Input[Artifact],
    deployment: Output[Artifact],
    production_report: Input[Artifact] = None,
):
    """Infra validation in a real Triton (or the production Triton step's report, on a
    cluster), then the `champion` alias and the serving repository."""
    from pipelines.steps.deploy import deploy_step

    deploy_step(
        config_yaml,
        run_id,
        serving_repository,
        registered,
        model,
        onnx_model,
        test,
        decision,
        deployment,
        production_report,
    )


@component
def stage_candidate(
    config_yaml: str,
    run_id: str,
    registered: Input[Artifact],
    model: Input[Model],
    onnx_model: Input[Model],
    test: Input[Dataset],
    decision: Input[Artifact],
    candidate: Output[Artifact],
):
    """Cluster: the promoted challenger staged for the production Triton image (backend
    onnxruntime), with its holdout requests and the probe; empty when the gate refused."""
    from pipelines.steps.deploy import stage_candidate_step

    stage_candidate_step(config_yaml, run_id, registered, model, onnx_model, test, decision,
                         candidate)  # fmt: skip
