import typing
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression

from configs.schema import DEFAULT_SEARCH_SPACES, Family, ParamRange
from features.split import features_and_target
from features.transform import build_preprocessor
from models.families import (
    BASELINE,
    FAMILIES,
    build_estimator,
    family_of,
    params_of_trial,
    parse_hidden_units,
    suggest_params,
)
from models.registry import TRUSTED_TYPES, load_model, save_model
from models.torch_mlp import TorchMLPClassifier
from models.tune import tune_model


def test_families_build_the_right_estimators():
    assert isinstance(build_estimator("gbdt", {"max_iter": 10}, 0), HistGradientBoostingClassifier)
    assert isinstance(build_estimator("baseline", {}, 0), LogisticRegression)
    mlp = build_estimator("mlp", {"hidden_units": "32-16"}, 5)
    assert isinstance(mlp, TorchMLPClassifier)
    assert mlp.hidden_units == (32, 16) and mlp.random_state == 5
    trees = build_estimator("extra_trees", {"class_weight": "none", "max_leaf_nodes": 64}, 4)
    assert isinstance(trees, ExtraTreesClassifier)
    assert (trees.class_weight, trees.max_leaf_nodes, trees.random_state) == (None, 64, 4)
    forest = build_estimator(
        "random_forest", {"class_weight": "balanced_subsample", "max_features": 0.3}, 4
    )
    assert isinstance(forest, RandomForestClassifier) and forest.bootstrap
    assert (forest.class_weight, forest.max_features, forest.n_jobs) == (
        "balanced_subsample",
        0.3,
        1,
    )
    allowed = "allowed: gbdt, mlp, extra_trees, random_forest, logreg"
    with pytest.raises(ValueError, match=f"unknown model family 'xgb'; {allowed}"):
        build_estimator("xgb", {}, 0)


def test_logreg_maps_the_searched_penalty_and_class_weight():
    l1 = build_estimator("logreg", {"C": 0.5, "penalty": "l1", "class_weight": "none"}, 3)
    l2 = build_estimator("logreg", {"penalty": "l2", "class_weight": "balanced"}, 3)
    assert isinstance(l1, LogisticRegression) and l1.random_state == 3
    assert (l1.C, l1.l1_ratio, l1.class_weight) == (0.5, 1.0, None)
    assert (l2.l1_ratio, l2.class_weight) == (0.0, "balanced")
    baseline = build_estimator(BASELINE, {}, 3)
    assert (baseline.C, baseline.l1_ratio, baseline.class_weight) == (1.0, 0.0, None)


def test_the_tuned_families_are_the_schema_families():
    tuned = set(typing.get_args(Family))
    assert set(DEFAULT_SEARCH_SPACES) == tuned
    assert set(FAMILIES) == tuned | {BASELINE}


def test_only_linear_models_and_the_mlp_take_standardised_numbers():
    scaled = {name for name, family in FAMILIES.items() if family.scaled_inputs}
    assert scaled == {"logreg", BASELINE, "mlp"}
    trees = {name for name, family in FAMILIES.items() if family.explainer == "tree"}
    assert trees == {"gbdt", "extra_trees", "random_forest"}
    assert not any(FAMILIES[name].scaled_inputs for name in trees)


@pytest.mark.parametrize("family", sorted(DEFAULT_SEARCH_SPACES))
def test_every_point_of_a_default_space_fits_without_warnings(family, matrices):
    """The lowest and highest corner of each default space build and fit cleanly."""
    X, y, Xv, _ = matrices
    space = DEFAULT_SEARCH_SPACES[family]
    for end in (0, -1):
        params: dict[str, object] = {}
        for name, spec in space.items():
            if spec.type == "categorical":
                params[name] = (spec.choices or ())[end]
            else:
                bound = float((spec.low, spec.high)[end] or 0.0)
                params[name] = int(bound) if spec.type == "int" else bound
        cheapest = {
            "gbdt": {"max_iter": 10},
            "mlp": {"max_epochs": 1},
            "extra_trees": {"n_estimators": 10},
            "random_forest": {"n_estimators": 10},
        }
        params |= cheapest.get(family, {})  # the cheapest size of the slow parts, for speed
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = build_estimator(family, params, seed=0).fit(X[:3000], y[:3000])
        assert model.predict_proba(Xv[:10]).shape == (10, 2)


def test_fitted_models_are_found_by_their_family_and_round_trip_through_skops(matrices, tmp_path):
    X, y, Xv, _ = matrices
    for name in ("gbdt", "mlp", "logreg", "extra_trees", "random_forest"):
        params = {"gbdt": {"max_iter": 10}, "mlp": {"max_epochs": 1}, "logreg": {},
                  "extra_trees": {"n_estimators": 10},
                  "random_forest": {"n_estimators": 10}}[name]  # fmt: skip
        model = build_estimator(name, params, seed=0).fit(X[:2000], y[:2000])
        assert family_of(model) is not None
        assert set(FAMILIES[name].trusted_types) <= set(TRUSTED_TYPES)
        save_model(model, tmp_path / f"{name}.skops")
        loaded = load_model(tmp_path / f"{name}.skops")
        np.testing.assert_array_equal(loaded.predict_proba(Xv), model.predict_proba(Xv))
    assert family_of(HistGradientBoostingClassifier()) is FAMILIES["gbdt"]
    assert family_of(RandomForestClassifier()) is FAMILIES["random_forest"]
    assert family_of(ExtraTreesClassifier()) is FAMILIES["extra_trees"]
    assert family_of(object()) is None


def test_hidden_units_and_prefixed_params():
    assert parse_hidden_units("128-64") == (128, 64)
    assert parse_hidden_units(64) == (64,)
    assert params_of_trial("gbdt", {"family": "gbdt", "gbdt.max_iter": 5, "mlp.dropout": 0.1}) == {
        "max_iter": 5
    }


def test_suggest_params_respects_the_space():
    space = {
        "learning_rate": ParamRange(type="float", low=0.01, high=0.1, log=True),
        "max_iter": ParamRange(type="int", low=5, high=7),
        "hidden_units": ParamRange(type="categorical", choices=("8", "16-8")),
    }
    trial = optuna.create_study().ask()
    params = suggest_params(trial, "mlp", space)
    assert 0.01 <= params["learning_rate"] <= 0.1
    assert params["max_iter"] in {5, 6, 7}
    assert params["hidden_units"] in {"8", "16-8"}
    assert set(trial.params) == {"mlp.learning_rate", "mlp.max_iter", "mlp.hidden_units"}


@pytest.fixture(scope="module")
def matrices(fraud_config, fraud_splits):
    train, valid, _ = fraud_splits
    X, y = features_and_target(train, fraud_config)
    Xv, yv = features_and_target(valid, fraud_config)
    pre = build_preprocessor(fraud_config.numeric_features, fraud_config.categorical_features).fit(
        X
    )
    return pre.transform(X), y.to_numpy(), pre.transform(Xv), yv.to_numpy()


def small_tuning(config, n_trials, families=("gbdt", "mlp")):
    space = {
        "gbdt": {"max_iter": ParamRange(type="int", low=20, high=40)},
        "mlp": {"max_epochs": ParamRange(type="int", low=2, high=3)},
    }
    update = {"n_trials": n_trials, "search_space": space, "families": families}
    tuning = config.tuning.model_copy(update=update)
    return config.model_copy(update={"tuning": tuning})


def test_a_family_without_a_configured_space_searches_its_defaults(
    fraud_config, matrices, tmp_path
):
    config = small_tuning(fraud_config, 4, families=("logreg",))
    result = tune_model(config, *matrices, storage=f"sqlite:///{tmp_path}/s.db", study_name="s")
    assert result.family == "logreg" and result.trials_complete == 4
    default = DEFAULT_SEARCH_SPACES["logreg"]
    for trial in result.trials:
        params = params_of_trial("logreg", trial["params"])
        assert set(params) == set(default)  # not an empty space: every default parameter varies
        assert default["C"].low <= params["C"] <= default["C"].high
    assert len({t["params"]["logreg.C"] for t in result.trials}) == 4
    assert result.value > 0.1  # the linear family learns the fraud signal


def test_study_is_seeded_resumable_and_spans_families(fraud_config, matrices, tmp_path):
    config = small_tuning(fraud_config, 5)
    runs = []
    for name in ("a", "b"):
        storage = f"sqlite:///{tmp_path / name}.db"
        runs.append(tune_model(config, *matrices, storage=storage, study_name="s"))
    first, second = runs
    assert (first.family, first.params, first.value) == (second.family, second.params, second.value)
    assert first.trials_complete + first.trials_pruned == 5
    assert {t["family"] for t in first.trials} == {"gbdt", "mlp"}

    seen: list[dict] = []
    again = tune_model(
        config,
        *matrices,
        storage=f"sqlite:///{tmp_path / 'a'}.db",
        study_name="s",
        on_trial=seen.append,
    )
    assert seen == [] and len(again.trials) == 5  # resumed: nothing left to run

    more = small_tuning(fraud_config, 6)
    grown = tune_model(
        more,
        *matrices,
        storage=f"sqlite:///{tmp_path / 'a'}.db",
        study_name="s",
        on_trial=seen.append,
    )
    assert len(grown.trials) == 6 and len(seen) == 1
    assert seen[0]["best"] is not None


@pytest.mark.parametrize(
    ("family", "size"),
    [("gbdt", "max_iter"), ("extra_trees", "n_estimators"), ("random_forest", "n_estimators")],
)
def test_tree_ensembles_grow_in_stages_and_are_scored_after_each(family, size, matrices):
    """The pruning hook: a quarter of the trees per stage, all of them at the end."""
    X, y, _, _ = matrices
    estimator = build_estimator(family, {size: 8}, seed=0)
    grown: list[tuple[int, int]] = []

    def trees() -> int:
        return int(getattr(estimator, "n_iter_", 0)) or len(getattr(estimator, "estimators_", []))

    FAMILIES[family].fit_trial(estimator, X[:2000], y[:2000], lambda s: grown.append((s, trees())))
    assert grown == [(1, 2), (2, 4), (3, 6), (4, 8)]
    assert estimator.get_params()[size] == 8


@pytest.mark.parametrize("grouped", [False, True])
def test_cross_validated_trials_score_the_mean_over_folds_of_train_and_valid(
    fraud_config, matrices, tmp_path, grouped
):
    """The objective with `tuning.cv_folds`: each trial's value is the mean of its per-fold
    scores over train + valid (recomputed here), reported fold by fold for pruning; with
    groups (`split.group_column`) no group is on both sides of a fold."""
    from models.tune import cv_folds, validation_score

    X, y, Xv, yv = (m[:1500] for m in matrices)
    groups = np.arange(len(y) + len(yv)) // 4 if grouped else None
    config = small_tuning(fraud_config, 3, families=("logreg",))
    config = config.model_copy(update={"tuning": config.tuning.model_copy(update={"cv_folds": 3})})
    storage = f"sqlite:///{tmp_path}/cv.db"
    result = tune_model(config, X, y, Xv, yv, storage=storage, study_name="cv", groups=groups)
    assert result.objective == "3-fold CV on train + valid"
    folds = cv_folds(3, y, yv, config.tuning.seed, groups)
    assert sorted(np.concatenate([held for _, held in folds])) == list(range(len(y) + len(yv)))
    shared = [set(groups[fit]) & set(groups[held]) for fit, held in folds] if grouped else []
    assert not any(shared)
    assert grouped or any(  # the plain folds do split such groups
        set(np.arange(len(y) + len(yv))[fit] // 4) & set(np.arange(len(y) + len(yv))[held] // 4)
        for fit, held in folds
    )
    X_all, y_all = np.vstack([X, Xv]), np.concatenate([y, yv])
    metric = config.evaluation.primary_metric
    study = optuna.load_study(study_name="cv", storage=storage)
    for trial in study.trials:
        model = build_estimator("logreg", params_of_trial("logreg", trial.params), 42)
        scores = [
            validation_score(metric, y_all[held],
                             model.fit(X_all[fit], y_all[fit]).predict_proba(X_all[held])[:, 1])
            for fit, held in folds
        ]  # fmt: skip
        assert trial.value == pytest.approx(np.mean(scores))
        assert trial.intermediate_values[3] == pytest.approx(np.mean(scores))
        assert trial.intermediate_values[1] == pytest.approx(scores[0])


def test_tuning_inputs_hold_scaled_and_unscaled_matrices(fraud_config, fraud_splits):
    """Tree families are tuned on imputed raw numbers, the others on standardised ones; the
    one-hot categories are the same in both."""
    from pipelines.steps.tune import tuning_inputs

    train, valid, _ = fraud_splits
    config = small_tuning(fraud_config, 2, families=("logreg", "gbdt"))
    inputs = tuning_inputs(config, train.head(3000), valid)
    assert set(inputs.X_train) == set(inputs.X_valid) == {True, False}
    numeric = list(config.numeric_features)
    raw = features_and_target(train.head(3000), config)[0][numeric].astype(float)
    unscaled, scaled = inputs.X_train[False], inputs.X_train[True]
    n = len(numeric)
    np.testing.assert_allclose(unscaled[:, :n], raw.fillna(raw.median()).to_numpy())
    np.testing.assert_allclose(scaled[:, :n].mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_array_equal(scaled[:, n:], unscaled[:, n:])
    only_trees = tuning_inputs(small_tuning(fraud_config, 2, families=("gbdt",)), train, valid)
    assert set(only_trees.X_train) == {False}  # no scaled matrix when no family takes one
    assert inputs.groups is None
    grouped = config.model_copy(
        update={"split": config.split.model_copy(update={"group_column": "customer"})}
    )
    train, valid = (p.assign(customer=np.arange(len(p)) // 3) for p in (train.head(3000), valid))
    groups = tuning_inputs(grouped, train, valid).groups  # train rows, then valid
    keys = pd.concat([train, valid])["customer"].astype(str).to_numpy()
    np.testing.assert_array_equal(groups, keys)


@pytest.mark.parametrize("folds", [None, 3])
def test_each_family_is_tuned_on_the_matrix_of_its_input_scaling(
    folds, fraud_config, matrices, tmp_path, monkeypatch
):
    """Given one matrix per scaling, every trial fits its family's (told apart by width)."""
    import dataclasses

    import models.tune

    X, y, Xv, yv = (m[:1500] for m in matrices)
    by_scaling = ({True: X, False: X[:, :4]}, {True: Xv, False: Xv[:, :4]})
    fitted: list[tuple[str, object]] = []

    def spying(name: str):
        family = FAMILIES[name]

        def build(params, seed):
            estimator = family.build(params, seed)
            fitted.append((name, estimator))
            return estimator

        return dataclasses.replace(family, build=build)

    monkeypatch.setattr(models.tune, "get_family", spying)
    config = small_tuning(fraud_config, 6, families=("logreg", "gbdt"))
    config = config.model_copy(
        update={"tuning": config.tuning.model_copy(update={"cv_folds": folds})}
    )
    result = tune_model(
        config, by_scaling[0], y, by_scaling[1], yv, storage=f"sqlite:///{tmp_path}/s.db",
        study_name="s",
    )  # fmt: skip
    assert result.trials_complete >= 1
    assert {name for name, _ in fitted} == {"logreg", "gbdt"}
    for name, estimator in fitted:
        width = X.shape[1] if FAMILIES[name].scaled_inputs else 4
        assert estimator.n_features_in_ == width, name


def test_a_gbdt_saved_with_scaled_inputs_still_loads_and_predicts(
    fraud_config, fraud_splits, tmp_path
):
    """Models trained before tree families took unscaled numbers carry their StandardScaler
    inside the saved pipeline: they load and score as they did."""
    from sklearn.pipeline import Pipeline

    from features.split import model_inputs

    train, _, test = fraud_splits
    X, y = features_and_target(train.head(3000), fraud_config)
    columns = (fraud_config.numeric_features, fraud_config.categorical_features)
    legacy = Pipeline(
        [
            ("preprocess", build_preprocessor(*columns, scaled=True)),
            ("model", build_estimator("gbdt", {"max_iter": 20}, seed=0)),
        ]
    ).fit(X, y)
    save_model(legacy, tmp_path / "legacy.skops")
    loaded = load_model(tmp_path / "legacy.skops")
    rows = model_inputs(test.head(200), fraud_config)
    numbers = loaded.named_steps["preprocess"].named_transformers_["numeric"]
    assert [name for name, _ in numbers.steps] == ["impute", "scale"]
    np.testing.assert_array_equal(loaded.predict_proba(rows), legacy.predict_proba(rows))
