"""The closed loop: a drift or quality alert (or a schedule) retrains on recent labelled data.

    python -m monitoring.loop --project fraud --prometheus http://127.0.0.1:9090
    python -m monitoring.loop --project fraud --force   # on a schedule (cron, recurring run)

When Prometheus has `DataDriftDetected` or `ModelQualityBelowBaseline` firing for the
project, the labelled rows of the last `monitoring.retrain_lookback_days` days of the
inference log become a dataset, and the *same* training pipeline runs on it (kfp.local; a
config derived from the project's, data source swapped). The new model meets the same
contract, gate and infra validation; only if it wins does `champion` move and the version
reach the serving repository, where Triton swaps to it without downtime.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import requests
import yaml

from configs import ConfigError, load_config, parse_config
from configs.console import UserError, cli_parser, fail, setup_logging
from configs.schema import ProjectConfig
from models.reference import TARGET_COLUMN
from serving.inference_log import REQUEST_ID, TIMESTAMP, read_log

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
    url = f"{prometheus.rstrip('/')}/api/v1/alerts"
    try:
        alerts = requests.get(url, timeout=10).json()["data"]["alerts"]
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise LoopError(
            f"cannot read alerts from {url}: {exc}",
            hint="make monitor-up (then make monitor-status), or retrain anyway: make retrain "
            "FORCE=1",
        ) from exc
    return sorted(
        {
            a["labels"]["alertname"]
            for a in alerts
            if a["state"] == "firing"
            and a["labels"].get("alertname") in TRIGGER_ALERTS
            and a["labels"].get("project") == project
        }
    )


def retrain_dataset(
    config: ProjectConfig, log_root: Path, lookback_days: int, now: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Labelled log rows of the last `lookback_days` (before `now`, default: the newest row).

    Columns: the config's id and time columns (from request id and timestamp), the raw
    features and the target (0/1).
    """
    log = read_log(log_root, config.model_name)
    if log.empty:
        raise LoopError(f"no predictions of {config.model_name} under {log_root}")
    end = now or log[TIMESTAMP].max() + pd.Timedelta(seconds=1)
    recent = log[
        (log[TIMESTAMP] >= end - pd.Timedelta(days=lookback_days)) & log[TARGET_COLUMN].notna()
    ]
    recent = recent.drop_duplicates(REQUEST_ID, keep="last")
    frame = recent[list(config.features)].assign(
        **{config.target: recent[TARGET_COLUMN].astype(int).to_numpy()}
    )
    if config.id_column:
        frame.insert(0, config.id_column, recent[REQUEST_ID].to_numpy())
    if config.time_column:
        stamps = recent[TIMESTAMP].dt.tz_convert("UTC").dt.tz_localize(None)
        frame.insert(1, config.time_column, stamps.to_numpy())
    return frame.reset_index(drop=True)


def retrain_config(config: ProjectConfig, data_path: Path) -> ProjectConfig:
    """The project's config with the retraining data as its source (labels are 0/1)."""
    raw = config.model_dump(mode="json")
    raw["data"] = {"source": "file", "path": str(data_path.resolve())}
    raw["positive_label"] = 1
    if config.monitoring.retrain_trials:
        raw["tuning"]["n_trials"] = config.monitoring.retrain_trials
    return parse_config(raw, source=f"retrain config for {config.name}")


def run_loop(
    config: ProjectConfig,
    *,
    prometheus: str | None,
    force: bool = False,
    log_root: Path | None = None,
    out_root: Path = RETRAIN_ROOT,
) -> LoopOutcome:
    """One pass: check the trigger; if it holds, retrain, gate, validate and maybe deploy."""
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
        config,
        Path(log_root or config.monitoring.log_path),
        config.monitoring.retrain_lookback_days,
    )
    data.to_parquet(folder / "data.parquet", index=False)
    derived = retrain_config(config, folder / "data.parquet")
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(derived.model_dump(mode="json"), sort_keys=False))
    outcome.retrained, outcome.rows = True, len(data)
    status = run_local.main(["--project", str(config_path), "--reports", str(folder / "run")])
    summary_path = folder / "run" / "run_summary.json"
    if status != 0 or not summary_path.exists():
        raise LoopError(
            f"the retraining pipeline failed (exit {status}); see {folder}",
            hint=f"the failed stage is named above; its data and config are in {folder}",
        )
    summary = json.loads(summary_path.read_text())
    outcome.summary = str(summary_path)
    outcome.version = summary["model"]["version"]
    outcome.promoted = summary["promoted"]
    outcome.deployed = bool(summary["deployment"]["deployed"])
    outcome.reasons = summary["reasons"]
    return outcome


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
