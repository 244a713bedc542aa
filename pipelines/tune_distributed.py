"""Distributed tuning: N worker processes run the trials of one Optuna study in PostgreSQL.

    python -m pipelines.tune_distributed --project fraud --workers 3 \\
        --storage postgresql+psycopg://user@host:5432/optuna [--trials N]

The study is the pipeline's own: the same train and validation data (loaded, cleaned and split
as the pipeline does), the same name `<project>-<data hash>-<config hash>` and the storage the
tune stage would use (`--storage`, else `tuning.storage`, else the SQLite default). A pipeline
run on that storage resumes the study and runs only the trials still missing. SQLite takes one
writer at a time: without a PostgreSQL URL the run falls back to one worker, with a warning.
On a cluster each kfp `ParallelFor` item calls `tune_worker_step`.

Exit status: 0 done, 1 a worker failed, 2 the config or the storage is unusable.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import sys
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from configs import ConfigError, ProjectConfig, load_config
from configs.cli import cli_parser, fail, paint, progress, progress_enabled, setup_logging
from models.tune import HEARTBEAT_S
from pipelines.steps import edge
from pipelines.steps.data import as_stored
from pipelines.steps.tune import TuningInputs, default_study_storage, trial_line, tuning_inputs


def pipeline_frames(config: ProjectConfig) -> tuple[Any, Any]:
    """Train and validation frames as the tune stage reads them (each stage's Parquet included)."""
    import pandas as pd

    from features.contract import clean_rows
    from features.sources import load_raw
    from features.split import split_data

    def parquet(frame: pd.DataFrame) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(frame.to_parquet(index=False)))

    raw = as_stored(load_raw(config.data))
    train, valid, _ = split_data(parquet(clean_rows(parquet(raw), config).clean), config)
    return parquet(train), parquet(valid)


def usable_workers(storage: str, workers: int) -> int:
    """`workers`, or 1 with a warning where the storage cannot take concurrent workers."""
    if workers > 1 and not storage.startswith("postgresql"):
        print(
            f"{paint('warning', stream=sys.stderr)}: {shown(storage)} is not safe for concurrent "
            "workers (only a PostgreSQL storage is locked per trial); running 1 worker. Pass "
            "--storage postgresql+psycopg://USER@HOST:PORT/DB for parallel workers.",
            file=sys.stderr,
        )
        return 1
    return workers


def start_workers(
    config: ProjectConfig,
    inputs: TuningInputs,
    storage: str,
    workers: int,
    heartbeat_s: int = HEARTBEAT_S,
    trial_lines: bool = True,
) -> list[multiprocessing.process.BaseProcess]:
    """Start `workers` OS processes on one study; the CPU cores are split between them.

    Each worker prints a line per trial unless `trial_lines` is false."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes: list[multiprocessing.process.BaseProcess] = [
        context.Process(
            target=_work,
            args=(config, inputs, storage, worker, threads, heartbeat_s, trial_lines),
            name=f"tune-worker-{worker}",
        )
        for worker in range(workers)
    ]
    for process in processes:
        process.start()
    return processes


def _work(
    config: ProjectConfig,
    inputs: TuningInputs,
    storage: str,
    worker: int,
    threads: int,
    heartbeat_s: int,
    trial_lines: bool = True,
) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    setup_logging()  # a spawned process: the level comes from MLOPS_LOG_LEVEL
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        _tune(config, inputs, storage, worker, trial_lines, heartbeat_s=heartbeat_s)


def _tune(
    config: ProjectConfig,
    inputs: TuningInputs,
    storage: str,
    worker: int,
    trial_lines: bool = True,
    **options: Any,
):
    """Worker `worker`'s share of the study's trials (see `models.tune.tune_model`)."""
    from models.tune import tune_model

    def line(t: dict[str, Any]) -> None:
        edge.say(config.name, "tune", f"w{worker} {trial_line(t)}")

    return tune_model(
        config,
        *inputs.matrices,
        storage=storage,
        study_name=inputs.study_name,
        worker=worker,
        on_trial=line if trial_lines else None,
        groups=inputs.groups,
        **options,
    )


def run_to_budget(
    config: ProjectConfig, inputs: TuningInputs, storage: str, workers: int
) -> tuple[float, list[str]]:
    """Start `workers` processes and wait for them: (wall seconds, names of failed workers).

    On a terminal a bar counts the study's finished trials instead of a line per trial."""
    started = time.perf_counter()
    watched = _watchable(storage) if progress_enabled() else None
    processes = start_workers(config, inputs, storage, workers, trial_lines=watched is None)
    if watched is not None:
        _watch(watched, inputs.study_name, config.tuning.n_trials, processes)
    for process in processes:
        process.join()
    return time.perf_counter() - started, [p.name for p in processes if p.exitcode]


def study_summary(storage: str, study_name: str) -> dict[str, Any]:
    """Trial states overall and per worker, and the best trial, read back from the storage."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    per_worker: dict[Any, Counter] = {}
    for trial in trials:
        per_worker.setdefault(trial.user_attrs.get("worker"), Counter())[trial.state.name] += 1
    best = study.best_trial
    return {
        "states": dict(Counter(t.state.name for t in trials)),
        "per_worker": {k: dict(v) for k, v in sorted(per_worker.items(), key=str)},
        "numbers": [t.number for t in trials],
        "trial_seconds": round(sum(t.duration.total_seconds() for t in trials if t.duration), 1),
        "best": {"number": best.number, "family": best.params["family"], "value": best.value},
    }


def tune_worker_step(
    config_yaml: str,
    study_storage: str,
    train: edge.ArtifactLike,
    valid: edge.ArtifactLike,
    worker: int,
) -> None:
    """One parallel worker of the pipeline's tune stage (a kfp `ParallelFor` item, worker >= 1).

    Raises:
        ValueError: The study storage is not PostgreSQL (workers would not be coordinated).
    """
    setup_logging()
    config = edge.config_from_yaml(config_yaml)
    storage = config.tuning.storage or study_storage
    if not storage.startswith("postgresql"):
        raise ValueError(
            "parallel tune workers need a PostgreSQL study storage (pipeline parameter "
            f"study_storage or tuning.storage); got {shown(storage)!r}"
        )
    inputs = tuning_inputs(config, edge.read_frame(train), edge.read_frame(valid))
    result = _tune(config, inputs, storage, worker)
    edge.say(config.name, "tune", f"w{worker} done: study best {result.value:.4f}")


def shown(url: str) -> str:
    """The URL without its password (for messages)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _watchable(url: str) -> Any:
    """The study storage, opened here before any worker starts (so that nothing races a
    worker creating the tables of a new database)."""
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def _watch(
    storage: Any,
    study_name: str,
    budget: int,
    processes: list[multiprocessing.process.BaseProcess],
) -> None:
    """A bar of the study's finished trials (all workers) until the workers have exited."""
    import optuna

    from models.tune import finished_trials

    with progress(total=budget, desc="tune", unit="trial") as bar:
        while any(process.is_alive() for process in processes):
            time.sleep(1.0)
            try:
                study = optuna.load_study(study_name=study_name, storage=storage)
            except KeyError:  # not created yet
                continue
            bar.update(min(budget, finished_trials(study)) - bar.n)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = cli_parser(
        __doc__,
        prog="python -m pipelines.tune_distributed",
        make="make tune-distributed [WORKERS=3] [STORAGE=postgresql+psycopg://...] [TRIALS=N]",
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument("--workers", type=int, default=3, help="worker processes (default 3)")
    parser.add_argument(
        "--storage",
        help="SQLAlchemy URL of the study (default: tuning.storage, else the pipeline's SQLite)",
    )
    parser.add_argument(
        "--trials", type=int, help="finished trials to reach (default: tuning.n_trials)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1 or (args.trials is not None and args.trials < 1):
        parser.error("--workers and --trials must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        storage = args.storage or config.tuning.storage or default_study_storage(Path.cwd())
        check_storage(storage)
    except (ConfigError, ValueError) as exc:
        return fail(
            exc,
            "start that database, or pass a reachable one: make tune-distributed "
            "STORAGE=postgresql+psycopg://USER@HOST:PORT/DB (without STORAGE: the local SQLite)",
        )
    workers = usable_workers(storage, args.workers)
    inputs = tuning_inputs(config, *pipeline_frames(config))
    if args.trials:  # the budget only: the study name stays the pipeline's
        tuning = config.tuning.model_copy(update={"n_trials": args.trials})
        config = config.model_copy(update={"tuning": tuning})
    say = partial(edge.say, config.name, "tune")
    say(f"{workers} worker(s) on study {inputs.study_name} in {shown(storage)}")
    wall, failed = run_to_budget(config, inputs, storage, workers)
    if failed:
        return fail(f"{failed} failed; see their output above", code=1)
    summary = study_summary(storage, inputs.study_name)
    for worker, states in summary["per_worker"].items():
        say(f"worker {worker}: {sum(states.values())} trials {states}")
    best = summary["best"]
    say(
        f"best trial {best['number']} {best['family']} "
        f"{config.evaluation.primary_metric}={best['value']:.4f}; {summary['states']} "
        f"in {wall:.1f}s"
    )
    return 0


def check_storage(url: str) -> None:
    """Fail early, naming the URL, where the study storage cannot be reached or opened.

    Raises:
        ValueError: Bad URL, missing driver or unreachable database.
    """
    import sqlalchemy

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect():
            pass
    except ImportError as exc:
        raise ValueError(
            f"study storage {shown(url)}: driver missing ({exc.name}); for PostgreSQL use "
            "postgresql+psycopg://USER@HOST:PORT/DB"
        ) from exc
    except sqlalchemy.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ValueError(f"study storage {shown(url)} is unusable: {reason}") from exc


if __name__ == "__main__":
    sys.exit(main())
