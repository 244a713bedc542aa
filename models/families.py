"""Model families: the tuned challengers (gradient boosting, torch MLP) and the baseline."""

from __future__ import annotations

from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from configs.schema import ParamRange

BASELINE = "baseline"


def build_estimator(family: str, params: dict[str, Any], seed: int) -> ClassifierMixin:
    """A fresh, unfitted estimator of `family` with `params` (search-space names).

    Args:
        family: "gbdt", "mlp" or "baseline" (logistic regression, trained every run).
        params: Hyperparameters as suggested by the study (may be empty for defaults).
        seed: Random seed for the estimator.
    """
    if family == "gbdt":
        return HistGradientBoostingClassifier(
            early_stopping=False, warm_start=True, random_state=seed, **params
        )
    if family == "mlp":
        from models.torch_mlp import TorchMLPClassifier

        params = dict(params)
        if "hidden_units" in params:
            params["hidden_units"] = parse_hidden_units(params["hidden_units"])
        return TorchMLPClassifier(class_weight="balanced", random_state=seed, **params)
    if family == BASELINE:
        return LogisticRegression(max_iter=2000, C=1.0)
    raise ValueError(f"unknown model family '{family}'; allowed: gbdt, mlp, {BASELINE}")


def parse_hidden_units(spec: str | int) -> tuple[int, ...]:
    """'128-64' -> (128, 64): layer widths are searched as categorical strings."""
    return tuple(int(width) for width in str(spec).split("-"))


def suggest_params(trial: Any, family: str, space: dict[str, ParamRange]) -> dict[str, Any]:
    """Sample one point of a family's search space with an Optuna trial.

    Parameter names are prefixed with the family in the study so the spaces never collide.
    """
    params: dict[str, Any] = {}
    for name, spec in space.items():
        key = f"{family}.{name}"
        if spec.type == "categorical":
            params[name] = trial.suggest_categorical(key, list(spec.choices or ()))
        elif spec.low is None or spec.high is None:  # ParamRange's validator rules this out
            raise ValueError(f"{key}: a numeric range needs 'low' and 'high'")
        elif spec.type == "int":
            params[name] = trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
        else:
            params[name] = trial.suggest_float(key, spec.low, spec.high, log=spec.log)
    return params


def params_of_trial(family: str, trial_params: dict[str, Any]) -> dict[str, Any]:
    """Strip the family prefix from a finished trial's parameters."""
    prefix = f"{family}."
    return {k[len(prefix) :]: v for k, v in trial_params.items() if k.startswith(prefix)}
