"""Batch-level data contract on Great Expectations 1.x (the only module that imports it).

A suite is derived from the project config: schema, types, ranges, null rates, category
sets, id uniqueness, row count and target balance. `validate_batch` runs it on the clean
table, adds the platform's own quarantine-share check, and returns a `ValidationReport`
that renders to Markdown and HTML and names every failed expectation.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass

import pandas as pd

from configs.schema import ProjectConfig
from features.contract import CleanResult, required_columns


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome, in words a person can act on."""

    expectation: str
    column: str | None
    success: bool
    observed: str
    expected: str


@dataclass(frozen=True)
class ValidationReport:
    """All checks on one batch plus the row-level repair and quarantine counts."""

    project: str
    rows_in: int
    rows_clean: int
    rows_quarantined: int
    repairs: dict[str, int]
    top_quarantine_reasons: dict[str, int]
    checks: tuple[CheckResult, ...]

    @property
    def success(self) -> bool:
        """True when every batch-level check passed."""
        return all(c.success for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        """The failed checks."""
        return [c for c in self.checks if not c.success]

    def failure_message(self) -> str:
        """One readable paragraph naming each failed expectation."""
        lines = [
            f"- {c.expectation}"
            + (f" on '{c.column}'" if c.column else "")
            + f": observed {c.observed}, expected {c.expected}"
            for c in self.failures
        ]
        if self.top_quarantine_reasons and any(c.column is None for c in self.failures):
            reasons = ", ".join(f"{k} ({v:,} rows)" for k, v in self.top_quarantine_reasons.items())
            lines.append(f"  quarantine reasons: {reasons}")
        return f"data validation failed for project '{self.project}':\n" + "\n".join(lines)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {**asdict(self), "success": self.success}

    def to_markdown(self) -> str:
        """The report as Markdown."""
        status = "PASSED" if self.success else "FAILED"
        out = [
            f"# Data validation: {self.project} — {status}",
            "",
            f"Rows in: {self.rows_in:,}; clean: {self.rows_clean:,}; "
            f"quarantined: {self.rows_quarantined:,}",
            "",
            "## Repairs",
            *[f"- {k}: {v:,}" for k, v in self.repairs.items() if v],
            "",
            "## Top quarantine reasons",
            *[f"- {k}: {v:,}" for k, v in self.top_quarantine_reasons.items()],
            "",
            "## Expectations",
            "| result | expectation | column | observed | expected |",
            "|---|---|---|---|---|",
            *[
                f"| {'pass' if c.success else '**FAIL**'} | {c.expectation} | {c.column or ''} "
                f"| {c.observed} | {c.expected} |"
                for c in self.checks
            ],
        ]
        return "\n".join(out) + "\n"

    def to_html(self) -> str:
        """The report as a small standalone HTML page."""
        rows = "".join(
            f"<tr class={'ok' if c.success else 'fail'}><td>{'pass' if c.success else 'FAIL'}</td>"
            f"<td>{html.escape(c.expectation)}</td><td>{html.escape(c.column or '')}</td>"
            f"<td>{html.escape(c.observed)}</td><td>{html.escape(c.expected)}</td></tr>"
            for c in self.checks
        )
        items = "".join(
            f"<li>{html.escape(k)}: {v:,}</li>"
            for k, v in {**self.repairs, **self.top_quarantine_reasons}.items()
            if v
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Data validation</title>"
            "<style>body{font-family:sans-serif}td,th{padding:2px 8px}.fail{color:#b00}"
            "</style></head><body>"
            f"<h1>Data validation: {html.escape(self.project)} — "
            f"{'PASSED' if self.success else 'FAILED'}</h1>"
            f"<p>Rows in {self.rows_in:,}; clean {self.rows_clean:,}; "
            f"quarantined {self.rows_quarantined:,}</p><ul>{items}</ul>"
            "<table><tr><th>result</th><th>expectation</th><th>column</th><th>observed</th>"
            f"<th>expected</th></tr>{rows}</table></body></html>"
        )


def build_suite(config: ProjectConfig):
    """The Great Expectations suite for a project's clean table.

    Built from one list: `ExpectationSuite.add_expectation` compares each new expectation
    with every one already added (about 70 s for a 400-column table's 1,600).
    """
    import great_expectations as gx

    ex = gx.expectations
    expectations: list[gx.expectations.Expectation] = [
        ex.ExpectTableRowCountToBeBetween(min_value=config.contract.min_rows)
    ]
    expectations += [ex.ExpectColumnToExist(column=c) for c in required_columns(config)]
    expectations += [
        ex.ExpectColumnValuesToBeInTypeList(column=column, type_list=["float64", "int64"])
        for column in config.numeric_features
    ]
    for column, rule in config.contract.columns.items():
        if rule.max_null_fraction < 1.0 and column in config.features:
            expectations.append(
                ex.ExpectColumnValuesToNotBeNull(column=column, mostly=1.0 - rule.max_null_fraction)
            )
        if rule.min is not None or rule.max is not None:
            expectations.append(
                ex.ExpectColumnValuesToBeBetween(
                    column=column, min_value=rule.min, max_value=rule.max
                )
            )
        if rule.categories is not None:
            expectations.append(
                ex.ExpectColumnValuesToBeInSet(column=column, value_set=list(rule.categories))
            )
    if config.id_column:
        expectations.append(ex.ExpectColumnValuesToBeUnique(column=config.id_column))
    low, high = config.contract.target_rate
    expectations += [
        ex.ExpectColumnValuesToBeInSet(column=config.target, value_set=[0, 1]),
        ex.ExpectColumnMeanToBeBetween(column=config.target, min_value=low, max_value=high),
    ]
    return gx.ExpectationSuite(name=f"{config.name}-contract", expectations=expectations)


def validate_batch(result: CleanResult, config: ProjectConfig, rows_in: int) -> ValidationReport:
    """Run the suite on the clean table and the quarantine-share check on the whole batch."""
    checks = [*_run_suite(result.clean, config), _quarantine_check(result, config)]
    reasons = (
        result.quarantine["quarantine_reason"]
        .str.split("; ")
        .explode()
        .str.replace(r" \(.*\)$", "", regex=True)
        .value_counts()
        .head(10)
    )
    return ValidationReport(
        project=config.name,
        rows_in=rows_in,
        rows_clean=len(result.clean),
        rows_quarantined=len(result.quarantine),
        repairs=result.repairs,
        top_quarantine_reasons={str(k): int(v) for k, v in reasons.items()},
        checks=tuple(checks),
    )


def _quarantine_check(result: CleanResult, config: ProjectConfig) -> CheckResult:
    limit = config.contract.max_quarantine_fraction
    share = result.quarantine_fraction
    return CheckResult(
        expectation="quarantined_row_share_at_most",
        column=None,
        success=share <= limit,
        observed=f"{share:.2%}",
        expected=f"<= {limit:.2%}",
    )


def _run_suite(frame: pd.DataFrame, config: ProjectConfig) -> list[CheckResult]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("platform")
        .add_dataframe_asset(config.name)
        .add_batch_definition_whole_dataframe("batch")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    outcome = batch.validate(build_suite(config), result_format="SUMMARY")
    return [_describe(r) for r in outcome.results]


def _describe(result) -> CheckResult:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k not in {"column", "batch_id"}}
    details = result.result or {}
    if "unexpected_percent" in details and details["unexpected_percent"] is not None:
        observed = f"{details['unexpected_percent']:.3g}% unexpected"
        examples = details.get("partial_unexpected_list") or []
        if examples:
            observed += f" (e.g. {examples[:3]})"
    elif details.get("observed_value") is not None:
        observed = str(details["observed_value"])
    else:
        observed = "n/a"
        if config.type == "expect_column_to_exist":
            observed = "present" if result.success else "missing"
    is_presence = config.type == "expect_column_to_exist"
    expected = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or (
        "present" if is_presence else "every row"
    )
    return CheckResult(
        expectation=config.type,
        column=config.kwargs.get("column"),
        success=bool(result.success),
        observed=observed,
        expected=expected,
    )
