"""Data tests for the batch-level contract on Great Expectations 1.x."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.contract import QUARANTINE_REASON, CleanResult, clean_rows
from features.expectations import CheckResult, ValidationReport, build_suite, validate_batch

pytestmark = pytest.mark.data


def with_clean(result: CleanResult, clean: pd.DataFrame) -> CleanResult:
    return CleanResult(clean=clean, quarantine=result.quarantine, repairs=result.repairs)


def failed(report: ValidationReport) -> set[tuple[str, str | None]]:
    return {(c.expectation, c.column) for c in report.failures}


@pytest.fixture(scope="module")
def passing(fraud_raw, fraud_config, fraud_cleaned) -> ValidationReport:
    return validate_batch(fraud_cleaned, fraud_config, rows_in=len(fraud_raw))


def test_suite_is_derived_from_the_config(fraud_config) -> None:
    import great_expectations as gx

    # build_suite needs an active GX context (validate_batch makes one); do not depend on
    # another test having made it first.
    gx.get_context(mode="ephemeral")
    suite = build_suite(fraud_config)
    assert suite.name == "fraud-contract"
    kinds = [(e.expectation_type, getattr(e, "column", None)) for e in suite.expectations]
    assert ("expect_table_row_count_to_be_between", None) in kinds
    for column in ("transaction_id", "event_time", *fraud_config.features, "is_fraud"):
        assert ("expect_column_to_exist", column) in kinds
    assert ("expect_column_values_to_be_unique", "transaction_id") in kinds
    assert ("expect_column_mean_to_be_between", "is_fraud") in kinds
    assert ("expect_column_values_to_be_in_set", "channel") in kinds
    assert ("expect_column_values_to_be_between", "customer_age") in kinds
    # transaction_id has a rule, but no null check: only features get one.
    assert ("expect_column_values_to_not_be_null", "transaction_id") not in kinds
    assert ("expect_column_values_to_not_be_null", "device_type") in kinds


def test_clean_generated_batch_passes(passing, fraud_raw, fraud_cleaned) -> None:
    assert passing.success, passing.failure_message()
    assert passing.failures == []
    assert passing.project == "fraud"
    assert passing.rows_in == len(fraud_raw)
    assert passing.rows_clean == len(fraud_cleaned.clean)
    assert passing.rows_quarantined == len(fraud_cleaned.quarantine)
    assert passing.repairs == fraud_cleaned.repairs
    assert len(passing.checks) > 40
    assert passing.checks[-1].expectation == "quarantined_row_share_at_most"


def test_top_quarantine_reasons_drop_the_value(passing, fraud_cleaned) -> None:
    reasons = passing.top_quarantine_reasons
    assert reasons
    assert len(reasons) <= 10
    assert all("(" not in reason for reason in reasons)
    total = sum(len(r.split("; ")) for r in fraud_cleaned.quarantine[QUARANTINE_REASON])
    assert sum(reasons.values()) <= total
    assert any(reason.startswith("amount: ") for reason in reasons)


def test_present_columns_are_reported_present(passing) -> None:
    exists = [c for c in passing.checks if c.expectation == "expect_column_to_exist"]
    assert exists
    assert {c.observed for c in exists} == {"present"}


def test_report_is_json_ready(passing) -> None:
    data = json.loads(json.dumps(passing.to_dict()))
    assert data["success"] is True
    assert data["project"] == "fraud"
    assert len(data["checks"]) == len(passing.checks)


def test_passing_report_renders(passing) -> None:
    markdown = passing.to_markdown()
    assert markdown.startswith("# Data validation: fraud — PASSED")
    assert "**FAIL**" not in markdown
    assert "| pass | expect_column_mean_to_be_between | is_fraud |" in markdown
    page = passing.to_html()
    assert "PASSED" in page and "<tr class=fail>" not in page


def test_flipped_labels_fail_the_target_rate(fraud_raw, fraud_config, fraud_cleaned) -> None:
    clean = fraud_cleaned.clean.copy()
    clean["is_fraud"] = 1 - clean["is_fraud"]
    report = validate_batch(with_clean(fraud_cleaned, clean), fraud_config, len(fraud_raw))
    assert not report.success
    assert failed(report) == {("expect_column_mean_to_be_between", "is_fraud")}
    (failure,) = report.failures
    assert float(failure.observed) > 0.9
    assert "max_value=0.03" in failure.expected


def test_null_share_above_limit_fails(fraud_raw, fraud_config, fraud_cleaned) -> None:
    clean = fraud_cleaned.clean.copy()
    rows = clean.sample(frac=0.10, random_state=0).index
    clean.loc[rows, "device_type"] = np.nan  # limit: 5%
    clean.loc[rows[:20], "country"] = np.nan  # limit: 0%
    report = validate_batch(with_clean(fraud_cleaned, clean), fraud_config, len(fraud_raw))
    assert failed(report) == {
        ("expect_column_values_to_not_be_null", "device_type"),
        ("expect_column_values_to_not_be_null", "country"),
    }


def test_null_share_within_limit_passes(fraud_raw, fraud_config, fraud_cleaned) -> None:
    clean = fraud_cleaned.clean.copy()
    already = clean["device_type"].isna().mean()
    extra = clean[clean["device_type"].notna()].sample(frac=0.01, random_state=0).index
    clean.loc[extra, "device_type"] = np.nan
    assert already < clean["device_type"].isna().mean() < 0.05
    report = validate_batch(with_clean(fraud_cleaned, clean), fraud_config, len(fraud_raw))
    assert report.success, report.failure_message()


def test_too_few_rows_fail(fraud_config, fraud_cleaned) -> None:
    clean = fraud_cleaned.clean.iloc[:400]
    report = validate_batch(with_clean(fraud_cleaned, clean), fraud_config, rows_in=400)
    assert ("expect_table_row_count_to_be_between", None) in failed(report)
    check = next(c for c in report.failures if c.expectation.startswith("expect_table_row"))
    assert check.observed == "400"
    assert "min_value=1000" in check.expected


def test_quarantine_share_above_limit_fails(fraud_raw, fraud_config) -> None:
    raw = fraud_raw.copy()
    raw["customer_age"] = pd.to_numeric(raw["customer_age"])
    raw.loc[raw.sample(frac=0.08, random_state=1).index, "customer_age"] = 250.0
    result = clean_rows(raw, fraud_config)
    assert result.quarantine_fraction > 0.05
    report = validate_batch(result, fraud_config, len(raw))
    assert failed(report) == {("quarantined_row_share_at_most", None)}
    check = report.failures[0]
    assert check.expected == "<= 5.00%"
    assert float(check.observed.rstrip("%")) > 5.0
    assert "customer_age: above max 110" in report.top_quarantine_reasons


def test_values_breaking_a_rule_fail_their_expectation(fraud_raw, fraud_config, fraud_cleaned):
    clean = fraud_cleaned.clean.copy()
    clean.loc[:4, "channel"] = "fax"
    clean.loc[:4, "hour_of_day"] = 30.0
    clean.loc[5, "transaction_id"] = clean.loc[6, "transaction_id"]
    report = validate_batch(with_clean(fraud_cleaned, clean), fraud_config, len(fraud_raw))
    assert failed(report) == {
        ("expect_column_values_to_be_in_set", "channel"),
        ("expect_column_values_to_be_between", "hour_of_day"),
        ("expect_column_values_to_be_unique", "transaction_id"),
    }
    in_set = next(c for c in report.failures if c.column == "channel")
    assert "unexpected" in in_set.observed and "fax" in in_set.observed


def test_missing_column_fails_its_existence_check(fraud_raw, fraud_config, fraud_cleaned):
    clean = fraud_cleaned.clean.drop(columns=["country"])
    report = validate_batch(with_clean(fraud_cleaned, clean), fraud_config, len(fraud_raw))
    exists = next(c for c in report.checks if c.expectation == "expect_column_to_exist")
    assert exists.success  # the first one (transaction_id) is there
    missing = [c for c in report.failures if c.expectation == "expect_column_to_exist"]
    assert [(c.column, c.observed) for c in missing] == [("country", "missing")]
    assert {c.column for c in report.failures} == {"country"}


def test_failure_message_and_reports_name_each_failure(fraud_raw, fraud_config, fraud_cleaned):
    clean = fraud_cleaned.clean.copy()
    clean["is_fraud"] = 1 - clean["is_fraud"]
    clean.loc[clean.sample(frac=0.2, random_state=0).index, "amount"] = np.nan
    report = validate_batch(with_clean(fraud_cleaned, clean), fraud_config, len(fraud_raw))
    assert len(report.failures) == 2

    lines = report.failure_message().splitlines()
    assert lines[0] == "data validation failed for project 'fraud':"
    assert len(lines) == 1 + len(report.failures)
    assert lines[1:] == [
        f"- {c.expectation} on '{c.column}': observed {c.observed}, expected {c.expected}"
        for c in report.failures
    ]
    assert any("expect_column_mean_to_be_between on 'is_fraud'" in line for line in lines)
    assert any("expect_column_values_to_not_be_null on 'amount'" in line for line in lines)

    markdown = report.to_markdown()
    page = report.to_html()
    assert "FAILED" in markdown.splitlines()[0]
    assert "<h1>Data validation: fraud — FAILED</h1>" in page
    for check in report.failures:
        assert f"| **FAIL** | {check.expectation} | {check.column} |" in markdown
        assert f"<td>FAIL</td><td>{check.expectation}</td><td>{check.column}</td>" in page
    assert markdown.count("**FAIL**") == page.count("<td>FAIL</td>") == 2


def test_report_escapes_html() -> None:
    report = ValidationReport(
        project="p<1>",
        rows_in=10,
        rows_clean=9,
        rows_quarantined=1,
        repairs={"a & b": 1},
        top_quarantine_reasons={},
        checks=(CheckResult("expect_x", "<col>", False, "1 < 2", "present"),),
    )
    page = report.to_html()
    assert "&lt;col&gt;" in page and "<col>" not in page
    assert "p&lt;1&gt;" in page and "a &amp; b: 1" in page
    assert report.failure_message().endswith(
        "- expect_x on '<col>': observed 1 < 2, expected present"
    )


def test_quarantine_free_batch_validates(fraud_config) -> None:
    from features.fraud_data import generate_transactions

    raw = generate_transactions(1500, seed=4, messy=False)
    result = clean_rows(raw, fraud_config)
    assert result.quarantine.empty
    report = validate_batch(result, fraud_config, len(raw))
    assert report.top_quarantine_reasons == {}
    quarantine = next(c for c in report.checks if c.expectation.startswith("quarantined"))
    assert quarantine.success and quarantine.observed == "0.00%"
