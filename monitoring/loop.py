"""The closed loop: a drift or quality alert (or a schedule) retrains on recent labelled data.

    python -m monitoring.loop --project fraud --prometheus http://127.0.0.1:9090
    python -m monitoring.loop --project fraud --force   # on a schedule (cron, recurring run)

When Prometheus has `DataDriftDetected` or `ModelQualityBelowBaseline` firing for the
project, labelled rows of the inference log become a dataset by the config's
`monitoring.retrain_data` policy (the last `monitoring.retrain_lookback_days` days, extended
to hold enough positives, or joined with the champion's training rows), its provenance goes
into the config (`data.provenance`, named by the decision record), and the *same* training
pipeline runs on it
(`pipelines.run_local.run` with the project's config and `retrain_overrides`: data source
swapped, `monitoring.retrain_trials` trials). The new model meets the same
contract, gate and infra validation; only if it wins does `champion` move and the version
reach the serving repository, where Triton swaps to it without downtime.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from configs import ConfigError, load_config, override
from configs.cli import UserError, cli_parser, fail, setup_logging
from configs.schema import ProjectConfig
from models.reference import TARGET_COLUMN
from serving.inference_log import REQUEST_ID, TIMESTAMP, read_log

# AttributionRankingChanged is not a trigger: with the served model fixed, its attributions move
# only with its inputs, so a real shift also shows as drift or as labelled quality; alone it
# asks a person to look (docs/runbook.md), not for a retrain on data that may be broken.
TRIGGER_ALERTS = ("DataDriftDetected", "ModelQualityBelowBaseline")
RETRAIN_ROOT = Path("local_outputs/retrain")


class LoopError(UserError, RuntimeError):
    """The loop cannot decide or cannot build a dataset; the message says what to do."""


@dataclass
class LoopOutcome:
    """What one pass of the loop did."""

    project: str
    triggered_by: list[str]
    retrained: bool = False
    rows: int = 0
    promoted: bool = False
    deployed: bool = False
    version: str | None = None
    reasons: list[str] = field(default_factory=list)
    summary: str = ""


def firing_alerts(prometheus: str, project: str) -> list[str]:
    """Names of the trigger alerts firing for `project`."""
    from monitoring.stack import MonitoringError
    from monitoring.stack import firing_alerts as firing

    try:
        alerts = firing(prometheus)
    except MonitoringError as exc:
        raise LoopError(
            str(exc),
            hint="make monitor-up (then make monitor-status), or retrain anyway: make retrain "
            "FORCE=1",
        ) from exc
    return sorted(
        {
            a["alertname"]
            for a in alerts
            if a.get("alertname") in TRIGGER_ALERTS and a.get("project") == project
        }
    )


@dataclass(frozen=True)
class RetrainData:
    """The rows a retrain trains on, and what they are in words (the decision record's)."""

    frame: pd.DataFrame
    provenance: str


def retrain_dataset(
    config: ProjectConfig,
    log_root: Path,
    now: pd.Timestamp | None = None,
    reference: pd.DataFrame | None = None,
) -> RetrainData:
    """The labelled log rows the config's `monitoring.retrain_data` policy picks (the window
    ends at `now`, default: just after the newest row), in the config's layout: its id and time
    columns (from request id and timestamp), the raw features and the target (0/1).

    Args:
        reference: The champion's training rows (`models.reference`), for the
            `recent_plus_reference` policy.

    Raises:
        LoopError: No predictions are logged, or the policy needs a reference and has none.
    """
    policy, m = config.monitoring.retrain_data, config.monitoring
    log = read_log(log_root, config.model_name)
    if log.empty:
        raise LoopError(f"no predictions of {config.model_name} under {log_root}")
    labelled = log[log[TARGET_COLUMN].notna()].drop_duplicates(REQUEST_ID, keep="last")
    end = now or log[TIMESTAMP].max() + pd.Timedelta(seconds=1)
    days = m.retrain_lookback_days
    start = end - pd.Timedelta(days=days)
    if policy == "recent_min_positives":
        first = labelled[TIMESTAMP].min()
        while _positives(labelled, start, end) < m.retrain_min_positives and start > first:
            days += 1
            start = end - pd.Timedelta(days=days)
    recent = labelled[(labelled[TIMESTAMP] >= start) & (labelled[TIMESTAMP] < end)]
    frame = _config_layout(config, recent)
    positives = int(frame[config.target].sum())
    said = (f"retrain ({policy}): {len(frame):,} labelled log rows, {positives:,} positives, "
            f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} ({days} days)")  # fmt: skip
    if policy == "recent_min_positives" and positives < m.retrain_min_positives:
        said += f"; the whole log holds fewer positives than {m.retrain_min_positives}"
    if policy == "recent_plus_reference":
        if reference is None:
            raise LoopError(
                f"monitoring.retrain_data: recent_plus_reference needs the champion's training "
                f"rows, and {config.model_name} has no champion with a reference",
                hint="set monitoring.retrain_data: recent_min_positives (or recent) in the config",
            )
        old = _reference_layout(config, reference, start)
        old_positives = int(old[config.target].sum())
        said += (f" + {len(old):,} training rows of the champion ({old_positives:,} positives), "
                 "dated before the window")  # fmt: skip
        frame = pd.concat([old, frame], ignore_index=True)
    return RetrainData(frame.reset_index(drop=True), said)


def _positives(labelled: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> int:
    inside = labelled[(labelled[TIMESTAMP] >= start) & (labelled[TIMESTAMP] < end)]
    return int(inside[TARGET_COLUMN].sum())


def _config_layout(config: ProjectConfig, rows: pd.DataFrame) -> pd.DataFrame:
    frame = rows[list(config.features)].assign(
        **{config.target: rows[TARGET_COLUMN].astype(int).to_numpy()}
    )
    if config.id_column:
        frame.insert(0, config.id_column, rows[REQUEST_ID].to_numpy())
    if config.time_column:
        stamps = rows[TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None)
        frame.insert(1, config.time_column, stamps.to_numpy())
    return frame.reset_index(drop=True)


def _reference_layout(
    config: ProjectConfig, reference: pd.DataFrame, before: pd.Timestamp
) -> pd.DataFrame:
    """The champion's training rows in the config's layout: ids `reference-<n>`, all dated one
    second before the window (their own times are not kept), so a time split trains on them."""
    frame = reference[list(config.features)].assign(
        **{config.target: reference[TARGET_COLUMN].astype(int).to_numpy()}
    )
    if config.id_column:
        frame.insert(0, config.id_column, [f"reference-{i}" for i in range(len(frame))])
    if config.time_column:
        stamp = (before - pd.Timedelta(seconds=1)).tz_convert("UTC").tz_localize(None)
        frame.insert(1, config.time_column, stamp)
    return frame.reset_index(drop=True)


def retrain_overrides(
    config: ProjectConfig, data_path: Path, provenance: str = ""
) -> dict[str, Any]:
    """What a retrain changes in the project's config: the retraining data as its source
    (labels are 0/1, `provenance` says what they are), `monitoring.retrain_trials` trials, and
    no `split.group_column` (logged requests do not carry it)."""
    changes: dict[str, Any] = {
        "data": {"source": "file", "path": str(data_path.resolve()), "provenance": provenance},
        "positive_label": 1,
    }
    if config.monitoring.retrain_trials:
        changes["tuning.n_trials"] = config.monitoring.retrain_trials
    if config.split.group_column:  # production rows carry no entity: each is its own row
        changes["split.group_column"] = None
    return changes


def retrain_config(config: ProjectConfig, data_path: Path, provenance: str = "") -> ProjectConfig:
    """The config a retrain runs (`retrain_overrides` applied and validated)."""
    changes = retrain_overrides(config, data_path, provenance)
    return override(config, changes, source="retrain overrides")


def run_loop(
    config: ProjectConfig,
    *,
    prometheus: str | None,
    force: bool = False,
    log_root: Path | None = None,
    out_root: Path = RETRAIN_ROOT,
) -> LoopOutcome:
    """One pass: check the trigger; if it holds, retrain, gate, validate and maybe deploy."""
    from models.registry import RegistryError
    from pipelines import run_local

    triggered = ["forced"] if force else firing_alerts(prometheus or "", config.name)
    outcome = LoopOutcome(config.name, triggered)
    if not triggered:
        outcome.reasons.append("no drift or quality alert firing: nothing to do")
        return outcome
    stamp = f"{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S}"
    folder = out_root / config.name / stamp
    folder.mkdir(parents=True, exist_ok=True)
    data = retrain_dataset(
        config, Path(log_root or config.monitoring.log_path), reference=_champion_reference(config)
    )
    data.frame.to_parquet(folder / "data.parquet", index=False)
    (folder / "data.txt").write_text(data.provenance + "\n")
    outcome.retrained, outcome.rows = True, len(data.frame)
    changes = retrain_overrides(config, folder / "data.parquet", data.provenance)
    try:
        summary = run_local.run(config, changes, reports=folder / "run")
    except (run_local.PipelineError, RegistryError) as exc:
        raise LoopError(
            f"the retraining pipeline failed ({exc}); see {folder}",
            hint=f"the failed stage is named above; its data is in {folder}, its config in "
            "the MLflow run (config.yaml)",
        ) from exc
    outcome.summary = str(summary.path)
    outcome.version = summary.version
    outcome.promoted = summary.promoted
    outcome.deployed = summary.deployed
    outcome.reasons = summary.reasons
    return outcome


def _champion_reference(config: ProjectConfig) -> pd.DataFrame | None:
    """The champion's training rows when the retrain policy adds them, else None."""
    from models.reference import MissingReferenceError, load_reference
    from models.registry import champion_version

    if config.monitoring.retrain_data != "recent_plus_reference":
        return None
    version = champion_version(config.model_name)
    if version is None:
        return None
    try:
        return load_reference(config.model_name, version)
    except MissingReferenceError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli_parser(
        __doc__, prog="python -m monitoring.loop", make="make retrain [PROJECT=...] [FORCE=1]"
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus URL")
    parser.add_argument("--force", action="store_true", help="retrain without an alert")
    parser.add_argument("--log-path", type=Path, help="inference log root (monitoring.log_path)")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        outcome = run_loop(config, prometheus=args.prometheus, force=args.force,
                           log_root=args.log_path)  # fmt: skip
    except (ConfigError, LoopError) as exc:  # no hint of its own: no labelled traffic logged
        return fail(exc, f"make simulate PROJECT={args.project} (labelled traffic to train on)")
    print(json.dumps(asdict(outcome), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
