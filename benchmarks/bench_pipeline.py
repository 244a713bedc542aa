"""Benchmark: the training pipeline through kfp.local (cold, warm) vs its steps in one process.

    python -m benchmarks.bench_pipeline [--project fraud]

Three runs of the same pipeline, each from a fresh MLflow store and Optuna storage in a
temporary directory (no run resumes another's study):

- kfp.local cold: every component a new interpreter (`run_local --cold`, kfp.local's own way,
  and what the platform did before `pipelines/warm_start.py`); the per-component cost a
  cluster's pod per step also pays;
- kfp.local warm (`make pipeline`): every component a fork of one process that imported the ML
  stack once;
- the same steps called in one process (`pipelines.inprocess`).

Per component it splits each kfp.local task's wall time into start (interpreter, `import kfp`:
task start to the executor's first log line), the step itself (`stage_seconds`) and the rest
(the step module's imports, MLflow store, config, writing outputs). Also measures kfp.local's
own cost per component with a no-op component. Writes `reports/bench_pipeline.md` and `.json`.
"""

import contextlib
import io
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from configs import ConfigError, load_config
from configs.cli import cli_parser, fail, progress, setup_logging
from pipelines.stages import STAGES

REPORT = Path("reports/bench_pipeline")


def _fresh_store(root: Path) -> None:
    import mlflow

    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)


def time_kfp_local(project: str, root: Path, cold: bool = False) -> dict[str, Any]:
    """Wall time, stage seconds and per-component split of `make pipeline`'s code path."""
    from pipelines import run_local

    _fresh_store(root)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        started = time.perf_counter()
        argv = ["--project", str(project), "--reports", "reports", "--pipeline-root", "outputs"]
        with contextlib.redirect_stdout(io.StringIO()):
            status = run_local.main([*argv, *(["--cold"] if cold else [])])
        wall = time.perf_counter() - started
    finally:
        os.chdir(cwd)
    if status != 0:
        raise BenchError(f"the kfp.local run failed with status {status}")
    summary = json.loads((root / "reports" / "run_summary.json").read_text())
    stage_seconds: dict[str, float] = summary["stage_seconds"]
    log = next((root / "outputs").glob("*.log")).read_text()
    return {
        "wall": wall,
        "stages": sum(stage_seconds.values()),
        "components": component_split(log, stage_seconds),
    }


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task|Task) '([\w-]+)'")
_EXECUTOR = re.compile(r"^\[KFP Executor \S+ (\d\d:\d\d:\d\d,\d+) INFO\]: Looking for component")


def _seconds(clock: str) -> float:
    t = datetime.strptime(clock.replace(",", "."), "%H:%M:%S.%f")
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def component_split(log: str, stage_seconds: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per kfp.local task: wall, start (to the executor's first line), step, rest (seconds)."""
    out: dict[str, dict[str, float]] = {}
    task, began, first = "", 0.0, None
    for line in _ANSI.sub("", log).splitlines():
        if match := _TASK.match(line):
            clock, kind, name = match.groups()
            if kind == "Executing task":
                task, began, first = name, _seconds(clock), None
            elif name == task:
                wall = (_seconds(clock) - began) % 86400
                step = stage_seconds.get(task.split("-")[0], 0.0)
                start = ((first - began) % 86400) if first is not None else 0.0
                out[task] = {
                    "wall": wall,
                    "start": start,
                    "step": step,
                    "rest": wall - start - step,
                }
        elif first is None and task and (match := _EXECUTOR.match(line.strip())):
            first = _seconds(match.group(1))
    return out


def time_in_process(project: str, root: Path) -> dict[str, float]:
    """Wall time of the same steps called in one Python process (a plain script)."""
    import mlflow

    from configs import load_config
    from models.registry import experiment_id
    from pipelines.inprocess import run_steps
    from pipelines.training import config_parameter

    _fresh_store(root)
    config = load_config(project)
    run = mlflow.MlflowClient().create_run(experiment_id(config.name, root / "artifacts"))
    cwd = Path.cwd()
    os.chdir(root)
    try:
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            run_steps(config_parameter(config), root / "steps", mlflow_run_id=run.info.run_id)
        wall = time.perf_counter() - started
    finally:
        os.chdir(cwd)
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    stages = sum(v for k, v in metrics.items() if k.startswith("stage_seconds."))
    return {"wall": wall, "stages": stages}


def time_noop_components(root: Path, n: int = 5, warm: bool = False) -> float:
    """kfp.local's own cost per component: a chain of no-op lightweight components."""
    from kfp import dsl, local

    from pipelines.warm_start import LATE_PRELOAD, PRELOAD, warm_components

    @dsl.component(base_image="python:3.11")
    def noop(x: int) -> int:
        return x + 1

    @dsl.pipeline
    def chain(x: int = 0) -> int:
        task = noop(x=x)
        for _ in range(n - 1):
            task = noop(x=task.output)
        return task.output

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "noop"))
    with (
        # every import before it is ready (none beside the children): the forks' own cost
        warm_components((*PRELOAD, *LATE_PRELOAD)) if warm else contextlib.nullcontext() as zygote,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        if zygote is not None:
            zygote.ready()  # its imports are paid once per pipeline run, not per component
        started = time.perf_counter()
        chain()
        return (time.perf_counter() - started) / n


class BenchError(RuntimeError):
    """A run the benchmark needs failed."""


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        __doc__,
        prog="python -m benchmarks.bench_pipeline",
        make="make bench-pipeline [PROJECT=...]",
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    project = str(Path(args.project).resolve()) if args.project.endswith(".yaml") else args.project
    phases: dict[str, Callable[[str, Path], dict[str, Any]]] = {
        "kfp.local cold": lambda project, root: time_kfp_local(project, root, cold=True),
        "kfp.local warm": time_kfp_local,
        "in process": time_in_process,
    }
    try:
        load_config(project)  # a bad config fails here, not inside the first run
        with tempfile.TemporaryDirectory() as tmp:
            tmp_path = Path(tmp)
            runs = {}
            for name in progress(phases, desc="bench-pipeline", unit="run"):
                runs[name] = phases[name](project, tmp_path / name.replace(" ", "-"))
            noop = {
                "cold": time_noop_components(tmp_path / "cold"),
                "warm": time_noop_components(tmp_path / "warm", warm=True),
            }
    except ConfigError as exc:
        return fail(exc)
    except BenchError as exc:
        return fail(exc, f"make pipeline PROJECT={args.project} shows the failing stage", code=1)
    lines = report_lines(args.project, runs, noop)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.with_suffix(".md").write_text("\n".join(lines) + "\n")
    REPORT.with_suffix(".json").write_text(
        json.dumps(
            {"project": args.project, "noop_component_s": noop, "runs": runs},
            indent=2,
        )
    )
    print("\n".join(lines))
    return 0


def report_lines(
    project: str, runs: dict[str, dict[str, Any]], noop: dict[str, float]
) -> list[str]:
    components = len(STAGES)
    names = {
        "kfp.local cold": "kfp.local cold (a new interpreter per component, `--cold`)",
        "kfp.local warm": "kfp.local warm (`make pipeline`: forks of one warm process)",
        "in process": "same steps in one process",
    }
    lines = [
        f"# Training pipeline benchmark: project `{project}`",
        "",
        f"Machine: {os.cpu_count()} CPUs. Every run starts from an empty MLflow store and study.",
        "Overhead is wall time less the steps' own `stage_seconds` (what a warm process "
        "imports before the steps, and the first steps' wait for what it imports beside them, "
        "count here, not in the steps). Over one process is wall time less the same steps' "
        "wall time in one process: what the orchestration adds.",
        "",
        "| runner | wall s | sum of stage s | overhead s | overhead per component s "
        "| over one process s |",
        "|---|---|---|---|---|---|",
    ]
    one_process = runs["in process"]["wall"]
    for name, r in ((names[k], r) for k, r in runs.items()):
        overhead = r["wall"] - r["stages"]
        lines.append(
            f"| {name} | {r['wall']:.1f} | {r['stages']:.1f} | {overhead:.1f} "
            f"| {overhead / components:.2f} | {r['wall'] - one_process:.1f} |"
        )
    lines += [
        "",
        f"kfp.local's own cost per no-op component: {noop['cold']:.2f} s cold, "
        f"{noop['warm']:.2f} s warm.",
        "",
        "## Where each component's time goes (s)",
        "",
        "start: task start to the executor's first line (cold: `sh`, kfp's `pip install kfp` "
        "no-op, a new interpreter, `import kfp`; warm: a fork). step: the step's "
        "`stage_seconds`. rest: the step module's imports (pandas, MLflow, scikit-learn, ...), "
        "the MLflow store, config and outputs.",
        "",
        "| component | cold wall | cold start | cold rest | warm wall | warm start | warm rest "
        "| step (cold / warm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    cold = runs.get("kfp.local cold", {}).get("components", {})
    warm = runs.get("kfp.local warm", {}).get("components", {})
    for task in cold or warm:
        c, w = cold.get(task, {}), warm.get(task, {})
        cells = [
            f"{d[k]:.1f}" if k in d else "-"
            for d, k in ((c, "wall"), (c, "start"), (c, "rest"), (w, "wall"), (w, "start"))
        ]
        cells.append(f"{w['rest']:.1f}" if "rest" in w else "-")
        lines.append(
            f"| {task} | {' | '.join(cells)} | {c.get('step', 0):.1f} / {w.get('step', 0):.1f} |"
        )
    for label, comps in (("cold", cold), ("warm", warm)):
        if comps:
            lines.append(
                f"| **sum {label}** | overhead "
                f"{sum(v['start'] + v['rest'] for v in comps.values()):.1f} s | | | | | | |"
            )
    kfp_cold, kfp_warm = runs["kfp.local cold"], runs["kfp.local warm"]
    plain = runs["in process"]
    lines += [
        "",
        f"kfp.local / in-process wall time: cold {kfp_cold['wall'] / plain['wall']:.2f}x, "
        f"warm {kfp_warm['wall'] / plain['wall']:.2f}x.",
        "",
        "A cluster runs each component in its own pod from the compiled YAML, unchanged: it pays "
        "the cold per-component cost (plus pod scheduling), not the warm one.",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
