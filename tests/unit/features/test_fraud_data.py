"""Tests for the synthetic, messy card-transaction generator."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from features.fraud_data import (
    CATEGORIES,
    CHANNELS,
    COLUMNS,
    COUNTRIES,
    DEVICE_TYPES,
    generate_transactions,
)

pytestmark = pytest.mark.data

N = 30_000
NUMERIC = [
    "amount",
    "customer_age",
    "account_age_days",
    "distance_from_home_km",
    "txn_count_24h",
    "avg_amount_30d",
    "hour_of_day",
    "is_new_device",
]
CATEGORICAL = {
    "merchant_category": CATEGORIES,
    "channel": CHANNELS,
    "country": COUNTRIES,
    "device_type": DEVICE_TYPES,
}
ALIASES = {"e_commerce": "online_retail", "ecommerce": "online_retail", "petrol": "fuel"}
ALIASES |= {"on_line": "online", "tap": "contactless"}


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    return generate_transactions(N, seed=3)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate_transactions(N, seed=3, messy=False)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return generate_transactions(N, seed=3, drifted=True, messy=False)


def normalise(values: pd.Series) -> pd.Series:
    spelled = values.str.lower().str.strip().str.replace(r"[\s-]+", "_", regex=True)
    return spelled.replace(ALIASES)


def parse_amount(value: object) -> float:
    if isinstance(value, str):
        return float(re.sub(r"[^0-9.\-]", "", value))
    return float(value)


def is_junk(values: pd.Series) -> pd.Series:
    return values.map(lambda v: isinstance(v, str))


def test_columns_and_dtypes(messy: pd.DataFrame, clean: pd.DataFrame) -> None:
    for frame in (messy, clean):
        assert tuple(frame.columns) == COLUMNS
        assert len(frame) == N
        assert frame["event_time"].dtype == "datetime64[ns]"
        for column in ("customer_age", "account_age_days", "distance_from_home_km"):
            assert frame[column].dtype == np.float64
        for column in ("txn_count_24h", "hour_of_day", "is_new_device", "is_fraud"):
            assert frame[column].dtype == np.int64
    assert messy["amount"].dtype == object
    assert clean["amount"].dtype == np.float64
    assert clean["transaction_id"].str.fullmatch(r"tx_\d{8}").all()
    assert clean["transaction_id"].is_unique
    assert clean["customer_id"].str.fullmatch(r"c_\d{6}").all()
    assert 0.5 * N / 20 < clean["customer_id"].nunique() <= N / 20


def test_clean_values_are_in_range(clean: pd.DataFrame) -> None:
    assert not clean.isna().any().any()
    assert not clean.duplicated().any()
    for column, allowed in CATEGORICAL.items():
        assert set(clean[column]) <= set(allowed), column
    assert (clean["amount"] > 0).all() and (clean["amount"] < 100_000).all()
    assert clean["customer_age"].between(18, 90).all()
    assert clean["account_age_days"].between(0, 7300).all()
    assert (clean["distance_from_home_km"] >= 0).all()
    assert (clean["txn_count_24h"] >= 0).all() and (clean["avg_amount_30d"] > 0).all()
    assert set(clean["is_new_device"]) == {0, 1} and set(clean["is_fraud"]) == {0, 1}
    for column in ("customer_age", "account_age_days"):
        assert (clean[column] == clean[column].round()).all()
    assert (clean["hour_of_day"] == clean["event_time"].dt.hour).all()


def test_daily_cycle_has_quiet_nights(clean: pd.DataFrame) -> None:
    per_hour = clean["hour_of_day"].value_counts()
    assert per_hour.loc[[2, 3, 4]].mean() < 0.25 * per_hour.loc[[12, 18]].mean()


def test_same_seed_same_frame_and_other_seed_differs(messy: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(messy, generate_transactions(N, seed=3))
    other = generate_transactions(N, seed=4)
    assert not other["amount"].equals(messy["amount"])
    assert not other["event_time"].equals(messy["event_time"])


def test_fraud_rate_at_full_size() -> None:
    frame = generate_transactions(200_000)
    assert 0.008 <= frame["is_fraud"].mean() <= 0.016


def test_time_span_covers_the_months(clean: pd.DataFrame) -> None:
    times = clean["event_time"]
    assert times.is_monotonic_increasing
    assert times.min() >= pd.Timestamp("2026-01-01") and times.max() < pd.Timestamp("2026-07-01")
    assert (times.max() - times.min()).days >= 178
    short = generate_transactions(1_000, start="2025-03-15", months=1, messy=False)["event_time"]
    assert short.min() >= pd.Timestamp("2025-03-15") and short.max() < pd.Timestamp("2025-04-15")


def test_drifted_period_follows_the_normal_one(clean: pd.DataFrame, drifted: pd.DataFrame) -> None:
    assert drifted["event_time"].min() >= pd.Timestamp("2026-07-01") > clean["event_time"].max()
    assert drifted["event_time"].max() < pd.Timestamp("2027-01-01")
    assert drifted["transaction_id"].str[3:].astype(int).min() > 10**8
    assert not set(drifted["transaction_id"]) & set(clean["transaction_id"])


def test_drifted_distributions_shift(clean: pd.DataFrame, drifted: pd.DataFrame) -> None:
    assert drifted["amount"].median() > 1.3 * clean["amount"].median()
    for channel in ("online", "contactless"):
        assert (drifted["channel"] == channel).mean() > (clean["channel"] == channel).mean() + 0.05
    shares = [f["country"].value_counts(normalize=True) for f in (clean, drifted)]
    assert (shares[0] - shares[1]).abs().sum() > 0.1
    testing = (drifted["channel"] == "contactless") & (drifted["amount"] < 5)
    testing &= drifted["txn_count_24h"] >= 8
    before = (clean["channel"] == "contactless") & (clean["amount"] < 5)
    assert testing.mean() > 0.003 > (before & (clean["txn_count_24h"] >= 8)).mean()
    assert drifted.loc[testing, "is_fraud"].mean() > 0.3


def test_messy_has_the_stated_damage(messy: pd.DataFrame) -> None:
    assert messy.duplicated().mean() == pytest.approx(0.005, abs=0.001)
    junk = is_junk(messy["amount"])
    assert junk.mean() == pytest.approx(0.01, abs=0.003)
    numeric = pd.to_numeric(messy["amount"].where(~junk), errors="coerce")
    assert ((numeric < 0) | (numeric > 1_000_000)).mean() == pytest.approx(0.002, abs=0.0012)
    assert numeric.isna().sum() - junk.sum() == pytest.approx(0.005 * N, rel=0.3)
    age = messy["customer_age"]
    assert 0 < (~age.between(18, 90) & age.notna()).mean() < 0.003
    for column, rate in {
        "device_type": 0.03,
        "customer_age": 0.02,
        "account_age_days": 0.01,
    }.items():
        assert messy[column].isna().mean() == pytest.approx(rate, rel=0.3), column
    odd = ~messy["merchant_category"].isin(CATEGORIES) & messy["merchant_category"].notna()
    assert 0.015 < odd.mean() < 0.04
    assert {"e-commerce", "ecommerce", "petrol"} <= set(messy["merchant_category"])
    assert {"ON-LINE", "tap"} <= set(messy["channel"])
    assert messy["country"].str.contains(r"^\s|\s$|[A-Z]").mean() > 0.01


def test_messy_values_normalise_back_to_the_clean_ones(
    messy: pd.DataFrame, clean: pd.DataFrame
) -> None:
    pairs = messy.drop_duplicates().merge(clean, on="transaction_id", suffixes=("", "_clean"))
    assert len(pairs) == messy["transaction_id"].nunique()
    for column in CATEGORICAL:
        present = pairs[column].notna()
        restored = normalise(pairs.loc[present, column])
        assert (restored == pairs.loc[present, f"{column}_clean"]).all(), column
    junk = is_junk(pairs["amount"])
    parsed = pairs.loc[junk, "amount"].map(parse_amount)
    np.testing.assert_allclose(parsed, pairs.loc[junk, "amount_clean"], atol=0.005)


def test_fraud_is_learnable() -> None:
    frame = generate_transactions(50_000, seed=11, messy=False).sort_values("event_time")
    features = pd.concat([frame[NUMERIC], pd.get_dummies(frame[list(CATEGORICAL)])], axis=1)
    cut = int(0.7 * len(frame))
    with threadpool_limits(1):  # one thread is fastest at this size and immune to busy CPUs
        model = HistGradientBoostingClassifier(random_state=0).fit(
            features[:cut], frame["is_fraud"][:cut]
        )
    scores = model.predict_proba(features[cut:])[:, 1]
    assert roc_auc_score(frame["is_fraud"][cut:], scores) > 0.85


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_rows": 99}, "n_rows"), ({"months": 0}, "months"), ({"n_rows": -5}, "n_rows")],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_transactions(**kwargs)
