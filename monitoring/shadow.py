"""Shadow comparison: champion and shadow challenger on the same labelled live rows, and the
promotion decision that rests on it.

    python -m monitoring.shadow compare --project fraud [--since 2026-07-01] [--pushgateway URL]
    python -m monitoring.shadow promote --project fraud [--dry-run]
    python -m monitoring.shadow withdraw --project fraud

The gateway logs, for a mirrored request, the champion's row (`predictions/`) and the
challenger's (`shadow/`) under the same row id (`serving.gateway.shadow`); late labels join
both by that id. `pair_shadow_rows` keeps the labelled rows the serving champion answered and
the shadow challenger scored, `live_evidence` compares them with the gate's own paired
bootstrap (`models.gate.compare_live`: same metric, bootstrap size, seed and margin), and
`models.gate.decide_from_shadow` decides by `gate.shadow_evidence`, fail closed when there are
too few labelled rows. `promote` records the decision (JSON under `reports/shadow/`, an MLflow
run, version tags) and, when it promotes, publishes the challenger and moves `champion` by the
registry's compare-and-swap (`serving.deploy.switch_champion`) under the promotion lock, only
while `champion` and `shadow` still name the versions compared; then the shadow model is
withdrawn. Runbook: "Reading a shadow comparison".
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from configs import ConfigError, load_config
from configs.cli import UserError, cli_parser, fail, setup_logging
from configs.schema import ProjectConfig
from models.gate import LiveEvidence, ShadowDecision, compare_live, decide_from_shadow
from models.reference import SCORE_COLUMN, TARGET_COLUMN
from monitoring.contract import SHADOW_JOB, SHADOW_METRICS
from serving.inference_log import (
    MODEL_VERSION,
    REQUEST_ID,
    SHADOW_OF,
    TIMESTAMP,
    read_log,
    read_shadow,
)
from serving.pushgateway import PushError, Sample, push

log = logging.getLogger(__name__)

CHAMPION_SCORE, CHALLENGER_SCORE = "champion_score", "challenger_score"
REPORTS_ROOT = Path("reports/shadow")


class ShadowError(UserError, RuntimeError):
    """No shadow challenger to compare, or the comparison cannot be made; the message says why."""


def pair_shadow_rows(
    served: pd.DataFrame, shadow: pd.DataFrame, *, champion: str, challenger: str
) -> pd.DataFrame:
    """The labelled live rows both models scored: one per row id, with the label, the time and
    both scores (`champion_score`, `challenger_score`).

    Served rows count only when `champion` answered them; shadow rows only when they are
    `challenger`'s and mirror `champion`'s answer (a shadow row of an earlier champion is not
    paired). A row id logged twice (a retried request) keeps its latest row.
    """
    columns = [REQUEST_ID, TIMESTAMP, TARGET_COLUMN, CHAMPION_SCORE, CHALLENGER_SCORE]
    if served.empty or shadow.empty or TARGET_COLUMN not in served:
        return pd.DataFrame(columns=columns)
    ours = served[(served[MODEL_VERSION].astype(str) == champion) & served[TARGET_COLUMN].notna()]
    ours = ours.drop_duplicates(REQUEST_ID, keep="last")
    theirs = shadow[
        (shadow[MODEL_VERSION].astype(str) == challenger)
        & (shadow[SHADOW_OF].astype(str) == champion)
    ].drop_duplicates(REQUEST_ID, keep="last")
    paired = ours[[REQUEST_ID, TIMESTAMP, TARGET_COLUMN, SCORE_COLUMN]].merge(
        theirs[[REQUEST_ID, SCORE_COLUMN]], on=REQUEST_ID, suffixes=("_champion", "_challenger")
    )
    paired = paired.rename(
        columns={f"{SCORE_COLUMN}_champion": CHAMPION_SCORE,
                 f"{SCORE_COLUMN}_challenger": CHALLENGER_SCORE}
    )  # fmt: skip
    paired[TARGET_COLUMN] = paired[TARGET_COLUMN].astype(int)
    return paired[columns].sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def live_evidence(
    config: ProjectConfig,
    paired: pd.DataFrame,
    *,
    champion: str,
    challenger: str,
    thresholds: tuple[float, float],
    shadow_rows: int,
) -> LiveEvidence:
    """The live comparison of `paired` rows (`pair_shadow_rows`); `thresholds` are
    (challenger's, champion's) decision thresholds."""
    y = paired[TARGET_COLUMN].to_numpy(dtype=int)
    comparison = compare_live(
        config,
        y,
        (paired[CHALLENGER_SCORE].to_numpy(dtype=float), thresholds[0]),
        (paired[CHAMPION_SCORE].to_numpy(dtype=float), thresholds[1]),
    )
    stamps = pd.to_datetime(paired[TIMESTAMP], utc=True)
    return LiveEvidence(
        champion_version=champion,
        challenger_version=challenger,
        rows=len(paired),
        positives=int(y.sum()),
        first=stamps.min().isoformat() if len(paired) else "",
        last=stamps.max().isoformat() if len(paired) else "",
        shadow_rows=shadow_rows,
        comparison=comparison,
    )


def compare_shadow(
    config: ProjectConfig,
    log_root: Path,
    *,
    champion: str,
    challenger: str,
    thresholds: tuple[float, float],
    since: pd.Timestamp | None = None,
) -> LiveEvidence:
    """Read the log under `log_root` (from `since`) and compare the shadow challenger with the
    champion on the labelled rows both scored."""
    served = read_log(log_root, config.model_name, start=since)
    shadow = read_shadow(log_root, config.model_name, start=since)
    mine = shadow[shadow[MODEL_VERSION].astype(str) == challenger] if not shadow.empty else shadow
    paired = pair_shadow_rows(served, shadow, champion=champion, challenger=challenger)
    return live_evidence(config, paired, champion=champion, challenger=challenger,
                         thresholds=thresholds, shadow_rows=len(mine))  # fmt: skip


def shadow_samples(config: ProjectConfig, evidence: LiveEvidence) -> list[Sample]:
    """The comparison as gauges (`SHADOW_METRICS`)."""
    versions = {"champion": evidence.champion_version, "challenger": evidence.challenger_version}
    metric, gate = config.evaluation.primary_metric, config.gate
    enough = (
        evidence.comparison is not None
        and evidence.rows >= gate.shadow_min_labelled_rows
        and min(evidence.positives, evidence.rows - evidence.positives) >= gate.shadow_min_positives
    )
    samples = [
        Sample("mlops_shadow_labelled_rows", float(evidence.rows), versions),
        Sample("mlops_shadow_positives", float(evidence.positives), versions),
        Sample("mlops_shadow_evidence_sufficient", float(enough), versions),
    ]
    c = evidence.comparison
    if c is not None:
        for model, value in (("champion", c.opponent_value), ("challenger", c.challenger)):
            samples.append(Sample("mlops_shadow_quality", value,
                                  {"metric": metric, "model": model, **versions}))  # fmt: skip
        for bound, value in (("estimate", c.gain), ("low", c.gain_low), ("high", c.gain_high)):
            samples.append(Sample("mlops_shadow_gain", value,
                                  {"metric": metric, "bound": bound, **versions}))  # fmt: skip
    return samples


def shadow_summary(
    config: ProjectConfig, log_root: Path, *, since: pd.Timestamp | None = None
) -> tuple[dict[str, Any], list[Sample]] | None:
    """The monitor's hook: the live comparison of the registry's shadow challenger as a JSON-
    ready dict and its gauges (`SHADOW_METRICS`, job `shadow`); None without a shadow
    challenger. Decides nothing."""
    from models.registry import SHADOW, challenger_version

    if challenger_version(config.model_name, SHADOW) is None:
        return None
    champion, challenger, thresholds = _versions(config)
    evidence = compare_shadow(config, log_root, champion=champion, challenger=challenger,
                              thresholds=thresholds, since=since)  # fmt: skip
    return evidence.to_dict(), shadow_samples(config, evidence)


# --- the registry edge ------------------------------------------------------------------------


def _versions(config: ProjectConfig) -> tuple[str, str, tuple[float, float]]:
    """(champion, shadow challenger, (challenger's, champion's) thresholds) from the registry.

    Raises:
        ShadowError: No champion or no shadow challenger, or a version without a threshold.
    """
    import mlflow

    from models.registry import SHADOW, challenger_version, champion_version

    name = config.model_name
    challenger, champion = challenger_version(name, SHADOW), champion_version(name)
    if challenger is None:
        raise ShadowError(
            f"model '{name}' has no shadow challenger (alias `shadow`)",
            hint="run the pipeline with gate.shadow_before_promotion: true while a champion "
            "serves; a challenger that passes the gate is published in shadow",
        )
    if champion is None:
        raise ShadowError(f"model '{name}' has no champion to compare the shadow with")
    client, thresholds = mlflow.MlflowClient(), []
    for version in (challenger, champion):
        tags = client.get_model_version(name, version).tags
        if "threshold" not in tags:
            raise ShadowError(f"version {version} of '{name}' has no `threshold` tag")
        thresholds.append(float(tags["threshold"]))
    return champion, challenger, (thresholds[0], thresholds[1])


def offline_record(name: str, version: str) -> dict[str, Any]:
    """The gate's decision record of `version` (its run's reports/decision.json); an empty
    record (not passed) when the run holds none."""
    import mlflow

    run_id = mlflow.MlflowClient().get_model_version(name, version).run_id
    try:
        return dict(mlflow.artifacts.load_dict(f"runs:/{run_id}/reports/decision.json"))
    except (mlflow.exceptions.MlflowException, OSError, ValueError) as exc:
        log.warning("version %s of %s has no offline decision record: %s", version, name, exc)
        return {"promote": False, "reasons": [f"no offline decision record ({exc})"[:300]]}


def decide_shadow(
    config: ProjectConfig, log_root: Path, *, since: pd.Timestamp | None = None
) -> tuple[ShadowDecision, dict[str, Any]]:
    """Compare the registry's shadow challenger with its champion on the log and decide; the
    decision and its record (decision, context, the log read)."""
    champion, challenger, thresholds = _versions(config)
    evidence = compare_shadow(config, log_root, champion=champion, challenger=challenger,
                              thresholds=thresholds, since=since)  # fmt: skip
    decision = decide_from_shadow(config, offline_record(config.model_name, challenger), evidence)
    record = decision.to_dict() | {
        "model": config.model_name,
        "challenger_version": challenger,
        "previous_champion": champion,
        "thresholds": {"challenger": thresholds[0], "champion": thresholds[1]},
        "log_root": str(log_root),
        "since": since.isoformat() if since is not None else None,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "bootstrap_samples": config.evaluation.bootstrap_samples,
        "margins": {
            "min_gain_over_champion": config.gate.min_gain_over_champion,
            "shadow_min_labelled_rows": config.gate.shadow_min_labelled_rows,
            "shadow_min_positives": config.gate.shadow_min_positives,
        },
    }
    return decision, record


def record_shadow_decision(config: ProjectConfig, record: dict[str, Any], out: Path) -> Path:
    """Write the record to `out/<project>/shadow_decision_v<N>.json`, an MLflow run of the
    project's experiment (`reports/shadow_decision.json`) and the version's tags."""
    import mlflow

    from models.registry import experiment_id

    path = out / config.name / f"shadow_decision_v{record['challenger_version']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))
    with mlflow.start_run(experiment_id=experiment_id(config.name), run_name="shadow-gate"):
        mlflow.log_dict(record, "reports/shadow_decision.json")
        mlflow.set_tags({"shadow.promoted": str(record["promote"]).lower(),
                         "shadow.challenger": record["challenger_version"]})  # fmt: skip
    client = mlflow.MlflowClient()
    for key, value in {
        "shadow.promoted": str(record["promote"]).lower(),
        "shadow.decided_by": ",".join(record["decided_by"]),
        "shadow.reasons": " | ".join(record["reasons"])[:4900],
    }.items():
        client.set_model_version_tag(config.model_name, record["challenger_version"], key, value)
    return path


def promote_shadow(
    config: ProjectConfig,
    record: dict[str, Any],
    *,
    repo: Path | None,
    triton_url: str | None = None,
) -> None:
    """Publish the shadow challenger and move `champion` to it (compare-and-swap under the
    promotion lock: `champion` and `shadow` must still name the versions compared), then
    withdraw the shadow model and its alias.

    Raises:
        ChampionMovedError, ShadowError: a version moved since the comparison (nothing moved).
    """
    from models.registry import SHADOW, challenger_version, promotion_lock
    from serving.challenger_model import promote_challenger

    name, version = config.model_name, str(record["challenger_version"])
    with promotion_lock(name):
        if challenger_version(name, SHADOW) != version:
            raise ShadowError(
                f"the shadow challenger of '{name}' is no longer version {version}; nothing moved",
                hint="rerun python -m monitoring.shadow promote",
            )
        promote_challenger(
            name, "shadow", version, expected=str(record["previous_champion"]),
            event=f"promoted from shadow: {record['reasons'][0]}", outcome="promoted",
            repo=repo, keep=config.serving.keep_versions, triton_url=triton_url,
        )  # fmt: skip


def withdraw(config: ProjectConfig, repo: Path | None, outcome: str) -> str | None:
    """Take the shadow challenger out: the shadow model from `repo`, then the alias."""
    from models.registry import SHADOW, challenger_version, promotion_lock
    from serving.challenger_model import retire_challenger

    name = config.model_name
    with promotion_lock(name):
        version = challenger_version(name, SHADOW)
        retire_challenger(name, "shadow", version, outcome, repo=repo)
        return version


def _print(decision: ShadowDecision) -> None:
    live, c = decision.live, decision.live.comparison
    print(f"shadow: challenger v{live.challenger_version} vs champion v{live.champion_version}: "
          f"{live.rows} labelled rows paired ({live.positives} positive) of "
          f"{live.shadow_rows} shadow rows")  # fmt: skip
    if c is not None:
        print(f"  {decision.metric}: challenger {c.challenger:.4f}, "
              f"champion {c.opponent_value:.4f}, "
              f"gain {c.gain:+.4f} ({decision.confidence:.0%} CI {c.gain_low:+.4f}.."
              f"{c.gain_high:+.4f}), required > {c.required:+.4f}")  # fmt: skip
    for reason in decision.reasons:
        print(f"  - {reason}")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    from models.registry import ChampionMovedError, RegistryError, configure_tracking
    from serving.deploy import SERVING_REPOSITORY, DeployError, local_triton_url

    parser = cli_parser(__doc__, prog="python -m monitoring.shadow")
    commands = parser.add_subparsers(dest="command", required=True,
                                     help="compare, promote or withdraw")  # fmt: skip
    for name, text in (
        ("compare", "compare the shadow challenger with the champion on labelled live rows"),
        ("promote", "compare, decide, record, and promote when the evidence says so"),
        ("withdraw", "take the shadow challenger out (shadow model and alias)"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--project", default="fraud", help="config name or YAML path")
        sub.add_argument("--log-path", type=Path, help="inference log root (monitoring.log_path)")
        sub.add_argument("--since", type=pd.Timestamp, help="only rows from this time on")
        sub.add_argument("--repo", type=Path, default=SERVING_REPOSITORY,
                         help="Triton model repository (make serve's)")  # fmt: skip
        sub.add_argument("--triton-url", help="Triton polling --repo (default: make serve's)")
        sub.add_argument("--out", type=Path, default=REPORTS_ROOT, help="decision records")
        sub.add_argument("--pushgateway", help="push the comparison (job shadow)")
        sub.add_argument("--dry-run", action="store_true", help="decide and record, move nothing")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        configure_tracking(Path.cwd())
        log_root = args.log_path or Path(config.monitoring.log_path)
        if args.command == "withdraw":
            version = withdraw(config, args.repo, "withdrawn by hand")
            print(f"withdrew shadow challenger {version}" if version else "no shadow challenger")
            return 0
        decision, record = decide_shadow(config, log_root, since=args.since)
        _print(decision)
        if args.pushgateway:
            push(args.pushgateway, SHADOW_JOB, shadow_samples(config, decision.live),
                 {"project": config.name}, SHADOW_METRICS)  # fmt: skip
        if args.command == "compare":
            return 0
        path = record_shadow_decision(config, record, args.out)
        print(f"decision record: {path}")
        if decision.promote and not args.dry_run:
            url = args.triton_url or local_triton_url(args.repo)
            promote_shadow(config, record, repo=args.repo, triton_url=url)
            print(f"PROMOTED: version {record['challenger_version']} is champion")
        else:
            print("not promoted" + (" (dry run)" if decision.promote else ""))
    except ChampionMovedError as exc:
        return fail(exc)
    except (ConfigError, RegistryError, DeployError, PushError, ShadowError) as exc:
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
