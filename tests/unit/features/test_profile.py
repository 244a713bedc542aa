"""Data tests for the table profiler behind `make init-config`: each inference rule and error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import normalise_category
from features.profile import ProfileError, TableProfile, profile_table

pytestmark = pytest.mark.data

ROWS = 400


def table(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A small table with one column per role, and a label that depends on two of them."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 1.0, rows)
    amount[rng.random(rows) < 0.05] = np.nan
    channel = rng.choice(["POS", "online", "On Line", "atm"], rows)
    risk = np.nan_to_num(np.log(amount)) + (channel == "online") + rng.normal(0, 1.5, rows)
    return pd.DataFrame(
        {
            "amount": amount,
            "age": rng.integers(18, 80, rows),
            "flag": rng.integers(0, 2, rows),
            "score": rng.integers(1, 11, rows),
            "area_code": rng.choice([408, 415, 510], rows),
            "member": rng.random(rows) < 0.5,
            "channel": channel,
            "label": (risk > np.quantile(risk, 0.85)).astype(int),
        }
    )


def excluded(profile: TableProfile) -> dict[str, str]:
    return {e.column: e.kind for e in profile.excluded}


def test_roles_follow_the_stated_rule():
    profile = profile_table(table(), "label")
    assert profile.numeric == ("amount", "age", "flag", "score")  # 0/1 flags, 1-10 scores
    assert profile.categorical == ("area_code", "member", "channel")  # codes, bools, text
    assert profile.excluded == ()


def test_contract_facts_are_read_like_the_contract_reads_them():
    frame = table()
    profile = profile_table(frame, "label")
    facts = {c.name: c for c in profile.features}
    amount = facts["amount"]
    assert amount.minimum == frame["amount"].min() and amount.maximum == frame["amount"].max()
    assert amount.median == frame["amount"].median() and not amount.integer
    assert amount.null_fraction == pytest.approx(frame["amount"].isna().mean())
    assert facts["age"].integer
    assert set(facts["channel"].categories) == set(normalise_category(frame["channel"]))
    assert set(facts["channel"].categories) == {"pos", "online", "on_line", "atm"}
    assert facts["member"].categories in {("true", "false"), ("false", "true")}
    assert set(facts["area_code"].categories) == {"408", "415", "510"}
    assert profile.quarantine_fraction == 0.0 and profile.duplicate_rows == 0
    assert profile.positive_rate == pytest.approx(frame["label"].mean())


def test_id_like_columns_are_excluded():
    frame = table()
    frame.insert(0, "rownames", np.arange(1, ROWS + 1))  # a run of unique integers
    frame["customerId"] = np.arange(ROWS) % 50  # named like an id, not unique
    frame["reference"] = [f"r-{i:05d}" for i in np.random.default_rng(1).permutation(ROWS)]
    frame["balance_cents"] = np.random.default_rng(2).permutation(ROWS) * 7 + 3  # unique, no run
    profile = profile_table(frame, "label")
    assert excluded(profile) == {"rownames": "id", "customerId": "id", "reference": "id"}
    assert "balance_cents" in profile.numeric
    assert profile.id_column is None  # no repeated rows: nothing to keep apart


def test_constant_columns_are_excluded():
    frame = table().assign(country="us", empty=np.nan)
    assert excluded(profile_table(frame, "label")) == {"country": "constant", "empty": "constant"}


def test_a_constant_is_named_as_the_data_holds_it():
    profile = profile_table(table().assign(study=np.int64(1), site="a"), "label")
    reasons = {e.column: e.reason for e in profile.excluded}
    assert reasons == {
        "study": "is constant (always 1): it carries no information",
        "site": "is constant (always 'a'): it carries no information",
    }


def test_an_id_that_repeats_becomes_the_split_group():
    frame = table().assign(patient_id=np.arange(ROWS) // 2, row_id=np.arange(ROWS),
                           site_id=np.arange(ROWS) % 5)  # fmt: skip
    profile = profile_table(frame, "label")
    assert profile.group_column == "patient_id"  # the unique row_id names no entity
    notes = [n for n in profile.notes if "entity" in n]
    assert notes == [
        "'patient_id' repeats (200 values on 400 rows): read as an entity; split.group_column "
        "keeps each value's rows in one of train / validation / test, so the test score is not "
        "flattered by entities seen in training (remove that line if its rows are not one "
        "entity's)",
        "'site_id' repeats (5 values on 400 rows): if it names an entity, a random split puts "
        "the same entity in train and test and the test score flatters the model; pass it as "
        "--group (make: GROUP=) or split by time (--time)",
    ]  # five sites are too few groups to split on
    timed = profile_table(frame.assign(at=np.arange(ROWS)), "label", time_column="at",
                          time_unit="s")  # fmt: skip
    assert timed.group_column is None and not [n for n in timed.notes if "entity" in n]


def test_a_column_named_for_a_person_that_repeats_is_a_key_and_the_group():
    frame = table().assign(Subject=np.arange(ROWS) % 40, customer=np.arange(ROWS) % 3)
    profile = profile_table(frame, "label")
    reasons = {e.column: e.reason for e in profile.excluded}
    assert reasons["Subject"] == "names an entity (40 values on 400 rows): a key, not a feature"
    assert profile.group_column == "Subject"
    assert "customer" in profile.numeric + profile.categorical  # 3 values: a segment, a feature


def test_a_named_group_is_not_a_feature_and_needs_enough_groups():
    frame = table().assign(clinic=np.arange(ROWS) % 40, ward=np.arange(ROWS) % 4)
    profile = profile_table(frame, "label", group_column="clinic")
    assert profile.group_column == "clinic"
    assert "clinic" not in profile.numeric + profile.categorical
    with pytest.raises(ProfileError, match="--group column 'ward' has 4 values; a grouped split"):
        profile_table(frame, "label", group_column="ward")
    with pytest.raises(ProfileError, match="cannot be the --id column or come with --time"):
        profile_table(frame.assign(at=np.arange(ROWS)), "label", group_column="clinic",
                      time_column="at", time_unit="s")  # fmt: skip
    with pytest.raises(ProfileError, match="--group column 'nope' is not in the table"):
        profile_table(frame, "label", group_column="nope")


def test_a_fractional_class_is_refused_by_its_value():
    frame = table().assign(label=lambda f: f["label"] * 0.5)
    with pytest.raises(ProfileError, match=r"non-integer class 0.5;"):
        profile_table(frame, "label", positive_label="0.5")


def test_dates_are_excluded_with_a_hint_to_use_them_as_time():
    frame = table()
    stamps = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(ROWS), unit="h")
    frame["signup"] = stamps.strftime("%Y-%m-%d %H:%M")
    frame["event_time"] = stamps
    frame["Signed Up"] = stamps.strftime("%d/%m/%Y")
    profile = profile_table(frame, "label")
    assert excluded(profile) == {"signup": "time", "event_time": "time", "Signed Up": "time"}
    reasons = {e.column: e.reason for e in profile.excluded}
    assert "--time signup (make: TIME=signup)" in reasons["signup"]
    assert "--time 'Signed Up' (make: TIME='Signed Up')" in reasons["Signed Up"]  # pasteable
    timed = profile_table(frame, "label", time_column="event_time")
    assert timed.time_column == "event_time" and "event_time" not in excluded(timed)


def test_high_cardinality_text_is_excluded():
    frame = table()
    frame["comment"] = [f"note {i % 300}" for i in range(ROWS)]
    profile = profile_table(frame, "label")
    assert excluded(profile) == {"comment": "text"}
    assert "300 values" in profile.excluded[0].reason


def test_near_duplicates_keep_the_first_column():
    frame = table()
    noise = np.random.default_rng(3).normal(0, 0.01, ROWS)
    frame["amount_cents"] = frame["amount"] * 100 + noise
    frame["channel_code"] = frame["channel"].map({"POS": 1, "online": 2, "On Line": 7, "atm": 9})
    profile = profile_table(frame, "label")
    assert excluded(profile) == {"amount_cents": "duplicate", "channel_code": "duplicate"}
    reasons = {e.column: e.reason for e in profile.excluded}
    assert "'amount'" in reasons["amount_cents"] and "'channel'" in reasons["channel_code"]


def test_numeric_duplicates_are_read_over_the_rows_both_columns_have():
    frame = table()
    rng = np.random.default_rng(5)
    shifted = frame["age"] + 1e9  # a large offset: no cancellation in the correlation
    shifted[rng.random(ROWS) < 0.3] = np.nan
    frame["age_epoch"] = shifted
    frame["minus_amount"] = -2.0 * frame["amount"]  # same NaNs as amount, negated
    frame["age_noisy"] = frame["age"] + rng.normal(0, 3, ROWS)  # |corr| about 0.98: kept
    frame["constant"] = 3.0
    profile = profile_table(frame, "label")
    assert excluded(profile) == {
        "age_epoch": "duplicate", "minus_amount": "duplicate", "constant": "constant"
    }  # fmt: skip
    reasons = {e.column: e.reason for e in profile.excluded}
    assert "'age' (|correlation| 1.000)" in reasons["age_epoch"]
    assert "'amount'" in reasons["minus_amount"]


def test_the_vectorised_correlation_is_pandas_pairwise_correlation():
    from features.profile import _KeptNumbers

    rng = np.random.default_rng(6)
    base = rng.normal(0, 1, 500)
    columns = {
        "a": pd.Series(base + rng.normal(0, 0.05, 500)),
        "b": pd.Series(np.where(rng.random(500) < 0.2, np.nan, 1e6 + base)),
        "c": pd.Series(rng.normal(0, 1, 500)),
    }
    probe = pd.Series(np.where(rng.random(500) < 0.1, np.nan, -base))
    for name, values in columns.items():
        kept = _KeptNumbers(500, 1)
        kept.add(name, values)
        expected = abs(probe.corr(values))
        found = kept.twin(probe)
        if expected > 0.99:
            assert found is not None and found[0] == name
            assert found[1] == pytest.approx(expected, abs=1e-9)
        else:
            assert found is None


def test_the_correlation_check_reads_every_nth_row_of_a_huge_table(monkeypatch):
    from features import profile

    monkeypatch.setattr(profile, "TWIN_CELLS", 300)  # 500 rows x 2 columns: every 4th row
    rng = np.random.default_rng(8)
    base = pd.Series(rng.normal(0, 1, 500))
    kept = profile._KeptNumbers(500, 2)
    kept.add("base", base)
    kept.add("noise", pd.Series(rng.normal(0, 1, 500)))
    twin = base.copy()
    twin.iloc[1::4] = -base.iloc[1::4]  # rows the check does not read
    assert kept.twin(twin) == ("base", pytest.approx(1.0))
    assert kept.twin(pd.Series(rng.normal(0, 1, 500))) is None


def test_the_leak_screen_auc_is_sklearns_ties_included():
    from sklearn.metrics import roc_auc_score

    from features.profile import _auc

    rng = np.random.default_rng(7)
    target = rng.integers(0, 2, 300)
    for score in (rng.normal(0, 1, 300), rng.integers(0, 4, 300).astype(float)):  # ties
        assert _auc(target, score) == pytest.approx(roc_auc_score(target, score), abs=1e-12)


def test_a_column_that_predicts_the_target_alone_is_a_leak():
    frame = table()
    rng = np.random.default_rng(4)
    frame["outcome"] = np.where(frame["label"] == 1, "won", "lost")
    frame["refund"] = frame["label"] * 50 + rng.normal(0, 1, ROWS)
    frame["missing_when_positive"] = np.where(frame["label"] == 1, np.nan, rng.normal(0, 1, ROWS))
    profile = profile_table(frame, "label")
    assert excluded(profile) == {
        "outcome": "leak",
        "refund": "leak",
        "missing_when_positive": "leak",
    }
    reasons = {e.column: e.reason for e in profile.excluded}
    assert "copy of the target" in reasons["outcome"]
    assert "ROC-AUC" in reasons["refund"]


def test_a_column_almost_as_strong_as_a_leak_is_kept_with_a_warning():
    frame = table()  # like a card's spend: none without a card, and little for a few with one
    positives = np.flatnonzero(frame["label"] == 1)
    spend = np.where(frame["label"] == 1, np.random.default_rng(5).lognormal(5, 1, ROWS), 0.0)
    spend[positives[:2]] = 0.0
    profile = profile_table(frame.assign(spend=spend), "label")
    auc = 1 - 0.5 * 2 / len(positives)  # the two tied positives score half
    assert "spend" in profile.numeric and excluded(profile) == {}
    assert [n for n in profile.notes if "'spend'" in n] == [
        f"'spend' predicts the target strongly on its own (ROC-AUC {auc:.4f}); kept, but check "
        "it is known before the outcome (else exclude it: a leak)"
    ]


def test_numbers_formatted_as_a_sheet_shows_them_are_numeric():
    rng, frame = np.random.default_rng(6), table()
    income, usage = rng.integers(500, 90_000, ROWS), rng.integers(0, 101, ROWS)
    frame["income"] = [f"${v:,}" for v in income]  # "$45,000"
    frame["usage"] = [f"{v}%" for v in usage]  # "70%", read as 70
    facts = {c.name: c for c in profile_table(frame, "label").features}
    assert facts["income"].role == facts["usage"].role == "numeric"
    assert (facts["income"].maximum, facts["usage"].maximum) == (income.max(), usage.max())


def test_text_labels_are_read_whatever_their_case_or_spaces():
    frame = table().assign(label=lambda f: np.where(f["label"] == 1, "Yes", "No").astype(object))
    frame.loc[:9, "label"] = frame.loc[:9, "label"].map({"Yes": "yes ", "No": " NO"})
    profile = profile_table(frame, "label")
    assert profile.class_counts == {"No": 340, "Yes": 60}
    assert profile.positive_label == "Yes" and profile.positive_rate == pytest.approx(0.15)
    respelt = [n for n in profile.notes if "surrounding spaces" in n]
    assert len(respelt) == 1 and respelt[0].startswith("target 'label': 10 labels differ")
    assert profile_table(frame, "label", positive_label="YES").positive_label == "Yes"


def test_numbers_stored_as_text_are_numeric_and_junk_is_counted():
    frame = table()
    price = frame["age"].astype(float).map("{:.2f}".format).astype(object)
    price[:4] = "$1,250.00"  # repaired by the contract
    price[4:10] = "ask us"  # unparsable: quarantined
    price[10:50] = ["unknown", "-"] * 20  # 10% words for no value: missing, not junk
    frame["price"] = price
    frame["grade"] = np.random.default_rng(5).choice(["1st", "2nd", "3rd"], ROWS)
    profile = profile_table(frame, "label")
    facts = {c.name: c for c in profile.features}
    assert facts["price"].role == "numeric" and facts["price"].maximum == 1250.0
    assert facts["price"].null_fraction == pytest.approx(40 / ROWS)
    assert facts["grade"].role == "categorical"  # '1st' is text, not the number 1
    assert profile.quarantine_fraction == pytest.approx(6 / ROWS)
    assert any("'price'" in note and "6 values" in note for note in profile.notes)
    assert "'price': 40 values such as 'unknown', '-' read as missing" in profile.notes


@pytest.mark.parametrize(
    ("values", "expected", "reason"),
    [
        ([0, 1], 1, "conventional"),
        (["No", "Yes"], "Yes", "conventional"),
        ([False, True], 1, "conventional"),
        (["benign", "malignant"], "malignant", "minority"),
        ([1, 2], 2, "minority"),
    ],
)
def test_the_positive_label_is_inferred(values, expected, reason):
    frame = table()
    rare = frame["label"] == 1  # 15%: the minority
    frame["label"] = np.where(rare, values[1], values[0])
    if isinstance(values[0], bool):
        frame["label"] = frame["label"].astype(bool)
    profile = profile_table(frame, "label")
    assert profile.positive_label == expected and type(profile.positive_label) is type(expected)
    assert reason in profile.label_reason


def test_yes_is_positive_even_when_it_is_the_majority():
    frame = table()
    frame["label"] = np.where(frame["label"] == 1, "no", "yes")
    profile = profile_table(frame, "label")
    assert profile.positive_label == "yes" and profile.positive_rate == pytest.approx(0.85)


def test_a_given_positive_label_is_matched_as_text_or_number():
    frame = table()
    assert profile_table(frame, "label", positive_label="0").positive_label == 0
    frame["label"] = frame["label"].astype(float)
    assert profile_table(frame, "label", positive_label="1").positive_label == 1
    with pytest.raises(
        ProfileError, match=r"--positive-label 'yes' is not a class.*\['0.0', '1.0'\]"
    ):
        profile_table(frame, "label", positive_label="yes")


def test_rows_that_repeat_keep_a_unique_id_or_are_counted_as_dropped():
    frame = pd.concat([table(), table().head(100)], ignore_index=True)  # 100 repeated rows
    plain = profile_table(frame, "label")
    assert plain.duplicate_rows == 100 and plain.id_column is None
    assert plain.positive_rate == pytest.approx(table()["label"].mean())  # without the repeats
    assert any("100 rows" in note for note in plain.notes)
    frame.insert(0, "rownames", np.arange(len(frame)))
    kept = profile_table(frame, "label")
    assert kept.id_column == "rownames" and kept.duplicate_rows == 0
    assert excluded(kept) == {"rownames": "id"}


def test_rows_of_discrete_columns_repeat_by_nature_and_are_kept():
    rng = np.random.default_rng(10)
    frame = pd.DataFrame({"band": rng.integers(0, 4, ROWS), "label": rng.integers(0, 2, ROWS)})
    profile = profile_table(frame, "label")
    assert profile.duplicate_rows == 0 and profile.natural_repeats == ROWS - 8
    assert profile.positive_rate == pytest.approx(frame["label"].mean())
    assert any("repeat by nature" in note for note in profile.notes)
    frame["reading"] = rng.normal(0, 1, ROWS)  # a measurement: repeats are now copies
    doubled = pd.concat([frame, frame.head(50)], ignore_index=True)
    copies = profile_table(doubled, "label")
    assert copies.duplicate_rows == 50 and copies.natural_repeats == 0


def test_a_given_id_with_repeats_is_counted_as_quarantined():
    frame = table()
    frame.insert(0, "tx", [f"t{i % (ROWS - 8)}" for i in range(ROWS)])  # 8 repeated ids
    profile = profile_table(frame, "label", id_column="tx")
    assert profile.id_column == "tx" and profile.quarantine_fraction == pytest.approx(8 / ROWS)
    assert any("'tx'" in note and "8 missing or repeated" in note for note in profile.notes)


def test_unlabelled_rows_and_bad_timestamps_are_counted_as_quarantined():
    frame = table()
    frame["label"] = frame["label"].astype(float)
    frame.loc[:9, "label"] = np.nan
    frame["ts"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(ROWS), unit="min")
    frame["ts"] = frame["ts"].astype(str)
    frame.loc[10:14, "ts"] = "not a time"
    profile = profile_table(frame, "label", time_column="ts")
    assert profile.quarantine_fraction == pytest.approx(15 / ROWS)
    assert len(profile.notes) == 2


def test_column_names_are_kept_as_the_table_spells_them():
    frame = table().rename(columns={"amount": "amount (usd)", "age": "2nd.age"})
    profile = profile_table(frame, "label")
    assert profile.numeric[:2] == ("amount (usd)", "2nd.age")  # the export keeps them too
    assert profile.notes == ()


def test_slices_are_the_most_even_small_categoricals():
    frame = table()
    frame["tier"] = np.where(np.arange(ROWS) < 8, "gold", "basic")  # uneven: 2% gold
    profile = profile_table(frame, "label")
    assert profile.slices == ("member", "area_code")  # about 50/50, then about 1/3 each
    assert "tier" not in profile.slices


# -- errors name the column and the problem ------------------------------------------------------


def test_a_missing_target_lists_the_columns():
    with pytest.raises(ProfileError, match=r"target column 'y' is not in the table.*'amount'"):
        profile_table(table(), "y")


@pytest.mark.parametrize("flag", ["id_column", "time_column"])
def test_a_missing_id_or_time_column_is_named(flag):
    option = "--id" if flag == "id_column" else "--time"
    with pytest.raises(ProfileError, match=rf"{option} column 'nope' is not in the table"):
        profile_table(table(), "label", **{flag: "nope"})


def test_a_single_class_is_refused():
    with pytest.raises(ProfileError, match=r"target 'label' has a single class \('0', 400 rows\)"):
        profile_table(table().assign(label=0), "label")


def test_more_than_two_classes_are_listed():
    frame = table().assign(label=lambda f: f["channel"])
    with pytest.raises(ProfileError, match=r"4 classes, binary is needed: \['On Line', 'POS'"):
        profile_table(frame, "label")
    assert not profile_table(table(), "label").one_vs_rest


def test_a_named_class_of_several_is_modelled_against_the_others():
    frame = table().assign(label=lambda f: f["channel"])
    counts = frame["label"].value_counts()
    profile = profile_table(frame, "label", positive_label="pos")
    assert profile.one_vs_rest and profile.positive_label == "POS"
    assert profile.positive_rate == pytest.approx(counts["POS"] / len(frame))
    assert profile.class_counts == counts.to_dict()
    # the named class must have its rows; the others together too
    rare = frame.assign(label=np.where(np.arange(ROWS) < 5, "a", frame["label"]))
    with pytest.raises(ProfileError, match=r"too few rows of class\(es\) \{'a': 5\}"):
        profile_table(rare, "label", positive_label="a")
    with pytest.raises(ProfileError, match=r"'nope' is not a class of target 'label'"):
        profile_table(frame, "label", positive_label="nope")


def test_too_few_rows_of_a_class_are_refused():
    frame = table().assign(label=0)
    frame.loc[:4, "label"] = 1
    with pytest.raises(ProfileError, match=r"too few rows of class\(es\) \{'1': 5\}"):
        profile_table(frame, "label")


def test_no_usable_feature_left_is_refused_with_the_reasons():
    frame = table()[["label"]].assign(country="us", row_id=np.arange(ROWS))
    with pytest.raises(ProfileError, match=r"no usable feature left.*'country' is constant"):
        profile_table(frame, "label")
