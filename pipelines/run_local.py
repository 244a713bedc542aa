"""Run the training pipeline locally through `kfp.local` and write the run summary.

    python -m pipelines.run_local --project fraud

The same components a cluster runs from the compiled YAML run here as subprocesses of the
current interpreter. Exit status: 0 success, 1 the pipeline failed (a stage named), 2 the
config or the tracking store is unusable before anything ran. From Python (the retrain loop,
the tests): `run(config, overrides) -> RunSummary`.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from configs import ConfigError, ProjectConfig, load_config, override, run_parameters
from configs.cli import RED, UserError, cli_parser, fail, highlight, paint, setup_logging
from models.registry import RegistryError, configure_tracking, experiment_id
from pipelines.stages import STAGES
from pipelines.steps.deploy import DEPLOYMENT_FILE
from pipelines.steps.gate import DECISION_FILE
from pipelines.training import PIPELINE_NAME, config_parameter
from pipelines.warm_start import Zygote, warm_components
from serving.deploy import SERVING_REPOSITORY

REPORTS_ROOT = Path("reports")
SUMMARY_FILE = "run_summary.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli_parser(
        __doc__,
        prog="python -m pipelines.run_local",
        make="make pipeline [PROJECT=fraud|churn|path.yaml] [LOG_LEVEL=DEBUG]",
    )
    parser.add_argument(
        "--project", default="fraud", help="config name or YAML path (default: fraud)"
    )
    parser.add_argument(
        "--reports",
        type=Path,
        default=None,
        help="where the run summary and reports go (default: reports/<project>/latest)",
    )
    parser.add_argument(
        "--pipeline-root",
        type=Path,
        default=Path("local_outputs"),
        help="kfp.local artifact root (default: local_outputs)",
    )
    parser.add_argument(
        "--study-storage",
        default="",
        help="SQLAlchemy URL of the Optuna study, e.g. the PostgreSQL one `make tune-distributed` "
        "filled (default: the config's tuning.storage, else mlruns/optuna.db)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start every component as a new interpreter, as kfp.local does by default, instead "
        "of forking it from one that imported the ML stack once (pipelines/warm_start.py)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="echo the full kfp.local log instead of one line per stage (so does "
        "--log-level DEBUG)",
    )
    return parser.parse_args(argv)


class PipelineError(UserError, RuntimeError):
    """A stage failed; what failed and what to do were printed, the MLflow run marked FAILED."""


@dataclass(frozen=True)
class RunSummary:
    """What one run did: `data` is what `run_summary.json` (at `path`) holds."""

    path: Path
    data: dict[str, Any]

    @property
    def version(self) -> str:
        """The registered challenger's version."""
        return str(self.data["model"]["version"])

    @property
    def promoted(self) -> bool:
        """True when the challenger passed the gate and infra validation and is champion."""
        return bool(self.data["promoted"])

    @property
    def deployed(self) -> bool:
        """True when the version was published to the serving repository."""
        return bool(self.data["deployment"]["deployed"])

    @property
    def reasons(self) -> list[str]:
        """Why: the deployment's reasons, then the gate's."""
        return list(self.data["reasons"])


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    level = setup_logging(args.log_level)  # exported: the components log at the same level
    try:
        summary = run(args.project, reports=args.reports, pipeline_root=args.pipeline_root,
                      study_storage=args.study_storage, cold=args.cold,
                      verbose=args.verbose or level == "DEBUG")  # fmt: skip
    except (ConfigError, RegistryError) as exc:
        return fail(exc)
    except PipelineError:
        return 1
    _print_summary(summary.data)
    return 0


def run(
    config: ProjectConfig | str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    reports: Path | None = None,
    pipeline_root: Path = Path("local_outputs"),
    study_storage: str = "",
    cold: bool = False,
    verbose: bool = False,
) -> RunSummary:
    """Run the training pipeline through kfp.local and write its summary and reports.

    Args:
        config: A validated config, or a project name or YAML path to load.
        overrides: Config keys to change for this run, dotted (`{"tuning.n_trials": 3}`);
            validated with the rest (`configs.override`).
        reports: Where the summary and reports go (default: `reports/<project>/latest`).
        pipeline_root: kfp.local's artifact root.
        study_storage: SQLAlchemy URL of the Optuna study (default: the config's, else SQLite).
        cold: Start each component as a new interpreter instead of forking a warm one.
        verbose: Echo the whole kfp.local log, not only the stage lines.

    Raises:
        ConfigError: The config is missing or invalid (nothing ran).
        RegistryError: The tracking store is unusable (nothing ran).
        PipelineError: A stage failed (printed; the MLflow run is marked FAILED).
    """
    # The process warm components fork from (pipelines/warm_start.py) imports the ML stack
    # now, while this one reads the config and opens the tracking store and the MLflow run.
    zygote = None if cold else Zygote.start()
    try:
        if not isinstance(config, ProjectConfig):
            config = load_config(config)
        if overrides:
            config = override(config, overrides)
        configure_tracking(Path.cwd())
        return _run(config, reports, pipeline_root, study_storage, verbose, zygote)
    finally:
        if zygote is not None:
            zygote.stop()


def _run(
    config: ProjectConfig,
    reports: Path | None,
    pipeline_root: Path,
    study_storage: str,
    verbose: bool,
    zygote: Zygote | None,
) -> RunSummary:
    import mlflow

    config_yaml = config_parameter(config)
    run_name = f"{config.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    run = mlflow.MlflowClient().create_run(
        experiment_id(config.name, Path.cwd() / "mlruns" / "artifacts"), run_name=run_name
    )
    run_id = run.info.run_id
    print(
        f"[{config.name}] pipeline  {PIPELINE_NAME} run {run_name} (MLflow run {run_id})",
        flush=True,
    )
    started = time.perf_counter()
    log_path = pipeline_root / f"{run_name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with (
        log_path.open("w") as log,
        redirect_stdout(_StageLines(log, f"[{config.name}]", verbose)),
    ):
        try:
            _run_pipeline(config_yaml, run_parameters(config), run_id, run_name, pipeline_root,
                          study_storage, zygote)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - kfp.local wraps the component's failure
            failure: Exception | None = exc
        else:
            failure = None
    if failure is not None:
        print(f"[{config.name}] full log: {log_path}", file=sys.stderr)
        raise _report_failure(config.name, run_id, failure) from failure
    wall = time.perf_counter() - started
    folder = reports or reports_dir(config.name)
    return RunSummary(folder / SUMMARY_FILE, write_summary(run_id, run_name, folder, wall))


def reports_dir(project: str, root: Path = REPORTS_ROOT) -> Path:
    """Where a project's latest run puts its summary and reports: `reports/<project>/latest`.

    Per project, so that one project's run never replaces another's model card.
    """
    return root / project / "latest"


# Outcome words of the stage lines, coloured on a terminal.
OUTCOMES = ("passed", "not promoted", "DEPLOYED as champion", "not deployed")


class _StageLines(io.TextIOBase):
    """Stdout during the run: everything to the log file, stage lines to the terminal."""

    def __init__(self, log: TextIO, prefix: str, verbose: bool) -> None:
        self._log, self._prefix, self._verbose = log, prefix, verbose
        self._terminal, self._partial = sys.stdout, ""

    def write(self, text: str) -> int:
        self._log.write(text)
        if self._verbose:
            return self._terminal.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if line.lstrip().startswith(self._prefix):
                stage_line = highlight(line.strip(), OUTCOMES, stream=self._terminal)
                self._terminal.write(stage_line + "\n")
        self._terminal.flush()
        return len(text)


def _run_pipeline(
    config_yaml: str,
    parameters: Mapping[str, Any],
    run_id: str,
    run_name: str,
    pipeline_root: Path,
    study_storage: str = "",
    zygote: Zygote | None = None,
) -> None:
    from kfp import local

    from pipelines.training import training_pipeline

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,
    )
    # Warm: the same components, commands and environment; each runs in a fork of one process
    # that imported the ML stack once instead of a new interpreter (the cluster is unchanged).
    with warm_components(zygote=zygote) if zygote is not None else nullcontext():
        training_pipeline(
            config_yaml=config_yaml,
            **parameters,
            mlflow_run_id=run_id,
            pipeline_run=run_name,
            study_storage=study_storage,
            serving_repository=str(Path.cwd() / SERVING_REPOSITORY),
        )


def _report_failure(project: str, run_id: str, exc: Exception) -> PipelineError:
    import mlflow

    client = mlflow.MlflowClient()
    tags = client.get_run(run_id).data.tags
    client.set_terminated(run_id, status="FAILED")
    stage, message = tags.get("failed_stage"), tags.get("failure")
    if stage is None:
        stage, message = "pipeline", str(exc).strip().splitlines()[-1]
    failed = paint("FAILED", RED, stream=sys.stderr)
    print(f"\n[{project}] {failed} at stage '{stage}': {message}", file=sys.stderr)
    version = tags.get("model_version")
    outcome = (
        f"version {version} is registered as challenger only; the champion did not change"
        if version
        else "nothing was registered or promoted"
    )
    print(f"[{project}] {outcome}; MLflow run {run_id} is marked FAILED", file=sys.stderr)
    if tags.get("failure_hint"):  # the failing step's `UserError.hint`
        print(f"  next: {tags['failure_hint']}", file=sys.stderr)
    return PipelineError(f"stage '{stage}' failed: {message}", hint=tags.get("failure_hint"))


def write_summary(run_id: str, run_name: str, reports: Path, wall_seconds: float) -> dict[str, Any]:
    """Download the run's reports and write `run_summary.json` beside them."""
    import mlflow

    if reports.exists():
        shutil.rmtree(reports)
    reports.mkdir(parents=True)
    mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="reports", dst_path=str(reports)
    )
    files = reports / "reports"
    for item in files.iterdir():
        item.rename(reports / item.name)
    files.rmdir()
    client = mlflow.MlflowClient()
    client.set_terminated(run_id, status="FINISHED")
    run = client.get_run(run_id)
    decision = json.loads((reports / DECISION_FILE).read_text())
    deployment = json.loads((reports / DEPLOYMENT_FILE).read_text())
    stages = {
        k.split(".", 1)[1]: v for k, v in run.data.metrics.items() if k.startswith("stage_seconds.")
    }
    summary = {
        "project": run.data.tags["project"],
        "pipeline": {
            "name": PIPELINE_NAME,
            "run": run_name,
            "runner": "kfp.local.SubprocessRunner",
        },
        "mlflow": {
            "run_id": run_id,
            "experiment_id": run.info.experiment_id,
            "tracking_uri": mlflow.get_tracking_uri(),
        },
        "model": {"name": run.data.tags["model_name"], "version": run.data.tags["model_version"]},
        "promoted": deployment["deployed"],
        "reasons": [*deployment["reasons"], *decision["reasons"]],
        "gate_passed": decision["promote"],
        "deployment": {
            k: deployment.get(k) for k in ("deployed", "lead_time_s", "serving_repository")
        }
        | {k: deployment.get("infra_validation", {}).get(k) for k in ("p50_ms", "p99_ms")},
        "primary_metric": {
            "name": decision["metric"],
            "confidence": decision["confidence"],
            **decision["intervals"],
        },
        "dataset_sha256": run.data.tags.get("dataset_sha256"),
        "stage_seconds": dict(sorted(stages.items(), key=lambda kv: STAGES.index(kv[0]))),
        "wall_seconds": round(wall_seconds, 1),
        "orchestration_overhead_seconds": round(wall_seconds - sum(stages.values()), 1),
        "paths": {
            "validation_report": str(reports / "validation_report.html"),
            "quarantine": str(reports / "quarantine.csv"),
            "shap_plots": sorted(str(p) for p in (reports / "shap").glob("*.png")),
            "model_card": str(reports / "model_card.md"),
            "decision_record": str(reports / DECISION_FILE),
            "deployment_record": str(reports / DEPLOYMENT_FILE),
        },
    }
    (reports / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    metric = summary["primary_metric"]
    outcome = paint("PROMOTED to champion" if summary["promoted"] else "not promoted")
    print(
        f"\n== {summary['project']}: {summary['model']['name']} v{summary['model']['version']} "
        f"{outcome}"
    )
    for who in ("challenger", "champion", "baseline"):
        if who in metric:
            iv = metric[who]
            print(
                f"   {who:<10} {metric['name']} {iv['value']:.4f} "
                f"[{iv['low']:.4f}, {iv['high']:.4f}]"
            )
    for reason in summary["reasons"]:
        print(f"   - {reason}")
    deployment = summary["deployment"]
    if deployment["deployed"]:
        print(
            f"   deployed: Triton p99 {deployment['p99_ms']:.2f} ms, lead time "
            f"{deployment['lead_time_s']:.1f}s (registration to validated and published); "
            "`make serve` serves it"
        )
    stages = ", ".join(f"{k} {v:.1f}s" for k, v in summary["stage_seconds"].items())
    print(f"   stages: {stages}")
    print(
        f"   wall {summary['wall_seconds']:.1f}s (orchestration overhead "
        f"{summary['orchestration_overhead_seconds']:.1f}s)"
    )
    print(f"   summary: {Path(summary['paths']['model_card']).parent / SUMMARY_FILE}")


if __name__ == "__main__":
    sys.exit(main())
