import optuna
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from configs.schema import ParamRange
from features.split import features_and_target
from features.transform import build_preprocessor
from models.families import build_estimator, params_of_trial, parse_hidden_units, suggest_params
from models.torch_mlp import TorchMLPClassifier
from models.tune import tune_model


def test_families_build_the_right_estimators():
    assert isinstance(build_estimator("gbdt", {"max_iter": 10}, 0), HistGradientBoostingClassifier)
    assert isinstance(build_estimator("baseline", {}, 0), LogisticRegression)
    mlp = build_estimator("mlp", {"hidden_units": "32-16"}, 5)
    assert isinstance(mlp, TorchMLPClassifier)
    assert mlp.hidden_units == (32, 16) and mlp.random_state == 5
    with pytest.raises(ValueError, match="unknown model family 'xgb'"):
        build_estimator("xgb", {}, 0)


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


def small_tuning(config, n_trials):
    space = {
        "gbdt": {"max_iter": ParamRange(type="int", low=20, high=40)},
        "mlp": {"max_epochs": ParamRange(type="int", low=2, high=3)},
    }
    tuning = config.tuning.model_copy(update={"n_trials": n_trials, "search_space": space})
    return config.model_copy(update={"tuning": tuning})


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

    seen = []
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
