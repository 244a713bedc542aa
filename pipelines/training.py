"""The training pipeline: raw data to a gated, registered model, as one kfp v2 pipeline."""

from kfp import dsl, kubernetes

from configs import ProjectConfig
from models.registry import LOCK_ENV
from pipelines import components as c
from pipelines.production_triton import validate_in_production_triton

PIPELINE_NAME = "tabular-training"
# The Secret (in the pipeline runs' namespace) naming the lock every promoter shares: on a
# cluster the tracking store is MLflow's http server, which has no lock of its own.
PROMOTION_LOCK_SECRET = "promotion-lock"  # noqa: S105 - a Secret's name, not its value


def config_parameter(config: ProjectConfig) -> str:
    """The config as one line of JSON (valid YAML): kfp's compiled header breaks on newlines."""
    return config.model_dump_json(exclude_defaults=True)


def _with_promotion_lock(deploy: dsl.PipelineTask) -> None:
    """Give a deploy task the cluster-wide promotion lock (`MLOPS_PROMOTION_LOCK`).

    Not optional: on a cluster without the Secret the deploy pod does not start, so nothing
    moves (fail closed). kfp.local ignores Kubernetes settings; there the lock follows the
    local tracking store.
    """
    kubernetes.use_secret_as_env(deploy, PROMOTION_LOCK_SECRET, {LOCK_ENV: LOCK_ENV})


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Validate, split, tune, train, evaluate and select, explain, export, register, "
    "gate and deploy a model.",
)
def training_pipeline(
    config_yaml: str,
    n_trials: int,
    primary_metric: str,
    min_gain_over_baseline: float,
    noninferiority_margin: float,
    min_gain_over_champion: float,
    mlflow_run_id: str = "",
    pipeline_run: str = "manual",
    study_storage: str = "",
    serving_repository: str = "",
    tune_workers: int = 1,
    triton_validation: str = "local",
) -> None:
    """Run one project end to end.

    Args:
        config_yaml: The project config (YAML or JSON text), validated by every step.
        n_trials, primary_metric, min_gain_over_baseline, noninferiority_margin,
            min_gain_over_champion: The settings runs are compared by (`configs.RUN_PARAMETERS`),
            beside the config and applied over it by the load step. Required: the compiled
            pipeline's defaults are the project's values (`pipelines.compile`); `make pipeline`
            passes the config's (`configs.run_parameters`).
        mlflow_run_id: Join this MLflow run instead of creating one.
        pipeline_run: A name for this run (MLflow run name and tag).
        study_storage: SQLAlchemy URL of the Optuna storage (default: the config's or SQLite).
        serving_repository: Triton model repository a deployed champion is published to.
        tune_workers: Parallel Optuna workers on the study (> 1 needs a PostgreSQL
            `study_storage`); the tune stage is worker 0 and waits for the whole budget.
        triton_validation: Where a promoted challenger is infra-validated: "local" (the
            platform's Triton inside the deploy step, as `make pipeline` runs it) or
            "production" (the production Triton image, a step of its own; the compiled
            pipeline's default, see `pipelines/production_triton.py`).
    """
    load = c.load_data(
        config_yaml=config_yaml,
        mlflow_run_id=mlflow_run_id,
        pipeline_run=pipeline_run,
        n_trials=n_trials,
        primary_metric=primary_metric,
        min_gain_over_baseline=min_gain_over_baseline,
        noninferiority_margin=noninferiority_margin,
        min_gain_over_champion=min_gain_over_champion,
    )
    # Every later step runs with the config the load step applied the run parameters to.
    config_yaml, run_id = load.outputs["config_yaml"], load.outputs["run_id"]
    common = {"config_yaml": config_yaml, "run_id": run_id}
    validate = c.validate_data(raw_data=load.outputs["raw_data"], **common)
    split = c.split_data(clean_data=validate.outputs["clean_data"], **common)
    train_set, valid_set, test_set = (split.outputs[k] for k in ("train", "valid", "test"))
    tune = c.tune_model(study_storage=study_storage, train=train_set, valid=valid_set, **common)
    with dsl.If(tune_workers > 1, name="parallel-tuning"):
        workers = c.tune_worker_ids(tune_workers=tune_workers)
        with dsl.ParallelFor(workers.output) as worker:
            c.tune_worker(config_yaml=config_yaml, study_storage=study_storage,
                          train=train_set, valid=valid_set, worker=worker)  # fmt: skip
    train = c.train_model(train=train_set, valid=valid_set, best=tune.outputs["best"], **common)
    tuned, baseline = train.outputs["model"], train.outputs["baseline"]
    evaluate = c.evaluate_model(model=tuned, baseline=baseline, test=test_set, **common)
    # The challenger from here on: the tuned model or the baseline, as the selection rule chose.
    model = evaluate.outputs["selected"]
    explain = c.explain_model(model=model, train=train_set, test=test_set, **common)
    export = c.export_model(model=model, test=test_set, **common)
    register = c.register_model(
        model=model,
        baseline=baseline,
        train=train_set,
        test=test_set,
        evaluation=evaluate.outputs["evaluation"],
        onnx_model=export.outputs["onnx_model"],
        **common,
    )
    gate = c.gate_model(
        registered=register.outputs["registered"],
        model=model,
        tuned=tuned,
        baseline=baseline,
        test=test_set,
        evaluation=evaluate.outputs["evaluation"],
        explanation=explain.outputs["explanation"],
        **common,
    )
    deploy_inputs = {
        "serving_repository": serving_repository,
        "registered": register.outputs["registered"],
        "model": model,
        "onnx_model": export.outputs["onnx_model"],
        "test": test_set,
        "decision": gate.outputs["decision"],
        **common,
    }
    # The deployment record is each branch's `deployment` artifact (and the MLflow run's
    # reports/deployment.json). No pipeline output selects between the branches: kfp.local
    # 2.17 fails on a dsl.OneOf whose other branch was skipped.
    with dsl.If(triton_validation == "production", name="production-triton"):
        staged = c.stage_candidate(
            **{k: v for k, v in deploy_inputs.items() if k != "serving_repository"}
        )
        probed = validate_in_production_triton(candidate=staged.outputs["candidate"])
        _with_promotion_lock(
            c.deploy_model(production_report=probed.outputs["report"], **deploy_inputs)
        )
    with dsl.Else(name="local-triton"):
        _with_promotion_lock(c.deploy_model(**deploy_inputs))
