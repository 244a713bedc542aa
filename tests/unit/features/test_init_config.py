"""`make init-config`: the starter config's sizing rules, its YAML, and the command's edges."""

from __future__ import annotations

import hashlib
import typing

import numpy as np
import pandas as pd
import pytest
import yaml

from configs import ConfigError, load_config, parse_config
from configs.cli import UserError
from configs.schema import DEFAULT_SEARCH_SPACES, Family
from features.contract import clean_rows
from features.init_config import (
    REPO,
    _allowance,
    config_data_path,
    main,
    model_inputs,
    numeric_range,
    project_name,
    render,
    replay_sections,
    starter_config,
    target_rate_bounds,
    tune_rows,
    tuning_section,
    write_config,
)
from features.profile import profile_table
from features.sources import load_raw
from features.split import split_data

ROWS = 600


def table(rows: int = ROWS, rare: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    amount = rng.gamma(2.0, 40.0, rows)
    amount[:12] = np.nan
    plan = rng.choice(["Basic", "Pro plan", "pro-plan", "Team"], rows)
    risk = np.nan_to_num(amount) / 80 + (plan == "Team") + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "rownames": np.arange(1, rows + 1),
            "amount": amount,
            "tenure": rng.integers(0, 60, rows),
            "plan": plan,
            "churned": np.where(risk > np.quantile(risk, 1 - rare), "yes", "no"),
        }
    )


# -- sizing rules (pure) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "median", "high", "integer", "expected"),
    [
        (0.0, 824.0, 2654.3, False, (0, 2900)),  # non-negative stays non-negative
        (771.97, 34553.0, 73554.2, False, (0, 78000)),
        (-484.88, 50.0, 4.98e7, False, (-540, 55_000_000)),  # a long tail widens one side
        (1, 3, 10, True, (0, 11)),  # whole steps for integers
        (0, 0, 1, True, (0, 1)),  # a 0/1 flag stays a flag
        (-3.5, -1.0, -0.2, False, (-3.8, -0.12)),  # steps follow each side's distance
        (0.085, 0.4, 2.42, False, (0.05, 2.7)),
    ],
)
def test_numeric_ranges_widen_outward_to_a_tidy_step(low, median, high, integer, expected):
    got = numeric_range(low, median, high, integer=integer)
    assert got == expected
    assert got[0] <= low and got[1] >= high


@pytest.mark.parametrize("rate", [0.0005, 0.01, 0.033, 0.265, 0.5, 0.627, 0.97])
def test_target_rate_bounds_hold_the_observed_rate(rate):
    low, high = target_rate_bounds(rate)
    assert 0 < low < rate < high < 1


def test_null_allowance_has_headroom():
    assert _allowance(0.0) == 0.0  # a complete column stays complete
    assert _allowance(0.006) == 0.03  # at least two points more
    assert _allowance(0.2) == 0.3  # half again
    assert _allowance(0.9) == 1.0


def test_tuning_is_sized_to_the_table_and_covers_the_schema_families():
    small, large = tuning_section(1_000, 0.2), tuning_section(500_000, 0.15)
    assert small["families"] == large["families"] == list(typing.get_args(Family))
    assert small["n_trials"] > large["n_trials"] and "tune_rows" not in small
    assert large["tune_rows"] == 100_000
    # small untimed tables are tuned by CV; timed and large ones keep their validation split
    assert small["cv_folds"] == 5
    assert "cv_folds" not in tuning_section(1_000, 0.2, timed=True) and "cv_folds" not in large
    assert "search_space" not in small and "search_space" not in large  # no second copy
    # a trial's rows shrink with the table's width: 400 inputs fit on 7,000 rows, not 100,000
    wide = tuning_section(100_000, 0.15, inputs=400)
    assert wide["tune_rows"] == tune_rows(400) == 7_000
    assert tune_rows(30) == 100_000 and tune_rows(100_000) == 2_000
    assert "tune_rows" not in tuning_section(5_000, 0.2, inputs=400)  # 3,000 training rows
    for section in (small, large):
        tuning = parse_config(_with(tuning=section)).tuning
        assert all(tuning.space(f) == DEFAULT_SEARCH_SPACES[f] for f in tuning.families)


@pytest.mark.parametrize(
    ("test_rows", "train_rows", "section"),
    [
        (700, 700, None),  # 7 daily windows of 100 rows: the defaults report (K-S test)
        (350, 800, {"simulation": {"days": 3}}),
        (120, 400, {"simulation": {"days": 1}}),
        (40, 130, {"min_window_rows": 40, "simulation": {"days": 1}}),
        (6, 20, {"min_window_rows": 30, "simulation": {"days": 1}}),  # too few: still refused
        # A reference over 1,000 rows: Wasserstein, 500-row windows
        (1_500, 7_000, {"min_window_rows": 500, "simulation": {"days": 3}}),
        (4_000, 20_000, {"min_window_rows": 500}),
        (400, 1_200, {"min_window_rows": 400, "simulation": {"days": 1}}),  # one, warned
    ],
)
def test_a_replay_of_the_test_rows_fills_windows_monitoring_reports(test_rows, train_rows, section):
    sections = replay_sections(test_rows, train_rows)
    assert sections.get("monitoring") == section
    monitoring = parse_config(_with(**sections)).monitoring
    per_day = test_rows / monitoring.simulation.days
    assert (per_day >= monitoring.min_window_rows) == (test_rows >= 30)


def test_a_small_window_against_a_large_reference_is_warned(tmp_path):
    rng = np.random.default_rng(14)
    x = rng.normal(0, 1, 2000)
    data, out = tmp_path / "mid.csv", tmp_path / "mid.yaml"
    pd.DataFrame({"x": x, "y": (x + rng.normal(0, 1, 2000) > 1).astype(int)}).to_csv(data)
    assert main(["--data", str(data), "--target", "y", "--out", str(out)]) == 0
    text = out.read_text()
    assert "WARNING: the ~400 test rows replay as one window of under 500 rows" in text
    assert load_config(out).monitoring.min_window_rows == 400


def _with(**sections):
    base = {"name": "t", "data": {"source": "file", "path": "x.csv"}, "target": "y"}
    return {**base, "numeric_features": ["a"], **sections}


@pytest.mark.parametrize(("rare", "metric"), [(0.1, "pr_auc"), (0.3, "roc_auc")])
def test_the_primary_metric_follows_the_class_balance(rare, metric):
    starter = starter_config(
        profile_table(table(rare=rare), "churned"), name="t", data_path="t.csv"
    )
    assert starter.config["evaluation"]["primary_metric"] == metric
    assert f"{rare:.1%}" in starter.beside[("evaluation", "primary_metric")]


def test_the_starter_contract_accepts_its_own_table():
    frame = table()
    starter = starter_config(profile_table(frame, "churned"), name="t", data_path="t.csv")
    config = parse_config(starter.config)
    assert config.positive_label == "yes" and config.numeric_features == ("amount", "tenure")
    rules = config.contract.columns
    assert rules["plan"].categories == ("basic", "pro_plan", "team")
    assert rules["amount"].max_null_fraction == 0.04 and rules["tenure"].max_null_fraction == 0
    result = clean_rows(frame, config)
    assert result.quarantine.empty and len(result.clean) == ROWS
    low, high = config.contract.target_rate
    assert low < result.clean["churned"].mean() < high
    assert config.contract.min_rows == ROWS // 2
    assert model_inputs(profile_table(frame, "churned")) == 2 + 3  # amount, tenure; plan one-hot


def test_render_round_trips_with_comments_and_short_lines():
    profile = profile_table(table().assign(country="us"), "churned")
    starter = starter_config(profile, name="t", data_path="data/t.csv")
    text = render(starter, ["Generated for a test"])
    assert yaml.safe_load(text) == starter.config
    assert text.startswith("# Generated for a test\nname: t\n")
    assert "# WARNING: excluded 'rownames': is named like an id" in text
    assert "# WARNING: excluded 'country': is constant" in text
    assert "primary_metric: pr_auc  # positives are 10.0% (< 20%)" in text
    assert max(map(len, text.splitlines())) <= 100


# -- the command -----------------------------------------------------------------------------


def test_project_names_come_from_the_file_name():
    assert project_name("Pima.te") == "pima-te"
    assert project_name("credit_data") == "credit_data"
    with pytest.raises(UserError, match="cannot make a project name"):
        project_name("2024")


def test_data_paths_are_relative_inside_the_repository(tmp_path):
    assert config_data_path(REPO / "configs" / "churn.yaml") == "configs/churn.yaml"
    assert config_data_path(tmp_path / "t.csv") == str((tmp_path / "t.csv").resolve())


def test_an_invalid_config_is_never_written(tmp_path):
    out = tmp_path / "bad.yaml"
    with pytest.raises(ConfigError, match="target"):
        write_config("name: bad\ndata: {source: file, path: x.csv}\n", out)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_init_config_writes_a_valid_commented_config(tmp_path, capsys, caplog):
    data = tmp_path / "Churn Data.csv"
    table().to_csv(data, index=False)
    out = tmp_path / "configs" / "churn-data.yaml"
    assert main(["--data", str(data), "--target", "churned", "--out", str(out)]) == 0
    config = load_config(out)
    assert config.name == "churn-data" and config.data.path == str(data.resolve())
    text = out.read_text()
    assert hashlib.sha256(data.read_bytes()).hexdigest() in text
    assert f"make pipeline PROJECT={out}" in text
    assert f"wrote {out}: 2 numeric and 1 categorical features, 1 excluded" in (
        capsys.readouterr().out
    )
    assert "excluded 'rownames': is named like an id" in caplog.text  # stderr, as a warning


def test_a_semicolon_export_with_decimal_commas_keeps_its_numbers(tmp_path):
    frame = table()
    data = tmp_path / "churn.csv"
    frame.to_csv(data, index=False, sep=";", decimal=",")  # a European spreadsheet's export
    assert "," in data.read_text()  # only the decimal commas
    out = tmp_path / "churn.yaml"
    assert main(["--data", str(data), "--target", "churned", "--out", str(out)]) == 0
    config = load_config(out)
    assert config.numeric_features == ("amount", "tenure")  # not text, not a category
    result = clean_rows(load_raw(config.data), config)
    assert result.quarantine.empty
    assert np.allclose(result.clean["amount"], frame["amount"], equal_nan=True)


def test_a_group_column_is_written_and_its_rows_stay_together(tmp_path, capsys):
    frame = table().assign(customer=lambda f: [f"c{i // 3}" for i in range(len(f))])
    data = tmp_path / "visits.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "visits.yaml"
    assert main(["--data", str(data), "--target", "churned", "--out", str(out),
                 "--group", "customer"]) == 0  # fmt: skip
    config = load_config(out)
    assert config.split.group_column == "customer" and "customer" not in config.features
    assert "stratified at random, each 'customer' in one part" in out.read_text()
    parts = split_data(clean_rows(load_raw(config.data), config).clean, config)
    customers = [set(p["customer"]) for p in parts]
    assert sum(map(len, customers)) == frame["customer"].nunique()  # none in two parts


def test_rows_that_repeat_by_nature_are_kept_and_the_class_rate_is_the_tables(tmp_path):
    rng = np.random.default_rng(9)
    survey = pd.DataFrame(
        {
            "age_band": rng.integers(1, 6, 3000),
            "region": rng.choice(["north", "south", "east"], 3000),
            "smoker": rng.choice(["yes", "no"], 3000, p=[0.2, 0.8]),
        }
    )  # 30 answer patterns: most rows repeat one, and none is a record loaded twice
    data, out = tmp_path / "survey.csv", tmp_path / "survey.yaml"
    survey.to_csv(data, index=False)
    assert main(["--data", str(data), "--target", "smoker", "--out", str(out)]) == 0
    config = load_config(out)
    assert config.contract.drop_duplicates is False
    assert "rows repeat by nature (no column tells rows apart)" in out.read_text()
    clean = clean_rows(load_raw(config.data), config).clean
    assert len(clean) == 3000  # deduplicated, 60 rows would be left, at a 50% positive rate
    assert clean["smoker"].mean() == pytest.approx((survey["smoker"] == "yes").mean())


def test_an_existing_config_is_kept_without_force(tmp_path, capsys):
    data = tmp_path / "t.parquet"
    table().to_parquet(data, index=False)
    out = tmp_path / "t.yaml"
    out.write_text("mine\n")
    args = ["--data", str(data), "--target", "churned", "--out", str(out)]
    assert main(args) == 2
    assert out.read_text() == "mine\n"
    assert "exists; not overwritten" in capsys.readouterr().err
    assert main([*args, "--force", "--positive-label", "no", "--id", "rownames"]) == 0
    config = load_config(out)
    assert config.positive_label == "no" and config.id_column == "rownames"


def test_a_class_of_several_gets_a_one_vs_rest_config_whose_contract_reads_the_table(tmp_path):
    frame = table()
    assert frame["plan"].nunique() > 2
    starter = starter_config(
        profile_table(frame, "plan", positive_label="team"), name="t", data_path="t.csv"
    )
    config = parse_config(starter.config)
    assert config.one_vs_rest and config.positive_label == "Team"  # as the table spells it
    assert "4 classes: the model answers 'is it Team?'" in starter.beside[("one_vs_rest",)]
    clean = clean_rows(frame, config).clean
    assert clean["plan"].sum() == (frame["plan"] == "Team").sum() and set(clean["plan"]) == {0, 1}
    two = starter_config(profile_table(frame, "churned"), name="t", data_path="t.csv")
    assert "one_vs_rest" not in two.config


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{tmp}/none.csv", "--target", "y"], "data file not found: {tmp}/none.csv"),
        (["--data", "{tmp}/t.txt", "--target", "y"], "unsupported data file type '.txt'"),
        (["--data", "{tmp}/bad.parquet", "--target", "y"], "cannot read {tmp}/bad.parquet"),
        (["--data", "{tmp}/t.csv", "--target", "y"], "target column 'y' is not in the table; its"),
        (["--data", "{tmp}/t.csv", "--target", "plan"], "target 'plan' has 4 classes"),
        (["--data", "{tmp}/t.csv", "--target", "churned", "--time", "ts"], "--time column 'ts'"),
        (["--data", "{tmp}/t.csv", "--target", "churned", "--name", "A b"], "--name 'A b' is"),
    ],
)
def test_errors_name_the_file_or_column_and_exit_non_zero(tmp_path, capsys, args, message):
    table().to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "t.txt").write_text("a,b\n1,2\n")
    (tmp_path / "bad.parquet").write_text("not parquet")
    argv = [a.format(tmp=tmp_path) for a in args] + ["--out", str(tmp_path / "o.yaml")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(tmp=tmp_path) in err
    assert "\n  next: " in err
    assert not (tmp_path / "o.yaml").exists()
