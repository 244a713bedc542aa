"""Hyperparameter search: one Optuna study (TPE, median pruning) across model families.

The study lives in RDB storage (SQLite file by default, any SQLAlchemy URL) and is named by
project, data and config hash, so a rerun of the same inputs resumes it instead of redoing
it, and several workers can share it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from configs.schema import ProjectConfig
from models.evaluate import choose_threshold, score
from models.families import build_estimator, params_of_trial, suggest_params

log = logging.getLogger(__name__)

GBDT_STAGES = 4


@dataclass(frozen=True)
class TuneResult:
    """The winning family and parameters, and what the study did to find them."""

    family: str
    params: dict[str, Any]
    value: float
    metric: str
    study_name: str
    storage: str
    trials_complete: int
    trials_pruned: int
    trials: list[dict[str, Any]] = field(default_factory=list)


def validation_score(metric: str, y_valid: np.ndarray, p_valid: np.ndarray) -> float:
    """The study's objective: the primary metric on validation (F1 at its best threshold)."""
    threshold = choose_threshold(y_valid, p_valid) if metric == "f1" else 0.5
    return score(metric, y_valid, p_valid, threshold)


def tune_model(
    config: ProjectConfig,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    *,
    storage: str,
    study_name: str,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> TuneResult:
    """Run (or resume) the study until it holds `config.tuning.n_trials` finished trials.

    Args:
        config: The project config (search space, budget, metric, seeds).
        X_train, y_train: Preprocessed training matrix and labels.
        X_valid, y_valid: Preprocessed validation matrix and labels (the objective).
        storage: SQLAlchemy URL of the study storage.
        study_name: Name of the study in the storage.
        on_trial: Called with a summary dict after each trial (progress output).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuning, metric = config.tuning, config.evaluation.primary_metric
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=tuning.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )

    def objective(trial: optuna.Trial) -> float:
        family = trial.suggest_categorical("family", list(tuning.families))
        params = suggest_params(trial, family, tuning.search_space.get(family, {}))
        estimator = build_estimator(family, params, tuning.seed)

        def report(step: int) -> None:
            value = validation_score(metric, y_valid, estimator.predict_proba(X_valid)[:, 1])
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        if family == "gbdt":
            full = estimator.max_iter
            for stage in range(1, GBDT_STAGES + 1):
                estimator.set_params(max_iter=math.ceil(full * stage / GBDT_STAGES))
                estimator.fit(X_train, y_train)
                report(stage)
        else:
            estimator.fit(X_train, y_train, epoch_callback=lambda epoch, _: report(epoch))
        return validation_score(metric, y_valid, estimator.predict_proba(X_valid)[:, 1])

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(_trial_row(trial) | {"best": _best_value(study)})

    remaining = tuning.n_trials - _finished(study)
    if remaining > 0:
        study.optimize(
            objective, n_trials=remaining, timeout=tuning.timeout_s, callbacks=[progress]
        )
    best = study.best_trial
    family = best.params["family"]
    trials = [_trial_row(t) for t in study.trials]
    return TuneResult(
        family=family,
        params=params_of_trial(family, best.params),
        value=float(best.value),
        metric=metric,
        study_name=study_name,
        storage=storage,
        trials_complete=sum(t["state"] == "COMPLETE" for t in trials),
        trials_pruned=sum(t["state"] == "PRUNED" for t in trials),
        trials=trials,
    )


def _finished(study: Any) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _best_value(study: Any) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no completed trial yet
        return None


def _trial_row(trial: Any) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value,
        "family": trial.params.get("family"),
        "params": trial.params,
        "seconds": trial.duration.total_seconds() if trial.duration else None,
    }
