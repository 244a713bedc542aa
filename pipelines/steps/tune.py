"""The tune stage: run or resume the Optuna study on the training split, scored on validation.

`tuning_inputs` and `trial_line` are shared with the extra workers of `pipelines.tune_distributed`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from configs import ProjectConfig
from configs.cli import Milestones
from pipelines.steps.edge import ArtifactLike, read_frame, say, stage, write_json


def default_study_storage(root: Path) -> str:
    """SQLite study storage beside the MLflow store."""
    return f"sqlite:///{(root / 'mlruns' / 'optuna.db').resolve()}"


@dataclass(frozen=True)
class TuningInputs:
    """What the tune stage and every distributed worker need: matrices and the study name.

    `X_train` and `X_valid` hold one matrix per input scaling the tuned families need, keyed
    by `ModelFamily.scaled_inputs` (`models.tune.Matrix`); `groups` the train + valid rows'
    group keys, stacked, when the project has `split.group_column`.
    """

    X_train: dict[bool, Any]
    y_train: Any
    X_valid: dict[bool, Any]
    y_valid: Any
    study_name: str
    groups: Any = None

    @property
    def matrices(self) -> tuple[Any, Any, Any, Any]:
        """(X_train, y_train, X_valid, y_valid), as `models.tune.tune_model` takes them."""
        return self.X_train, self.y_train, self.X_valid, self.y_valid


def tuning_inputs(config: ProjectConfig, train: pd.DataFrame, valid: pd.DataFrame) -> TuningInputs:
    """Subsample to `tuning.tune_rows`, fit the preprocessing (scaled and/or not, as the tuned
    families need), name the study by data and config (`<project>-<data hash>-<config hash>`:
    the same inputs resume the same study)."""
    from features.sources import hash_frame
    from features.split import features_and_target, group_keys
    from features.transform import build_preprocessor
    from models.families import get_family
    from models.tune import config_hash

    if config.tuning.tune_rows and len(train) > config.tuning.tune_rows:
        train = train.sample(config.tuning.tune_rows, random_state=config.tuning.seed)
    X, y = features_and_target(train, config)
    X_valid, y_valid = features_and_target(valid, config)
    columns = (config.numeric_features, config.categorical_features)
    X_train: dict[bool, Any] = {}
    X_held: dict[bool, Any] = {}
    for scaled in {get_family(family).scaled_inputs for family in config.tuning.families}:
        preprocess = build_preprocessor(*columns, scaled=scaled).fit(X)
        X_train[scaled], X_held[scaled] = preprocess.transform(X), preprocess.transform(X_valid)
    fingerprint = hash_frame(train)[:10] + "-" + config_hash(config)[:8]
    groups = group_keys(pd.concat([train, valid]), config)
    return TuningInputs(
        X_train, y.to_numpy(), X_held, y_valid.to_numpy(), f"{config.name}-{fingerprint}", groups
    )


def tune_step(
    config_yaml: str,
    run_id: str,
    study_storage: str,
    train: ArtifactLike,
    valid: ArtifactLike,
    best: ArtifactLike,
) -> None:
    """Run or resume the Optuna study; write the winning family and parameters."""
    import mlflow

    from models.tune import tune_model

    with stage("tune", config_yaml, run_id) as config:
        inputs = tuning_inputs(config, read_frame(train), read_frame(valid))
        storage = config.tuning.storage or study_storage or default_study_storage(Path.cwd())
        if storage.startswith("sqlite:///"):
            Path(storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        result = tune_model(
            config,
            *inputs.matrices,
            storage=storage,
            study_name=inputs.study_name,
            on_trial=_TuneProgress(config),
            groups=inputs.groups,
        )
        payload = {k: v for k, v in result.__dict__.items() if k != "trials"}
        write_json(payload, Path(best.path))
        best.metadata.update({"family": result.family, "value": result.value})
        mlflow.log_text(pd.DataFrame(result.trials).to_csv(index=False), "reports/study_trials.csv")
        mlflow.log_params(
            {"study_name": result.study_name, "best_family": result.family}
            | {f"best.{k}": v for k, v in result.params.items()}
        )
        mlflow.log_metrics(
            {
                "study.best_value": result.value,
                "study.trials_complete": result.trials_complete,
                "study.trials_pruned": result.trials_pruned,
            }
        )
        say(
            config.name,
            "tune",
            f"best {result.family} {result.metric}={result.value:.4f} ({result.objective}; "
            f"{result.trials_complete} complete, {result.trials_pruned} pruned)",
        )


class _TuneProgress:
    """Each trial as a line of the component's log; about every tenth of the budget a stage
    line (`12/30 trials, best pr_auc 0.3124 (41s)`) that `make pipeline` shows."""

    def __init__(self, config: ProjectConfig) -> None:
        self.config, self.started = config, time.perf_counter()
        self.milestones = Milestones(config.tuning.n_trials)

    def __call__(self, trial: dict[str, Any]) -> None:
        print(f"  {trial_line(trial)}", flush=True)
        if self.milestones.due(trial["finished"]):
            say(
                self.config.name,
                "tune",
                f"{trial['finished']}/{self.config.tuning.n_trials} trials, best "
                f"{self.config.evaluation.primary_metric} {_num(trial['best'])} "
                f"({time.perf_counter() - self.started:.0f}s)",
            )


def trial_line(t: dict[str, Any]) -> str:
    """One finished trial: number, family, state, value, the study's best, seconds."""
    return (
        f"trial {t['number']:>2} {t['family']:<4} {t['state']:<8} value={_num(t['value'])} "
        f"best={_num(t['best'])} ({_num(t['seconds'], 1)}s)"
    )


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
