"""Model families, each declared once: the tuned challengers and the untuned baseline.

A `ModelFamily` holds everything the platform needs of a family: how to build its estimator,
how a trial fits it (the pruning hook), which SHAP explainer suits it, what its ONNX export
needs and which types skops must trust to load it. The tuner, explainer, exporter and registry
read `FAMILIES`; none branches on a family's name. A family's parameter names and default
search space live in the config layer (`configs.schema.DEFAULT_SEARCH_SPACES`), which must not
import this one; a test keeps the two in step.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from configs.schema import ParamRange

if TYPE_CHECKING:  # annotations only: importing sklearn costs every caller seconds
    from sklearn.base import ClassifierMixin

BASELINE = "baseline"
TREE_STAGES = 4  # a tree trial is scored (and may be pruned) after each quarter of its trees

Report = Callable[[int], None]  # report(step): score the estimator now; may prune the trial
FitTrial = Callable[[Any, np.ndarray, np.ndarray, Report], None]


def _fit_once(estimator: Any, X: np.ndarray, y: np.ndarray, report: Report) -> None:
    """No intermediate scores: the trial is judged only on its final value."""
    estimator.fit(X, y)


@dataclass(frozen=True)
class ModelFamily:
    """One model family.

    Attributes:
        name: The family's name in configs, studies and model metadata.
        estimator: Qualified public name of the class `build` returns ("module.Class").
        build: (params, seed) -> a fresh, unfitted estimator; params use search-space names.
        explainer: SHAP explainer kind: exact "tree" or "linear", or model-agnostic
            "permutation".
        shap_space: What the explainer's base value plus attributions add up to: the
            positive class's "log_odds" (boosting's margin, a linear model's logit) or its
            "probability" (a forest's vote, the permutation explainer's output).
        scaled_inputs: Whether the family's numeric inputs are standardised after imputing
            (`features.transform.build_preprocessor(scaled=...)`). Linear models and the MLP
            need it; trees do not (splits are invariant to monotone scaling) and take imputed
            raw numbers, so sklearn and the float32 ONNX graph compare the same float32
            values with the same thresholds.
        fit_trial: Fits the estimator in a trial, calling `report(step)` as it improves so the
            study can prune it (incremental fitting).
        onnx_converter: Registers a skl2onnx converter for the estimator class (for classes
            skl2onnx does not know).
        onnx_ready: A converter-ready copy of a fitted estimator, for a family whose fitted
            state the converter would change (the original is not modified); None: the
            estimator converts as it is.
        trusted_types: Types beyond numpy's that skops must trust to load a fitted model.
    """

    name: str
    estimator: str
    build: Callable[[dict[str, Any], int], ClassifierMixin]
    explainer: Literal["tree", "linear", "permutation"]
    shap_space: Literal["log_odds", "probability"]
    scaled_inputs: bool
    fit_trial: FitTrial = _fit_once
    onnx_converter: Callable[[type], None] | None = None
    onnx_ready: Callable[[Any], Any] | None = None
    trusted_types: tuple[str, ...] = ()


# --- gbdt: histogram gradient boosting, trees added in stages with warm start ---


def _build_gbdt(params: dict[str, Any], seed: int) -> ClassifierMixin:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        early_stopping=False, warm_start=True, random_state=seed, **params
    )


def _float32_thresholds(estimator: Any) -> Any:
    """A copy of a fitted histogram gradient-boosting model whose split thresholds are each
    the largest float32 at or below it: on float32 values it sends every row where the
    original does, and the ONNX graph holds its thresholds exactly. (A threshold is the
    midpoint of two float32 values; skl2onnx rounds it to the nearest float32, the upper one
    half the time, and a row at that value went the other way: probabilities 0.15 apart on
    cents near 1e9.) Other families' trees split on float32 already."""
    import copy

    snapped = copy.deepcopy(estimator)
    for predictors in snapped._predictors:
        for predictor in predictors:
            exact = predictor.nodes["num_threshold"]
            below = exact.astype(np.float32)
            up = below.astype(np.float64) > exact
            below[up] = np.nextafter(below[up], np.float32(-np.inf))
            predictor.nodes["num_threshold"] = below
    return snapped


def _fit_in_stages(size: str) -> FitTrial:
    """A trial fit that grows a warm-started ensemble's `size` parameter (its tree count) in
    `TREE_STAGES` steps, scoring after each."""

    def fit(estimator: Any, X: np.ndarray, y: np.ndarray, report: Report) -> None:
        full = estimator.get_params()[size]
        estimator.set_params(warm_start=True)
        for stage in range(1, TREE_STAGES + 1):
            estimator.set_params(**{size: math.ceil(full * stage / TREE_STAGES)})
            with warnings.catch_warnings():  # every stage fits the same rows: weights hold
                warnings.filterwarnings("ignore", "class_weight presets", UserWarning)
                estimator.fit(X, y)
            report(stage)

    return fit


# --- extra_trees and random_forest: averaged trees, added in stages with warm start ---

NO_CLASS_WEIGHT = "none"  # YAML-friendly spelling of class_weight=None


def _forest_params(params: dict[str, Any]) -> dict[str, Any]:
    params = dict(params)
    if params.get("class_weight") == NO_CLASS_WEIGHT:
        params["class_weight"] = None
    return params


def _build_extra_trees(params: dict[str, Any], seed: int) -> ClassifierMixin:
    """Randomised trees, averaged: strong on small tables where boosting overfits.

    `max_leaf_nodes` bounds each tree, so the ONNX graph and tree SHAP stay small on large
    tables; single-threaded like every family, so runs are reproducible and share the CPU.
    """
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(random_state=seed, n_jobs=1, **_forest_params(params))


def _build_random_forest(params: dict[str, Any], seed: int) -> ClassifierMixin:
    """Bootstrapped trees with best splits over a feature subsample, averaged: the usual
    strong default on small and mid-sized tables (bounded and single-threaded like
    extra_trees)."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        bootstrap=True, random_state=seed, n_jobs=1, **_forest_params(params)
    )


# --- mlp: the torch MLP, scored after every epoch ---


def parse_hidden_units(spec: str | int) -> tuple[int, ...]:
    """'128-64' -> (128, 64): layer widths are searched as categorical strings."""
    return tuple(int(width) for width in str(spec).split("-"))


def _build_mlp(params: dict[str, Any], seed: int) -> ClassifierMixin:
    from models.torch_mlp import TorchMLPClassifier

    params = dict(params)
    if "hidden_units" in params:
        params["hidden_units"] = parse_hidden_units(params["hidden_units"])
    return TorchMLPClassifier(class_weight="balanced", random_state=seed, **params)


def _fit_mlp_by_epoch(estimator: Any, X: np.ndarray, y: np.ndarray, report: Report) -> None:
    estimator.fit(X, y, epoch_callback=lambda epoch, _: report(epoch))


def _register_mlp_converter(estimator_type: type) -> None:
    from models.torch_mlp_onnx import register_converter

    register_converter(estimator_type)


# --- logreg (tuned) and baseline (fixed): logistic regression ---

L1_RATIO = {"l1": 1.0, "l2": 0.0}  # the searched penalty as sklearn >= 1.8 spells it


def _build_logreg(params: dict[str, Any], seed: int) -> ClassifierMixin:
    """liblinear: fast for L1 and L2 on tabular sizes (saga, for elastic net, is ~20x slower)."""
    from sklearn.linear_model import LogisticRegression

    params = dict(params)
    params["l1_ratio"] = L1_RATIO[params.pop("penalty", "l2")]
    if params.get("class_weight") == NO_CLASS_WEIGHT:
        params["class_weight"] = None
    return LogisticRegression(solver="liblinear", max_iter=1000, random_state=seed, **params)


def _build_baseline(params: dict[str, Any], seed: int) -> ClassifierMixin:
    """The untuned reference: L2 logistic regression, C=1 (params and seed unused)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, C=1.0)


FAMILIES: dict[str, ModelFamily] = {
    family.name: family
    for family in (
        ModelFamily(
            name="gbdt",
            estimator="sklearn.ensemble.HistGradientBoostingClassifier",
            build=_build_gbdt,
            explainer="tree",
            shap_space="log_odds",
            scaled_inputs=False,
            fit_trial=_fit_in_stages("max_iter"),
            onnx_ready=_float32_thresholds,
            trusted_types=("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",),
        ),
        ModelFamily(
            name="mlp",
            estimator="models.torch_mlp.TorchMLPClassifier",
            build=_build_mlp,
            explainer="permutation",
            shap_space="probability",
            scaled_inputs=True,
            fit_trial=_fit_mlp_by_epoch,
            onnx_converter=_register_mlp_converter,
            trusted_types=("models.torch_mlp.TorchMLPClassifier",),
        ),
        ModelFamily(
            name="extra_trees",
            estimator="sklearn.ensemble.ExtraTreesClassifier",
            build=_build_extra_trees,
            explainer="tree",
            shap_space="probability",
            scaled_inputs=False,
            fit_trial=_fit_in_stages("n_estimators"),
            trusted_types=("sklearn.tree._tree.Tree",),
        ),
        ModelFamily(
            name="random_forest",
            estimator="sklearn.ensemble.RandomForestClassifier",
            build=_build_random_forest,
            explainer="tree",
            shap_space="probability",
            scaled_inputs=False,
            fit_trial=_fit_in_stages("n_estimators"),
            trusted_types=("sklearn.tree._tree.Tree",),
        ),
        ModelFamily(
            name="logreg",
            estimator="sklearn.linear_model.LogisticRegression",
            build=_build_logreg,
            explainer="linear",
            shap_space="log_odds",
            scaled_inputs=True,
        ),
        ModelFamily(
            name=BASELINE,
            estimator="sklearn.linear_model.LogisticRegression",
            build=_build_baseline,
            explainer="linear",
            shap_space="log_odds",
            scaled_inputs=True,
        ),
    )
}


def get_family(name: str) -> ModelFamily:
    """The family called `name`; ValueError naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family '{name}'; allowed: {', '.join(FAMILIES)}") from None


def family_of(estimator: object) -> ModelFamily | None:
    """The first family whose estimator class `estimator` is an instance of, else None.

    Imports nothing: a class whose module was never imported has no instances.
    """
    for family in FAMILIES.values():
        module, _, name = family.estimator.rpartition(".")
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(estimator, cls):
            return family
    return None


def build_estimator(family: str, params: dict[str, Any], seed: int) -> ClassifierMixin:
    """A fresh, unfitted estimator of `family` with `params` (search-space names).

    Args:
        family: A name in `FAMILIES` (a tuned family or "baseline").
        params: Hyperparameters as suggested by the study (may be empty for defaults).
        seed: Random seed for the estimator.
    """
    return get_family(family).build(params, seed)


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
