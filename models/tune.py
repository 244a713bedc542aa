"""Hyperparameter search: one Optuna study (TPE, median pruning) across model families.

The study lives in RDB storage (SQLite file by default, any SQLAlchemy URL) and is named by
project, data and config hash, so a rerun of the same inputs resumes it instead of redoing
it, and several workers can share it.

Sharing (a PostgreSQL storage): each worker claims its next trial under an advisory lock,
so the workers together run exactly `n_trials` finished trials. Running trials send
heartbeats; a worker that dies mid-trial stops beating, and after the grace period the next
worker to claim fails that trial and re-queues its parameters (`RetryHeartbeatStaleTrialCallback`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from configs.schema import Family, ProjectConfig
from models.evaluate import choose_threshold, score
from models.families import get_family, params_of_trial, suggest_params

log = logging.getLogger(__name__)

HEARTBEAT_S = 10  # a running trial's heartbeat period; stale after GRACE_BEATS missed beats
GRACE_BEATS = 3
MAX_RETRY = 2  # a trial whose worker died is re-run at most this often (then a fresh trial)
POLL_S = 1.0  # how often a worker with nothing left to claim checks the study

# A preprocessed matrix: one for every family, or one per input scaling keyed by
# `ModelFamily.scaled_inputs` (standardised numbers for linear models and the MLP, raw ones
# for trees), as `pipelines.steps.tune.tuning_inputs` builds them.
Matrix = np.ndarray | Mapping[bool, np.ndarray]


@dataclass(frozen=True)
class TuneResult:
    """The winning family and parameters, and what the study did to find them."""

    family: str
    params: dict[str, Any]
    value: float
    metric: str
    objective: str  # what `value` scores: "valid" or "k-fold CV on train + valid"
    study_name: str
    storage: str
    trials_complete: int
    trials_pruned: int
    trials: list[dict[str, Any]] = field(default_factory=list)


def validation_score(metric: str, y_valid: np.ndarray, p_valid: np.ndarray) -> float:
    """The study's objective: the primary metric on validation (F1 at its best threshold)."""
    threshold = choose_threshold(y_valid, p_valid) if metric == "f1" else 0.5
    return score(metric, y_valid, p_valid, threshold)


def cv_folds(
    k: int, y_train: np.ndarray, y_valid: np.ndarray, seed: int, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, shuffled `k`-fold (fit rows, held-out rows) indices over train + valid rows
    stacked in that order: the objective of `tuning.cv_folds`. With `groups` (one key per
    stacked row, `split.group_column`'s) a group's rows stay in one fold."""
    from features.split import stratified_folds

    y = np.concatenate([y_train, y_valid])
    splitter = stratified_folds(k, seed, grouped=groups is not None)
    return list(splitter.split(np.zeros((len(y), 1)), y, groups))


def objective_name(config: ProjectConfig) -> str:
    """What the study's values score: "valid" or "5-fold CV on train + valid"."""
    k = config.tuning.cv_folds
    return f"{k}-fold CV on train + valid" if k else "valid"


def config_hash(config: ProjectConfig) -> str:
    """SHA-256 of the config and the search spaces it tunes, for the study name (defaults
    included: a changed default range starts a new study instead of resuming one over another
    space; so does a change of the inputs a family sees, scaled or not)."""
    spaces = {
        family: {name: spec.model_dump() for name, spec in config.tuning.space(family).items()}
        | {"inputs": "scaled" if get_family(family).scaled_inputs else "unscaled"}
        for family in config.tuning.families
    }
    text = config.model_dump_json() + json.dumps(spaces, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def matrix_for(X: Matrix, scaled: bool) -> np.ndarray:
    """The matrix a family with `scaled_inputs=scaled` takes from `X`."""
    return X[scaled] if isinstance(X, Mapping) else X


def tune_model(
    config: ProjectConfig,
    X_train: Matrix,
    y_train: np.ndarray,
    X_valid: Matrix,
    y_valid: np.ndarray,
    *,
    storage: str,
    study_name: str,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    worker: int = 0,
    heartbeat_s: int = HEARTBEAT_S,
    groups: np.ndarray | None = None,
) -> TuneResult:
    """Run (or resume) the study until it holds `config.tuning.n_trials` finished trials.

    Any number of workers may call this at once on one PostgreSQL study; each returns when
    the study holds the budget, including trials the others ran.

    Args:
        config: The project config (search space, budget, metric, seeds).
        X_train, y_train: Preprocessed training matrix and labels; the matrix may be one per
            input scaling (`Matrix`), each family then takes its own.
        X_valid, y_valid: Preprocessed validation matrix (as `X_train`) and labels (the
            objective).
        storage: SQLAlchemy URL of the study storage.
        study_name: Name of the study in the storage.
        on_trial: Called after each trial with its summary dict, plus the study's `best` value
            and how many trials it has `finished` (COMPLETE or PRUNED, all workers).
        worker: This worker's index: offsets the sampler seed (workers must not draw the same
            parameters) and is recorded on its trials (user attribute `worker`).
        heartbeat_s: Heartbeat period of running trials in a server database.
        groups: Group keys of the train + valid rows, stacked (`split.group_column`): CV folds
            keep a group together. Used with `tuning.cv_folds` only.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuning, metric = config.tuning, config.evaluation.primary_metric
    rdb = open_storage(storage, heartbeat_s)

    folds = (
        cv_folds(tuning.cv_folds, y_train, y_valid, tuning.seed, groups)
        if tuning.cv_folds
        else None
    )
    y_all = np.concatenate([y_train, y_valid]) if folds else y_train
    stacked: dict[bool, np.ndarray] = {}

    def fold_matrix(scaled: bool) -> np.ndarray:  # train + valid rows, stacked once per matrix
        scaled = scaled if isinstance(X_train, Mapping) else True
        if scaled not in stacked:
            stacked[scaled] = np.vstack([matrix_for(X_train, scaled), matrix_for(X_valid, scaled)])
        return stacked[scaled]

    def objective(trial: optuna.Trial) -> float:
        # one of tuning.families (typed `str` by optuna)
        name = cast(Family, trial.suggest_categorical("family", list(tuning.families)))
        family = get_family(name)
        params = suggest_params(trial, name, tuning.space(name))
        if folds:  # the running mean over the folds so far, reported after each fold
            X_all = fold_matrix(family.scaled_inputs)
            values: list[float] = []
            for step, (fit, held) in enumerate(folds, start=1):
                estimator = family.build(params, tuning.seed).fit(X_all[fit], y_all[fit])
                p_held = estimator.predict_proba(X_all[held])[:, 1]
                values.append(validation_score(metric, y_all[held], p_held))
                trial.report(float(np.mean(values)), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return float(np.mean(values))
        estimator = family.build(params, tuning.seed)
        X_fit = matrix_for(X_train, family.scaled_inputs)
        X_held = matrix_for(X_valid, family.scaled_inputs)

        def report(step: int) -> None:
            value = validation_score(metric, y_valid, estimator.predict_proba(X_held)[:, 1])
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        family.fit_trial(estimator, X_fit, y_train, report)
        return validation_score(metric, y_valid, estimator.predict_proba(X_held)[:, 1])

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            on_trial(
                _trial_row(trial) | {"best": _best_value(study), "finished": finished_trials(study)}
            )

    with closing(_StudyLock(storage, study_name)) as lock:
        with lock:  # serialised: first workers on a new database would race creating it
            study = optuna.create_study(
                study_name=study_name,
                storage=rdb,
                direction="maximize",
                load_if_exists=True,
                sampler=optuna.samplers.TPESampler(seed=tuning.seed + worker),
                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
            )

        def claimed(trial: optuna.Trial) -> float:
            lock.release()  # the trial is ours and beating: the other workers may claim theirs
            trial.set_user_attr("worker", worker)
            return objective(trial)

        deadline = time.monotonic() + (tuning.timeout_s or math.inf)
        while time.monotonic() < deadline:
            with lock:
                if _claim_next(study, rdb, tuning.n_trials):
                    study.optimize(claimed, n_trials=1, callbacks=[progress])
                    continue
                if finished_trials(study) >= tuning.n_trials:
                    break
            time.sleep(POLL_S)  # the rest of the budget runs elsewhere (or goes stale there)
    best = study.best_trial
    family = best.params["family"]
    trials = [_trial_row(t) for t in study.trials]
    return TuneResult(
        family=family,
        params=params_of_trial(family, best.params),
        value=float(study.best_value),
        metric=metric,
        objective=objective_name(config),
        study_name=study_name,
        storage=storage,
        trials_complete=sum(t["state"] == "COMPLETE" for t in trials),
        trials_pruned=sum(t["state"] == "PRUNED" for t in trials),
        trials=trials,
    )


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> Any:
    """The study storage for `url`: SQLite as is (one writer), a server database with heartbeats.

    A trial whose heartbeat stops for `GRACE_BEATS` periods is failed and re-queued with its
    parameters (at most `MAX_RETRY` times) by the next worker that claims a trial.
    """
    if url.startswith("sqlite"):
        return url
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=heartbeat_s,
            grace_period=GRACE_BEATS * heartbeat_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY
            ),
        )


def _claim_next(study: Any, rdb: Any, budget: int) -> bool:
    """Queue this worker's next trial if the budget allows (call under the study lock).

    The budget counts finished, queued and running trials (running ones in a heartbeat
    storage only: elsewhere they are leftovers of a dead run). The queued trial gets its
    first heartbeat before `optimize` pops it, so a worker killed at any point leaves a
    queued trial or a beating one, never a running trial that cannot go stale.
    """
    import optuna
    from optuna.trial import TrialState

    beating = not isinstance(rdb, str)
    if beating:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # re-queues a dead worker's trial
    states = Counter(t.state for t in study.get_trials(deepcopy=False))
    finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
    if finished >= budget:
        return False
    if not states[TrialState.WAITING]:
        if finished + beating * states[TrialState.RUNNING] >= budget:
            return False
        study.enqueue_trial({})
    if beating:
        queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        rdb.record_heartbeat(queued[0]._trial_id)  # `optimize` pops the first queued trial
    return True


class _StudyLock:
    """A PostgreSQL advisory lock keyed by the study name (a no-op for other storages).

    Held on its own connection, so the server releases it if the worker dies holding it;
    `release` may be called early (the objective does) and again on exit.
    """

    def __init__(self, url: str, study_name: str) -> None:
        self._connection, self._held = None, False
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], signed=True)
        if url.startswith("postgresql"):
            import sqlalchemy

            engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _call(self, function: str) -> None:
        import sqlalchemy

        if self._connection is not None:
            self._connection.execute(sqlalchemy.text(f"SELECT {function}(:k)"), {"k": self._key})

    def __enter__(self) -> _StudyLock:
        self._call("pg_advisory_lock")
        self._held = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self._held:
            self._held = False
            self._call("pg_advisory_unlock")

    def close(self) -> None:
        self.release()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def finished_trials(study: Any) -> int:
    """Trials of the study (all workers) that count against the budget: COMPLETE or PRUNED."""
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
        "worker": trial.user_attrs.get("worker"),
        "params": trial.params,
        "seconds": trial.duration.total_seconds() if trial.duration else None,
    }
