"""Compile the training pipeline and submit it to Kubeflow Pipelines (`make deploy`).

    python -m pipelines.submit --project fraud --host $KFP_HOST [--recurring]
        [--study-storage URL --tune-workers N]

A one-off run by default; `--recurring` creates a recurring run on the project's `schedule`
(6-field cron, seconds first, as Kubeflow reads it). On the cluster the champion reaches
Triton through the registry sync sidecar (infra/k8s/base/inference.yaml), so no serving
repository is passed; Optuna trials go to `--study-storage` (the cluster's PostgreSQL).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs import ConfigError, load_config
from configs.cli import UserError, cli_parser, fail, setup_logging
from configs.schema import ProjectConfig

PORT_FORWARD = "kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8888:80"


class SubmitError(UserError, RuntimeError):
    """No host, an unreachable host, or a project without a schedule; says what to do."""


@dataclass(frozen=True)
class Submission:
    """What was created on the Kubeflow Pipelines host."""

    kind: str  # "run" | "recurring run"
    id: str
    name: str
    experiment: str


def connect(host: str | None) -> Any:
    """A `kfp.Client` for `host` that has answered its health check."""
    import kfp

    if not host:
        raise SubmitError(
            "no Kubeflow Pipelines host: set KFP_HOST (or pass --host)",
            hint=f"{PORT_FORWARD}, then make deploy KFP_HOST=http://localhost:8888 "
            "(docs/deploy.md)",
        )
    try:
        client = kfp.Client(host=host)
        client.get_kfp_healthz(sleep_duration=1)
    except Exception as exc:
        raise SubmitError(
            f"Kubeflow Pipelines at {host} does not answer: {exc}",
            hint=f"check KFP_HOST and the port-forward ({PORT_FORWARD}); docs/deploy.md",
        ) from exc
    return client


def submit(
    client: Any,
    config: ProjectConfig,
    package: Path,
    *,
    recurring: bool,
    study_storage: str = "",
    tune_workers: int = 1,
    experiment: str | None = None,
) -> Submission:
    """Create a run (or a recurring run on `config.schedule`) of the compiled `package`."""
    if tune_workers > 1 and not study_storage.startswith("postgresql"):
        raise SubmitError(
            f"--tune-workers {tune_workers} needs a PostgreSQL --study-storage "
            "(the workers share one Optuna study)",
            hint=f"make deploy TUNE_WORKERS={tune_workers} "
            "STUDY_STORAGE=postgresql+psycopg://USER@HOST:5432/optuna (docs/deploy.md)",
        )
    experiment = experiment or config.name
    arguments = {"study_storage": study_storage, "serving_repository": "",
                 "tune_workers": tune_workers}  # fmt: skip
    name = f"{config.name}-training"
    if not recurring:
        result = client.create_run_from_pipeline_package(
            str(package), arguments=arguments, run_name=name, experiment_name=experiment
        )
        return Submission("run", result.run_id, name, experiment)
    if not config.schedule:
        raise SubmitError(
            f"project {config.name} has no `schedule` in its config",
            hint="add one to the config (6-field cron, e.g. schedule: '0 0 3 * * *'), or "
            "submit a single run (make deploy without RECURRING=1)",
        )
    experiment_id = client.create_experiment(name=experiment).experiment_id
    job = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=f"{name}-recurring",
        cron_expression=config.schedule,
        params=arguments,
        pipeline_package_path=str(package),
        max_concurrency=1,
        no_catchup=True,
    )
    return Submission("recurring run", job.recurring_run_id, f"{name}-recurring", experiment)


def main(argv: Sequence[str] | None = None) -> int:
    from pipelines.compile import compile_pipeline

    parser = cli_parser(
        __doc__,
        prog="python -m pipelines.submit",
        make="make deploy KFP_HOST=... [PROJECT=...] [RECURRING=1] [STUDY_STORAGE=...] "
        "[TUNE_WORKERS=N]",
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument("--host", default=os.environ.get("KFP_HOST"), help="default: $KFP_HOST")
    parser.add_argument("--recurring", action="store_true", help="on the config's schedule")
    parser.add_argument("--study-storage", default="", help="Optuna storage URL (PostgreSQL)")
    parser.add_argument("--tune-workers", type=int, default=1, help="parallel Optuna workers")
    parser.add_argument("--experiment", help="Kubeflow experiment (default: project name)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        client = connect(args.host)
        with tempfile.TemporaryDirectory() as tmp:
            package = compile_pipeline(Path(tmp) / "training_pipeline.yaml", args.project)
            done = submit(client, config, package, recurring=args.recurring,
                          study_storage=args.study_storage, tune_workers=args.tune_workers,
                          experiment=args.experiment)  # fmt: skip
    except (ConfigError, SubmitError) as exc:
        return fail(exc)
    print(f"created {done.kind} {done.name} ({done.id}) in experiment {done.experiment} "
          f"on {args.host}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
