"""Data tests for the row-level contract: repairs, quarantine reasons and output shape."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.contract import (
    QUARANTINE_REASON,
    CleanResult,
    ContractError,
    check_columns,
    clean_rows,
    normalise_category,
    required_columns,
)
from features.fraud_data import generate_transactions

pytestmark = pytest.mark.data

MINI_COLUMNS = ["tx_id", "ts", "amount", "age", "channel", "label"]


def reason_of(result: CleanResult, tx_id: str) -> str:
    rows = result.quarantine.loc[result.quarantine["tx_id"] == tx_id, QUARANTINE_REASON]
    assert len(rows) == 1, f"{tx_id} is not quarantined exactly once"
    return rows.iloc[0]


def clean_ids(result: CleanResult) -> list[str]:
    return result.clean["tx_id"].tolist()


# --- hand-built frames -------------------------------------------------------------------


def test_required_columns_order(mini) -> None:
    assert required_columns(mini) == MINI_COLUMNS


def test_clean_frame_passes_through(mini, mini_frame) -> None:
    result = clean_rows(mini_frame, mini)
    assert result.quarantine.empty
    assert result.quarantine_fraction == 0.0
    assert set(result.repairs.values()) == {0}
    assert list(result.clean.columns) == MINI_COLUMNS  # "note" is dropped
    assert clean_ids(result) == mini_frame["tx_id"].tolist()
    assert result.clean["amount"].tolist() == mini_frame["amount"].tolist()
    assert result.clean["age"].tolist() == [30.0, 45.0, 18.0, 110.0, 60.0, 25.0]  # bounds kept


def test_output_types(mini, mini_frame) -> None:
    frame = mini_frame.assign(ts=mini_frame["ts"].astype(str), amount=["1", 2, 3.5, "4", 5, 6])
    clean = clean_rows(frame, mini).clean
    assert list(clean.columns) == required_columns(mini)
    assert clean["amount"].dtype == np.float64
    assert clean["age"].dtype == np.float64
    assert clean["label"].dtype == np.int64
    assert set(clean["label"]) <= {0, 1}
    assert pd.api.types.is_datetime64_any_dtype(clean["ts"])
    assert clean["channel"].dtype == object
    assert clean.index.equals(pd.RangeIndex(len(clean)))


def test_exact_duplicates_dropped_and_counted(mini, mini_frame) -> None:
    # Only required columns decide: a copy that differs in an unused column is a duplicate too.
    other_note = mini_frame.iloc[[2]].assign(note="different")
    frame = pd.concat([mini_frame, mini_frame.iloc[[0, 0, 4]], other_note], ignore_index=True)
    result = clean_rows(frame, mini)
    assert result.repairs["exact duplicate rows dropped"] == 4
    assert clean_ids(result) == mini_frame["tx_id"].tolist()
    assert result.quarantine.empty  # exact copies are not "duplicate ids"


def test_numbers_with_junk_are_parsed_and_counted(mini, mini_frame) -> None:
    mini_frame["amount"] = pd.Series(
        ["$1,234.50", " 45.10 ", "12.30 USD", "EUR 7.00", 5, 6.5], dtype=object
    )
    result = clean_rows(mini_frame, mini)
    assert result.quarantine.empty
    assert result.clean["amount"].tolist() == [1234.5, 45.1, 12.3, 7.0, 5.0, 6.5]
    # " 45.10 " parses as it is; only the three that needed junk stripped count as repairs.
    assert result.repairs["amount: number parsed from text"] == 3
    assert result.repairs["age: number parsed from text"] == 0


@pytest.mark.parametrize("text", [" Unknown ", "-", ".", "N.A.", "#DIV/0!", "missing"])
def test_a_word_for_no_value_is_a_missing_number_not_junk(mini, mini_frame, text: str) -> None:
    mini_frame["amount"] = mini_frame["amount"].astype(object)
    mini_frame.loc[1, "amount"] = text
    result = clean_rows(mini_frame, mini)
    assert result.quarantine.empty  # SAS's '.', a sheet's '-' or '#DIV/0!': the row stays
    assert np.isnan(result.clean.loc[result.clean["tx_id"] == "t2", "amount"].iloc[0])
    assert result.repairs["amount: number parsed from text"] == 0


@pytest.mark.parametrize("text", ["twelve", "..", "USD", "1.2.3", "2,5", "1,2345"])
def test_unparsable_number_is_quarantined(mini, mini_frame, text: str) -> None:
    mini_frame["amount"] = mini_frame["amount"].astype(object)
    mini_frame.loc[1, "amount"] = text
    result = clean_rows(mini_frame, mini)
    assert reason_of(result, "t2") == f"amount: not a number ({text})"
    assert "t2" not in clean_ids(result)
    assert len(result.clean) == 5
    # The quarantine keeps the raw row as it came in.
    assert result.quarantine.loc[result.quarantine["tx_id"] == "t2", "amount"].iloc[0] == text
    assert result.quarantine_fraction == pytest.approx(1 / 6)


def test_missing_number_is_kept_as_nan(mini, mini_frame) -> None:
    mini_frame["amount"] = mini_frame["amount"].astype(object)
    mini_frame.loc[1, "amount"] = None
    result = clean_rows(mini_frame, mini)
    assert result.quarantine.empty
    assert np.isnan(result.clean.loc[1, "amount"])


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("age", 150, "age: above max 110 (150.0)"),
        ("age", 17, "age: below min 18 (17.0)"),
        ("amount", -0.01, "amount: below min 0 (-0.01)"),
        ("amount", 10000.5, "amount: above max 10000 (10000.5)"),
    ],
)
def test_out_of_range_is_quarantined(mini, mini_frame, column, value, reason) -> None:
    mini_frame[column] = mini_frame[column].astype(float)
    mini_frame.loc[2, column] = value
    result = clean_rows(mini_frame, mini)
    assert reason_of(result, "t3") == reason
    assert "t3" not in clean_ids(result)
    assert len(result.quarantine) == 1


def test_junk_number_out_of_range_is_quarantined_after_parsing(mini, mini_frame) -> None:
    mini_frame["amount"] = mini_frame["amount"].astype(object)
    mini_frame.loc[0, "amount"] = "$12,345.00"
    result = clean_rows(mini_frame, mini)
    assert reason_of(result, "t1") == "amount: above max 10000 (12345.0)"
    assert result.repairs["amount: number parsed from text"] == 1


def test_category_spellings_are_normalised(mini, mini_frame) -> None:
    mini_frame["channel"] = [" POS ", "Online", "TAP", "on-line", "ON  LINE", "pos"]
    result = clean_rows(mini_frame, mini)
    assert result.quarantine.empty
    assert result.clean["channel"].tolist() == [
        "pos",
        "online",
        "contactless",
        "online",
        "online",
        "pos",
    ]
    assert result.repairs["channel: spelling normalised"] == 5


def test_missing_category_stays_missing(mini, mini_frame) -> None:
    mini_frame["channel"] = ["pos", None, np.nan, "online", "pos", "pos"]
    result = clean_rows(mini_frame, mini)
    assert result.quarantine.empty
    assert result.clean["channel"].isna().tolist() == [False, True, True, False, False, False]
    assert result.repairs["channel: spelling normalised"] == 0


def test_unknown_category_is_quarantined(mini, mini_frame) -> None:
    mini_frame.loc[4, "channel"] = "Carrier Pigeon"
    result = clean_rows(mini_frame, mini)
    assert reason_of(result, "t5") == "channel: unknown category (carrier_pigeon)"
    assert "t5" not in clean_ids(result)


def test_category_without_rule_is_only_normalised(make_mini_config, mini_frame) -> None:
    config = make_mini_config(contract={"min_rows": 1})
    mini_frame.loc[4, "channel"] = "Carrier Pigeon"
    result = clean_rows(mini_frame, config)
    assert result.quarantine.empty
    assert result.clean.loc[4, "channel"] == "carrier_pigeon"


def test_missing_target_is_quarantined(mini, mini_frame) -> None:
    mini_frame["label"] = [0, 1, None, 0, 1, 0]
    result = clean_rows(mini_frame, mini)
    assert reason_of(result, "t3") == "label: missing target"
    assert result.clean["label"].tolist() == [0, 1, 0, 1, 0]
    assert result.clean["label"].dtype == np.int64


def test_repeats_are_kept_where_the_contract_says_rows_repeat_by_nature(mini, mini_frame):
    config = mini.model_copy(
        update={"contract": mini.contract.model_copy(update={"drop_duplicates": False})}
    )
    frame = pd.concat([mini_frame, mini_frame.iloc[[0, 0, 4]]], ignore_index=True)
    result = clean_rows(frame.drop(columns="tx_id"), config.model_copy(update={"id_column": None}))
    assert len(result.clean) == len(frame) and result.quarantine.empty
    assert result.repairs["exact duplicate rows dropped"] == 0


def test_duplicate_id_is_quarantined_and_first_kept(mini, mini_frame) -> None:
    mini_frame.loc[3, "tx_id"] = "t1"  # same id, different content
    result = clean_rows(mini_frame, mini)
    assert len(result.quarantine) == 1
    assert result.quarantine[QUARANTINE_REASON].iloc[0] == "tx_id: duplicate id"
    assert result.quarantine["amount"].iloc[0] == 999.0  # the later row went
    assert clean_ids(result) == ["t1", "t2", "t3", "t5", "t6"]
    assert result.clean.loc[0, "amount"] == 10.0


def test_unparsable_timestamp_is_quarantined(mini, mini_frame) -> None:
    mini_frame["ts"] = [f"2026-01-0{i} 10:00:00" for i in range(1, 7)]
    mini_frame.loc[5, "ts"] = "yesterday"
    result = clean_rows(mini_frame, mini)
    assert reason_of(result, "t6") == "ts: not a timestamp"
    assert result.clean["ts"].tolist() == list(pd.date_range("2026-01-01 10:00", periods=5))


def test_several_reasons_are_joined(mini, mini_frame) -> None:
    mini_frame["age"] = mini_frame["age"].astype(float)
    mini_frame.loc[0, "age"] = 999
    mini_frame.loc[0, "channel"] = "fax"
    mini_frame.loc[0, "label"] = None
    result = clean_rows(mini_frame, mini)
    assert reason_of(result, "t1") == (
        "age: above max 110 (999.0); channel: unknown category (fax); label: missing target"
    )


def test_missing_required_column_raises_naming_it(mini, mini_frame) -> None:
    with pytest.raises(ContractError) as info:
        clean_rows(mini_frame.drop(columns=["age", "label"]), mini)
    message = str(info.value)
    assert "['age', 'label']" in message
    assert "'mini'" in message
    with pytest.raises(ContractError, match=r"\['ts'\]"):
        check_columns(mini_frame.drop(columns=["ts"]), mini)
    check_columns(mini_frame, mini)  # all present: no error


@pytest.mark.parametrize(
    "labels",
    [[0, 1, 2, 0, 1, 0], ["yes", "no", "maybe", "no", "no", "yes"], [0.0, 1.0, 0.5, 0, 1, 0]],
)
def test_non_binary_target_raises(mini, mini_frame, labels) -> None:
    mini_frame["label"] = labels
    with pytest.raises(ContractError, match="'label' must be binary; found 3 values.*one_vs_rest"):
        clean_rows(mini_frame, mini)


def test_one_vs_rest_maps_the_positive_class_to_one_and_every_other_to_zero(
    make_mini_config, mini_frame
) -> None:
    config = make_mini_config(positive_label="Maybe", one_vs_rest=True)
    mini_frame["label"] = ["yes", "no", "maybe", "no", "MAYBE ", None]
    result = clean_rows(mini_frame, config)
    assert result.clean["label"].tolist() == [0, 0, 1, 0, 1]
    assert reason_of(result, "t6") == "label: missing target"
    config = make_mini_config(positive_label="perhaps", one_vs_rest=True)
    with pytest.raises(ContractError, match="positive_label 'perhaps' never occurs"):
        clean_rows(mini_frame, config)


def test_yes_no_target_maps_to_one_zero(make_mini_config, mini_frame) -> None:
    config = make_mini_config(positive_label="Yes")
    mini_frame["label"] = ["Yes", "No", "No", None, "Yes", "No"]
    result = clean_rows(mini_frame, config)
    assert result.clean["label"].tolist() == [1, 0, 0, 1, 0]
    assert result.clean["label"].dtype == np.int64
    assert reason_of(result, "t4") == "label: missing target"


def test_text_labels_are_one_class_whatever_their_case_or_spaces(make_mini_config, mini_frame):
    config = make_mini_config(positive_label="yes")  # matched whatever its case, too
    mini_frame["label"] = ["Yes", "No ", " no", "  ", "YES", "No"]
    result = clean_rows(mini_frame, config)
    assert result.clean["label"].tolist() == [1, 0, 0, 1, 0]
    assert reason_of(result, "t4") == "label: missing target"  # a blank label is no label
    assert result.repairs["label: label spelling normalised"] == 3  # 'No ', ' no', 'YES'


def test_numeric_target_with_boolean_and_float_values(mini, mini_frame) -> None:
    mini_frame["label"] = [0.0, 1.0, 0.0, 0.0, 1.0, np.nan]
    result = clean_rows(mini_frame, mini)
    assert result.clean["label"].tolist() == [0, 1, 0, 0, 1]
    mini_frame["label"] = [False, True, False, False, True, False]
    assert clean_rows(mini_frame, mini).clean["label"].tolist() == [0, 1, 0, 0, 1, 0]


def test_quarantine_fraction_counts_deduplicated_rows(mini, mini_frame) -> None:
    frame = pd.concat([mini_frame, mini_frame.iloc[[0, 1]]], ignore_index=True)
    frame.loc[5, "channel"] = "fax"
    result = clean_rows(frame, mini)
    assert (len(result.clean), len(result.quarantine)) == (5, 1)
    assert result.quarantine_fraction == pytest.approx(1 / 6)
    empty = CleanResult(clean=result.clean.iloc[:0], quarantine=result.quarantine.iloc[:0])
    assert empty.quarantine_fraction == 0.0


def test_input_frame_is_not_modified(mini, mini_frame) -> None:
    mini_frame["amount"] = pd.Series(["$1.00", 2, 3, 4, 5, 6], dtype=object)
    mini_frame.loc[0, "channel"] = "TAP"
    before = mini_frame.copy()
    clean_rows(mini_frame, mini)
    pd.testing.assert_frame_equal(mini_frame, before)


def test_normalise_category_directly() -> None:
    values = pd.Series([" Online Retail ", "E-Commerce", "petrol", None, np.nan, "a - b"])
    out = normalise_category(values, {"e_commerce": "online_retail", "petrol": "fuel"})
    assert out.iloc[:3].tolist() == ["online_retail", "online_retail", "fuel"]
    assert out.iloc[3:5].isna().all()
    assert out.iloc[5] == "a_b"
    assert normalise_category(pd.Series(["E-Commerce"])).tolist() == ["e_commerce"]


# --- a messy generated table with the fraud config ----------------------------------------


def test_generated_duplicates_dropped_and_counted(fraud_raw, fraud_config, fraud_cleaned) -> None:
    expected = int(fraud_raw[required_columns(fraud_config)].duplicated().sum())
    assert expected > 0
    assert fraud_cleaned.repairs["exact duplicate rows dropped"] == expected
    rows_out = len(fraud_cleaned.clean) + len(fraud_cleaned.quarantine) + expected
    assert rows_out == len(fraud_raw)
    assert fraud_cleaned.clean["transaction_id"].is_unique


def test_generated_junk_amounts_are_parsed(fraud_raw, fraud_cleaned) -> None:
    assert fraud_cleaned.repairs["amount: number parsed from text"] > 0
    text = fraud_raw.loc[fraud_raw["amount"].map(lambda v: isinstance(v, str))]
    text = text.drop_duplicates("transaction_id").set_index("transaction_id")["amount"]
    assert len(text) > 0
    clean = fraud_cleaned.clean.set_index("transaction_id")["amount"]
    kept = text[text.index.isin(clean.index)]
    assert len(kept) == len(text)  # every junk amount of the generator is rescued
    expected = kept.str.replace(r"[^0-9.]", "", regex=True).astype(float)
    np.testing.assert_allclose(clean.loc[kept.index].to_numpy(), expected.to_numpy())


def test_generated_spellings_are_repaired(fraud_cleaned) -> None:
    for column in ("merchant_category", "channel", "country"):
        assert fraud_cleaned.repairs[f"{column}: spelling normalised"] > 0
    assert not any("unknown category" in r for r in fraud_cleaned.quarantine[QUARANTINE_REASON])


def test_generated_impossible_ages_are_quarantined(fraud_raw, fraud_cleaned) -> None:
    ages = pd.to_numeric(fraud_raw["customer_age"])
    bad_ids = set(fraud_raw.loc[(ages < 18) | (ages > 110), "transaction_id"])
    assert bad_ids
    assert bad_ids.isdisjoint(fraud_cleaned.clean["transaction_id"])
    quarantined = fraud_cleaned.quarantine.set_index("transaction_id")[QUARANTINE_REASON]
    for tx_id in bad_ids:
        assert re.search(r"customer_age: (below min 18|above max 110) \(", quarantined[tx_id])


def test_generated_quarantine_is_small_and_explained(fraud_config, fraud_cleaned) -> None:
    assert 0.0 < fraud_cleaned.quarantine_fraction < 0.05
    assert fraud_cleaned.quarantine_fraction <= fraud_config.contract.max_quarantine_fraction
    columns = "|".join(map(re.escape, required_columns(fraud_config)))
    rule = "below min|above max|not a number|unknown category|missing target|duplicate id"
    pattern = re.compile(rf"^({columns}): ({rule}|not a timestamp)")
    for reasons in fraud_cleaned.quarantine[QUARANTINE_REASON]:
        for reason in reasons.split("; "):
            assert pattern.match(reason), reason


def test_generated_clean_values_are_within_the_contract(fraud_config, fraud_cleaned) -> None:
    clean = fraud_cleaned.clean
    assert list(clean.columns) == required_columns(fraud_config)
    for column in fraud_config.numeric_features:
        assert clean[column].dtype == np.float64, column
    assert clean[fraud_config.target].dtype == np.int64
    assert set(clean[fraud_config.target].unique()) == {0, 1}
    for column, rule in fraud_config.contract.columns.items():
        values = clean[column].dropna()
        if rule.min is not None:
            assert (values >= rule.min).all(), column
        if rule.max is not None:
            assert (values <= rule.max).all(), column
        if rule.categories is not None:
            assert values.isin(rule.categories).all(), column
        if column in fraud_config.features:
            assert clean[column].isna().mean() <= rule.max_null_fraction, column
    assert clean["transaction_id"].is_unique
    assert clean["event_time"].notna().all()
    low, high = fraud_config.contract.target_rate
    assert low <= clean[fraud_config.target].mean() <= high


def test_positive_label_that_never_occurs_is_an_error(fraud_config):
    frame = generate_transactions(500, seed=2, messy=False)
    frame["is_fraud"] = frame["is_fraud"].map({0: "no", 1: "yes"})
    with pytest.raises(ContractError, match="positive_label 1 never occurs in target 'is_fraud'"):
        clean_rows(frame, fraud_config)


def test_missing_id_is_quarantined_not_called_a_duplicate(fraud_config):
    frame = generate_transactions(500, seed=2, messy=False)
    frame.loc[[3, 4], "transaction_id"] = None
    result = clean_rows(frame, fraud_config)
    reasons = result.quarantine["quarantine_reason"].tolist()
    assert reasons == ["transaction_id: missing id", "transaction_id: missing id"]


def test_mixed_timestamp_formats_are_parsed(fraud_config):
    frame = generate_transactions(500, seed=2, messy=False)
    frame["event_time"] = frame["event_time"].astype(str)
    frame.loc[1, "event_time"] = "2026-01-02"
    result = clean_rows(frame, fraud_config)
    assert len(result.quarantine) == 0
    assert str(result.clean["event_time"].dtype).startswith("datetime64")
