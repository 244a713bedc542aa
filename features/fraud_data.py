"""Seeded synthetic card transactions, messy the way real exports are.

`generate_transactions` draws a clean table first (customers, timestamps with a daily cycle,
amounts by merchant category, behavioural features), labels fraud from a latent logistic
score on those clean values, and only then, with `messy=True`, damages it: amounts as junk
strings ("$1,234.50", "12.30 USD"), out-of-range values, inconsistent spellings and aliases of
categories, missing values and exact duplicate rows. Every messy spelling normalises back by
lower-casing, stripping and turning runs of spaces or hyphens into "_", plus the aliases
e_commerce/ecommerce -> online_retail, petrol -> fuel, on_line -> online, tap -> contactless.
Everything is vectorised with numpy; the same seed always gives the same frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

CATEGORIES = (
    "grocery",
    "restaurant",
    "travel",
    "electronics",
    "fuel",
    "entertainment",
    "online_retail",
    "jewelry",
    "gaming",
    "pharmacy",
)
CHANNELS = ("pos", "online", "atm", "contactless")
COUNTRIES = ("us", "gb", "de", "fr", "es", "it", "nl", "br", "in", "ng")
DEVICE_TYPES = ("mobile", "desktop", "tablet", "pos_terminal")
COLUMNS = (
    "transaction_id",
    "event_time",
    "customer_id",
    "amount",
    "merchant_category",
    "channel",
    "country",
    "device_type",
    "customer_age",
    "account_age_days",
    "distance_from_home_km",
    "txn_count_24h",
    "avg_amount_30d",
    "hour_of_day",
    "is_new_device",
    "is_fraud",
)

# Per category (order of CATEGORIES): typical amount relative to the customer's usual spend,
# and the log-normal spread around it.
_CATEGORY_SCALE = np.array([1.0, 0.7, 4.0, 3.0, 1.1, 0.9, 1.3, 5.0, 0.5, 0.6])
_CATEGORY_SIGMA = np.array([0.6, 0.5, 0.8, 0.7, 0.4, 0.6, 0.8, 0.9, 0.7, 0.5])
_RISKY_ONLINE = ("electronics", "jewelry", "gaming")
_COUNTRY_RISK = {"gb": -0.2, "de": -0.4, "fr": -0.2, "it": 0.1, "nl": -0.3, "br": 0.7}
_COUNTRY_RISK |= {"in": 0.5, "ng": 1.2}  # the rest: 0
_HOURLY = np.array(
    [2.0, 1.2, 0.8, 0.6, 0.6, 0.9, 2.0, 3.5, 5.0, 5.5, 6.0, 6.5]
    + [7.0, 6.5, 6.0, 6.0, 6.5, 7.0, 7.5, 7.0, 6.0, 5.0, 4.0, 3.0]
)
_HOURLY = _HOURLY / _HOURLY.sum()
_MAX_AMOUNT = 50_000.0  # clean amounts stay well inside the contract's range
_INTERCEPT = -8.1  # puts the normal-period fraud rate near 1.1%


@dataclass(frozen=True)
class _Regime:
    """Distributions of one period; the drifted period shifts all of them."""

    category_p: tuple[float, ...]
    channel_p: tuple[float, ...]
    country_p: tuple[float, ...]
    amount_scale: float
    card_testing_rate: float  # share of contactless card-testing rows (small, bursty)
    id_offset: int


_NORMAL = _Regime(
    category_p=(0.24, 0.16, 0.05, 0.06, 0.12, 0.08, 0.15, 0.02, 0.05, 0.07),
    channel_p=(0.50, 0.25, 0.07, 0.18),
    country_p=(0.30, 0.15, 0.12, 0.10, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03),
    amount_scale=1.0,
    card_testing_rate=0.0,
    id_offset=0,
)
_DRIFTED = _Regime(
    category_p=(0.18, 0.14, 0.06, 0.08, 0.08, 0.08, 0.22, 0.03, 0.07, 0.06),
    channel_p=(0.28, 0.37, 0.04, 0.31),
    country_p=(0.22, 0.12, 0.10, 0.08, 0.07, 0.06, 0.05, 0.12, 0.10, 0.08),
    amount_scale=1.5,
    card_testing_rate=0.006,
    id_offset=10**8,
)

_Style = Callable[[pd.Series], pd.Series]
_CATEGORY_STYLES: tuple[_Style, ...] = (
    lambda s: " " + s.str.upper() + " ",  # " GROCERY "
    lambda s: s.str.replace("_", " ").str.title(),  # "Online Retail"
    lambda s: s.str.replace("_", "-").str.capitalize(),  # "Online-retail"
)
_CHANNEL_STYLES: tuple[_Style, ...] = (
    lambda s: s.str.upper(),  # "POS"
    lambda s: " " + s.str.capitalize(),  # " Online"
)
_COUNTRY_STYLES: tuple[_Style, ...] = (
    lambda s: s.str.upper(),  # "US"
    lambda s: " " + s + " ",
    lambda s: s.str.upper() + " ",
)
_CATEGORY_ALIASES: dict[str, tuple[str, ...]] = {
    "online_retail": ("e-commerce", "ecommerce"),
    "fuel": ("petrol",),
}
_CHANNEL_ALIASES: dict[str, tuple[str, ...]] = {
    "online": ("ON-LINE", "on-line"),
    "contactless": ("tap", "TAP"),
}
_JUNK_AFFIXES = np.array([("$", ""), (" ", " "), ("", " USD"), ("EUR ", "")], dtype=object)


def generate_transactions(
    n_rows: int = 200_000,
    *,
    seed: int = 7,
    start: str = "2026-01-01",
    months: int = 6,
    drifted: bool = False,
    messy: bool = True,
) -> pd.DataFrame:
    """Generate synthetic card transactions with learnable fraud and realistic mess.

    Args:
        n_rows: Number of rows returned (exactly, duplicates included); at least 100.
        seed: Seed for `np.random.default_rng`; the same arguments give the same frame.
        start: First day of the normal period (anything `pd.Timestamp` parses).
        months: Length of the period in calendar months; at least 1.
        drifted: Emit the period after the normal one (from `start + months`), with more
            online and contactless traffic, ~1.5x larger amounts, another country mix and
            a new fraud pattern (contactless card-testing bursts of tiny amounts). It uses a
            seed derived from `seed` and transaction ids from 10**8 on, so neither rows nor
            ids collide with the normal period.
        messy: Damage the clean table like a real export: ~1% of amounts are junk strings
            (the column becomes object dtype), ~0.2% out of range and ~0.5% missing;
            ~2% inconsistent spellings or aliases of categories, ~3% of countries in upper
            case or with stray spaces; missing categories, devices, ages and account ages;
            ~0.1% impossible ages; ~0.5% exact duplicate rows replacing others.

    Returns:
        A frame with the columns of `COLUMNS`, sorted by `event_time` (apart from the
        duplicates, which sit at random positions). `is_fraud` is computed from the clean
        values before any damage.

    Raises:
        ValueError: `n_rows` is below 100 or `months` below 1.
    """
    if n_rows < 100:
        raise ValueError(f"n_rows must be at least 100, got {n_rows}")
    if months < 1:
        raise ValueError(f"months must be at least 1, got {months}")
    regime = _DRIFTED if drifted else _NORMAL
    rng = np.random.default_rng((seed, 1) if drifted else seed)
    period_start = pd.Timestamp(start) + pd.DateOffset(months=months if drifted else 0)
    frame = _clean_frame(rng, n_rows, period_start, months, regime)
    return _make_messy(frame, rng) if messy else frame


def _clean_frame(
    rng: np.random.Generator, n: int, start: pd.Timestamp, months: int, regime: _Regime
) -> pd.DataFrame:
    times = _event_times(rng, n, start, start + pd.DateOffset(months=months))
    hour = pd.DatetimeIndex(times).hour.to_numpy().astype(np.int64)

    n_customers = max(n // 20, 5)
    activity = rng.gamma(1.5, 1.0, n_customers)
    home = rng.choice(len(COUNTRIES), n_customers, p=regime.country_p)
    age = np.clip(np.round(18 + rng.gamma(3.0, 8.0, n_customers)), 18, 90)
    account_age = np.round(
        np.where(
            rng.random(n_customers) < 0.04,
            rng.uniform(0, 60, n_customers),
            np.minimum(rng.exponential(1100, n_customers), 7300),
        )
    )
    spend = regime.amount_scale * rng.lognormal(3.6, 0.5, n_customers)
    cust = rng.choice(n_customers, n, p=activity / activity.sum())

    cat = rng.choice(len(CATEGORIES), n, p=regime.category_p)
    channel = rng.choice(len(CHANNELS), n, p=regime.channel_p)
    channel[cat == CATEGORIES.index("online_retail")] = CHANNELS.index("online")
    abroad = rng.random(n) < np.where(cat == CATEGORIES.index("travel"), 0.35, 0.03)
    country = np.where(abroad, rng.integers(0, len(COUNTRIES), n), home[cust])
    distance = rng.lognormal(1.2, 1.1, n) + abroad * rng.uniform(300, 9000, n)
    avg_30d = spend[cust] * rng.lognormal(0.0, 0.15, n)
    amount = spend[cust] * _CATEGORY_SCALE[cat] * rng.lognormal(0.0, _CATEGORY_SIGMA[cat])
    amount *= np.where(rng.random(n) < 0.02, rng.lognormal(1.8, 0.5, n), 1.0)  # spend spikes
    txn_count = rng.poisson(0.5 + activity[cust]) + (rng.random(n) < 0.015) * rng.poisson(12, n)

    card_testing = rng.random(n) < regime.card_testing_rate
    channel[card_testing] = CHANNELS.index("contactless")
    amount[card_testing] = rng.uniform(0.5, 5.0, card_testing.sum())
    txn_count[card_testing] += rng.poisson(15, card_testing.sum())

    device = _devices(rng, channel)
    new_device_p = np.where(channel == CHANNELS.index("online"), 0.08, 0.02)
    frame = pd.DataFrame(
        {
            "transaction_id": _ids("tx_%08d", regime.id_offset + 1 + np.arange(n)),
            "event_time": times,
            "customer_id": _ids("c_%06d", cust),
            "amount": np.clip(amount, 0.5, _MAX_AMOUNT).round(2),
            "merchant_category": _labels(CATEGORIES, cat),
            "channel": _labels(CHANNELS, channel),
            "country": _labels(COUNTRIES, country),
            "device_type": _labels(DEVICE_TYPES, device),
            "customer_age": age[cust],
            "account_age_days": account_age[cust],
            "distance_from_home_km": np.minimum(distance, 20_000).round(1),
            "txn_count_24h": txn_count.astype(np.int64),
            "avg_amount_30d": avg_30d.round(2),
            "hour_of_day": hour,
            "is_new_device": (rng.random(n) < new_device_p).astype(np.int64),
        }
    )
    fraud_p = 1 / (1 + np.exp(-_fraud_logit(frame)))
    frame["is_fraud"] = (rng.random(n) < fraud_p).astype(np.int64)
    return frame


def _event_times(
    rng: np.random.Generator, n: int, start: pd.Timestamp, end: pd.Timestamp
) -> np.ndarray:
    """Sorted timestamps over [start, end): uniform days, hours from a daily cycle."""
    day = rng.integers(0, (end - start).days, n)
    second = day * 86_400 + rng.choice(24, n, p=_HOURLY) * 3_600 + rng.integers(0, 3_600, n)
    return np.sort(start.to_datetime64() + second.astype("timedelta64[s]")).astype("datetime64[ns]")


def _devices(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """Terminal at pos/atm, a phone for some contactless taps, any device online."""
    terminal = DEVICE_TYPES.index("pos_terminal")
    own_device = rng.choice(3, channel.size, p=(0.55, 0.35, 0.10))  # mobile, desktop, tablet
    tap_phone = rng.random(channel.size) < 0.35
    return np.select(
        [channel == CHANNELS.index("online"), channel == CHANNELS.index("contactless")],
        [own_device, np.where(tap_phone, DEVICE_TYPES.index("mobile"), terminal)],
        terminal,
    )


def _fraud_logit(frame: pd.DataFrame) -> np.ndarray:
    """Latent fraud score of the clean frame; every term is a pattern a model can learn."""
    amount, txn_count = frame["amount"], frame["txn_count_24h"]
    online_risky = frame["channel"].eq("online") & frame["merchant_category"].isin(_RISKY_ONLINE)
    card_testing = frame["channel"].eq("contactless") & (amount < 5) & (txn_count >= 8)
    score = (
        _INTERCEPT
        + 1.6 * np.clip(np.log(amount / frame["avg_amount_30d"]) - 0.5, 0.0, 4.0)  # spend spike
        + 1.5 * (frame["hour_of_day"] < 6)  # night
        + 1.8 * frame["is_new_device"]
        + 0.6 * np.log1p(frame["distance_from_home_km"] / 50)  # far from home
        + 2.2 * online_risky
        + 0.3 * np.minimum(txn_count, 15)  # bursts of activity
        + 1.5 * (frame["account_age_days"] < 30)  # young accounts
        + frame["country"].map(_COUNTRY_RISK).fillna(0.0)
        + 4.0 * card_testing
    )
    return score.to_numpy()


def _ids(pattern: str, numbers: np.ndarray) -> np.ndarray:
    return np.char.mod(pattern, numbers).astype(object)


def _labels(names: tuple[str, ...], codes: np.ndarray) -> np.ndarray:
    return np.array(names, dtype=object)[codes]


def _make_messy(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    n = len(frame)
    frame["amount"] = _mess_amount(rng, frame["amount"].to_numpy())
    for column, rate, styles, aliases in (
        ("merchant_category", 0.02, _CATEGORY_STYLES, _CATEGORY_ALIASES),
        ("channel", 0.02, _CHANNEL_STYLES, _CHANNEL_ALIASES),
        ("country", 0.03, _COUNTRY_STYLES, {}),
    ):
        frame[column] = _respell(rng, frame[column].to_numpy(), rate, styles, aliases)
    bad_age = rng.random(n) < 0.001
    frame.loc[bad_age, "customer_age"] = rng.choice([0.0, -5.0, 150.0, 999.0], bad_age.sum())
    for column, rate in (
        ("merchant_category", 0.005),
        ("channel", 0.003),
        ("device_type", 0.03),
        ("customer_age", 0.02),
        ("account_age_days", 0.01),
    ):
        frame.loc[rng.random(n) < rate, column] = np.nan
    return _duplicate_rows(rng, frame, rate=0.005)


def _mess_amount(rng: np.random.Generator, amount: np.ndarray) -> np.ndarray:
    """Object column: ~1% junk strings, ~0.2% negative or absurd, ~0.5% missing."""
    out = amount.astype(object)
    u = rng.random(amount.size)
    junk = np.flatnonzero(u < 0.01)
    text = pd.Series(amount[junk]).map("{:,.2f}".format).to_numpy(dtype=object)
    prefix, suffix = _JUNK_AFFIXES[rng.integers(0, len(_JUNK_AFFIXES), junk.size)].T
    out[junk] = prefix + text + suffix
    wild = np.flatnonzero((u >= 0.01) & (u < 0.012))
    out[wild] = np.where(
        rng.random(wild.size) < 0.5,
        -rng.uniform(1.0, 500.0, wild.size),
        rng.uniform(1e6, 5e7, wild.size),
    ).round(2)
    out[(u >= 0.012) & (u < 0.017)] = np.nan
    return out


def _respell(
    rng: np.random.Generator,
    values: np.ndarray,
    rate: float,
    styles: tuple[_Style, ...],
    aliases: dict[str, tuple[str, ...]],
) -> np.ndarray:
    """Rewrite ~`rate` of the values in a random style, and ~`rate` of aliased ones as an alias."""
    out = values.copy()
    picked = np.flatnonzero(rng.random(values.size) < rate)
    style = rng.integers(0, len(styles), picked.size)
    for k, restyle in enumerate(styles):
        rows = picked[style == k]
        out[rows] = restyle(pd.Series(values[rows], dtype=object)).to_numpy(dtype=object)
    for canonical, names in aliases.items():
        rows = np.flatnonzero((values == canonical) & (rng.random(values.size) < rate))
        out[rows] = np.array(names, dtype=object)[rng.integers(0, len(names), rows.size)]
    return out


def _duplicate_rows(rng: np.random.Generator, frame: pd.DataFrame, rate: float) -> pd.DataFrame:
    """Replace ~`rate` of the rows by exact copies of others, inserted at random positions."""
    n = len(frame)
    k = max(1, round(rate * n))
    keep = np.delete(np.arange(n), rng.choice(n, k, replace=False))
    order = np.insert(keep, rng.integers(0, n - k + 1, k), rng.choice(keep, k))
    return frame.iloc[order].reset_index(drop=True)
