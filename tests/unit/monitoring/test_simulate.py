"""What the simulator replays: later fraud traffic (drifted) and the churn holdout."""

import pandas as pd

from configs import load_config
from monitoring.simulate import traffic


def test_fraud_replays_the_drifted_period_in_order():
    config = load_config("fraud")
    rows = traffic(config, rows=1_000, days=7)
    assert len(rows) == 1_000
    assert list(rows.columns) == ["request_id", "timestamp", *config.features, "label"]
    assert rows["timestamp"].is_monotonic_increasing
    assert rows["timestamp"].min() >= pd.Timestamp("2026-07-01", tz="UTC")  # after training data
    assert rows["timestamp"].max() < rows["timestamp"].min() + pd.Timedelta(days=7)
    assert rows["request_id"].is_unique and rows["label"].isin([0, 1]).all()
    assert rows["channel"].eq("contactless").mean() > 0.2  # the drifted channel mix
    again = traffic(config, rows=1_000, days=7, seed_offset=2)
    assert not set(again["request_id"]) & set(rows["request_id"])


def test_churn_replays_its_holdout_over_simulated_days():
    config = load_config("churn")
    rows = traffic(config, rows=500, days=5)
    assert len(rows) == 500
    assert rows["request_id"].str.startswith("churn-").all() and rows["request_id"].is_unique
    span = rows["timestamp"].max() - rows["timestamp"].min()
    assert pd.Timedelta(days=4) < span < pd.Timedelta(days=5)
    assert 0.1 < rows["label"].mean() < 0.5
