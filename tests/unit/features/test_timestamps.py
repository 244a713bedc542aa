"""Time columns: integer years, yyyymmdd dates, epoch seconds / ms and text, by one rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs import ConfigError, load_config
from features.contract import clean_rows
from features.init_config import main as init_config
from features.profile import ProfileError, profile_table
from features.split import split_data
from features.timestamps import TimeColumnError, detect_time_unit, parse_times
from monitoring.simulate import traffic
from tests.unit.features.conftest import mini_config


def ts(*values: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(v) for v in values]


@pytest.mark.parametrize(
    ("raw", "unit", "expected"),
    [
        ([2015, 2016], "auto", ts("2015-01-01", "2016-01-01")),
        ([2015, 2016], "year", ts("2015-01-01", "2016-01-01")),
        ([20150331, 20161231], "auto", ts("2015-03-31", "2016-12-31")),
        (["20150331", "20161231"], "auto", ts("2015-03-31", "2016-12-31")),  # digits as text
        ([1_420_070_400, 1_420_070_460], "auto", ts("2015-01-01", "2015-01-01 00:01")),
        ([1_420_070_400_000, 1_420_070_400_500], "auto", ts("2015-01-01", "2015-01-01 00:00:00.5")),
        ([0, 86_400], "s", ts("1970-01-01", "1970-01-02")),  # explicit: small seconds allowed
        ([2015, 2016], "s", ts("1970-01-01 00:33:35", "1970-01-01 00:33:36")),  # as stated
        (["2015-03-31", "2015-03-31T12:00:00+02:00"], "auto", ts("2015-03-31", "2015-03-31 10:00")),
        (["2015-03-31", "2015-04-01"], "year", ts("2015-03-31", "2015-04-01")),  # text: unit moot
    ],
)
def test_time_values_are_read_by_the_stated_rule(raw, unit, expected) -> None:
    parsed = parse_times(pd.Series(raw), "when", unit)
    assert str(parsed.dtype) == "datetime64[ns]"
    assert list(parsed) == expected


def test_a_year_column_is_never_read_as_nanoseconds() -> None:
    parsed = parse_times(pd.Series([2015, 2019, 2024]), "year")
    assert parsed.dt.year.tolist() == [2015, 2019, 2024]
    assert (parsed > pd.Timestamp("2000-01-01")).all()


def test_unreadable_values_become_missing_for_the_contract_to_quarantine() -> None:
    parsed = parse_times(pd.Series([20150101, 20151341, np.nan]), "d", "yyyymmdd")
    assert parsed.iloc[0] == pd.Timestamp("2015-01-01")
    assert parsed.iloc[1:].isna().all()  # month 13; missing
    text = parse_times(pd.Series(["2015-01-01", "soon"]), "d")
    assert text.isna().tolist() == [False, True]
    assert parse_times(pd.Series([2015.5, 2016.0]), "d", "year").isna().tolist() == [True, False]


def test_time_zones_come_back_as_naive_utc() -> None:
    aware = pd.Series(pd.to_datetime(["2015-01-01 01:00"]).tz_localize("Europe/Paris"))
    assert parse_times(aware, "t").tolist() == ts("2015-01-01 00:00")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([0, 172_792], "from 0 to 172,792"),  # seconds since the start of a table: ambiguous
        ([2015, 20150101], "from 2,015 to"),  # two bands at once
        (["soon", "later"], "no value that reads as a time"),
        ([True, False], "true/false"),
    ],
)
def test_unreadable_columns_are_refused_naming_the_column_and_the_forms(raw, problem) -> None:
    with pytest.raises(TimeColumnError) as caught:
        parse_times(pd.Series(raw), "Time")
    message = str(caught.value)
    assert "time column 'Time'" in message and problem in message
    for form in ("year (2015)", "yyyymmdd (20150331)", "s or ms", "time_unit"):
        assert form in message
    assert caught.value.hint and "time_unit" in caught.value.hint


def test_an_unknown_unit_is_refused() -> None:
    with pytest.raises(TimeColumnError, match="time_unit 'days' is not one of"):
        parse_times(pd.Series([1]), "t", "days")


def test_auto_detection_names_the_unit_or_none_for_text() -> None:
    assert detect_time_unit(pd.Series([1999, 2024]), "t") == "year"
    assert detect_time_unit(pd.Series([19990101]), "t") == "yyyymmdd"
    assert detect_time_unit(pd.Series([1.7e9]), "t") == "s"
    assert detect_time_unit(pd.Series([1.7e12]), "t") == "ms"
    assert detect_time_unit(pd.Series(["2015-01-01"]), "t") is None


def test_the_config_key_accepts_only_the_stated_units() -> None:
    assert mini_config().time_unit == "auto"
    assert mini_config(time_unit="yyyymmdd").time_unit == "yyyymmdd"
    with pytest.raises(ConfigError, match="time_unit"):
        mini_config(time_unit="days")


def year_table(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(rows)],
            "ts": rng.permutation(np.repeat(np.arange(2010, 2020), rows // 10)),
            "amount": rng.uniform(1, 100, rows),
            "age": rng.integers(18, 90, rows),
            "channel": rng.choice(["pos", "online"], rows),
            "label": rng.integers(0, 2, rows),
        }
    )


def test_a_year_column_is_cleaned_and_split_by_year() -> None:
    config = mini_config()
    clean = clean_rows(year_table(), config).clean
    assert clean["ts"].dt.year.between(2010, 2019).all() and clean["ts"].dt.month.eq(1).all()
    train, _, test = split_data(clean, config)
    assert train["ts"].max() <= test["ts"].min()
    assert test["ts"].min().year >= 2017


def test_a_raw_integer_column_is_split_in_time_order() -> None:
    config = mini_config(time_unit="year")
    train, _, test = split_data(year_table(), config)  # split_data reads the raw years too
    assert train["ts"].max() <= test["ts"].min() and test["ts"].min() >= 2017


def test_an_ambiguous_integer_column_stops_the_contract() -> None:
    frame = year_table().assign(ts=lambda f: np.arange(len(f)))  # 0, 1, 2, ...: no unit
    with pytest.raises(TimeColumnError, match="time column 'ts'"):
        clean_rows(frame, mini_config())
    clean = clean_rows(frame, mini_config(time_unit="s")).clean  # stated: seconds since 1970
    assert clean["ts"].min() == pd.Timestamp("1970-01-01")


def test_simulated_traffic_keeps_the_table_years(tmp_path: Path) -> None:
    path = tmp_path / "years.csv"
    year_table().to_csv(path, index=False)
    config = mini_config(data={"source": "file", "path": str(path)})
    rows = traffic(config, rows=30, days=400)
    assert rows["timestamp"].dt.year.ge(2017).all()  # the test split's years, not 1970
    assert str(rows["timestamp"].dt.tz) == "UTC"


def test_the_profile_records_the_unit_and_refuses_an_ambiguous_column() -> None:
    frame = year_table().drop(columns="tx_id")
    profile = profile_table(frame, "label", time_column="ts")
    assert profile.time_unit == "year" and profile.quarantine_fraction == 0
    assert profile_table(frame, "label", time_column="ts", time_unit="s").time_unit == "s"
    with pytest.raises(ProfileError, match="time column 'ts'.*yyyymmdd"):
        profile_table(frame.assign(ts=range(len(frame))), "label", time_column="ts")


def test_make_init_config_states_the_unit_it_read(tmp_path: Path) -> None:
    data, out = tmp_path / "years.csv", tmp_path / "years.yaml"
    year_table().drop(columns="tx_id").to_csv(data, index=False)
    assert init_config([f"--data={data}", "--target=label", "--time=ts", f"--out={out}"]) == 0
    text = out.read_text()
    assert "time_unit: year  # numbers in 'ts' read as years (2015)" in text
    assert load_config(out).time_unit == "year"
