"""Canary rollout: a challenger answers a growing share of callers while it stays within its
limits, becomes champion after the last step, and is rolled back the moment it does not.

    python -m monitoring.canary status --project fraud
    python -m monitoring.canary tick --project fraud [--prometheus URL] [--pushgateway URL]
    python -m monitoring.canary run --project fraud [--interval-s 60]    (ticks until it ends)
    python -m monitoring.canary abort --project fraud --reason "..."

A challenger that passes the gate with `gate.canary_before_promotion` is published as the
Triton model `<model>__canary` answering `canary.steps[0]` of callers (alias `canary`,
`serving.challenger_model`); the gateway routes that share of unversioned requests to it and
counts each arm (`gateway_canary_*`). Each tick gathers the step's evidence and `decide`s:

- **rollback** when an alert labelled `rollout="canary"` fires for the model (one active since
  before the canary was published is a predecessor's, still firing), when more of the
  canary's requests failed than `canary.max_error_rate` allows, when its p99 is over
  `canary.max_latency_ratio` times the champion's, or when its labelled live rows show it
  significantly worse than the champion's of the same period (the gate's bootstrap, margin
  `gate.noninferiority_margin`): the canary model is withdrawn first (callers are back on the
  champion at once), then the alias;
- **hold** while the step is younger than `canary.step_min_minutes` or has fewer than
  `canary.step_min_requests` canary requests, and, at the last step, until each arm has
  `canary.min_labelled_rows` labelled rows (so the quality rule has had its chance); also, fail
  closed, whenever the evidence cannot be read (Prometheus down, the log unreadable): nothing
  moves, the record says why;
- **step** to the next share, or **promote** after the last: the champion moves by the
  registry's compare-and-swap (`serving.deploy.switch_champion`) under the promotion lock.

Live quality is a guardrail, not a second gate: the offline gate has shown the gain, and two
arms answering different callers compare unpaired, with intervals too wide on a canary's rows
to show a gain of a point; what they do show is a regression the test set could not.

Every decision is written to `reports/canary/<project>/<time>.json`, and with `--pushgateway`
pushed as `mlops_canary_share` and `mlops_canary_state` (job `canary`). Locally the share is
written into `<model>__canary`'s config in the serving repository; with `--registry-only`
(the cluster) only the registry moves (`canary.share` tag), and the serving pod's sync
sidecar publishes it. Runbook: "An aborted canary".
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from configs import ConfigError, load_config
from configs.cli import UserError, cli_parser, fail, setup_logging
from configs.schema import ProjectConfig
from models.gate import Comparison, compare_independent
from models.reference import SCORE_COLUMN, TARGET_COLUMN
from monitoring.contract import CANARY_JOB, CANARY_METRICS
from serving.pushgateway import PushError, Sample, push

log = logging.getLogger(__name__)

REPORTS_ROOT = Path("reports/canary")
Action = Literal["hold", "step", "promote", "rollback"]
STATES = ("running", "promoted", "rolled_back")
# How far the log volume's clock (which stamps its files) may trail this one: the live-quality
# read takes files written from the canary's start less this.
CLOCK_SKEW = pd.Timedelta(minutes=10)


class CanaryError(UserError, RuntimeError):
    """No canary to act on, or it cannot be read; the message says why."""


@dataclass(frozen=True)
class Rollout:
    """The canary as the registry holds it."""

    model: str
    champion: str
    challenger: str
    step: int  # index into canary.steps
    share: float
    since: datetime  # when the canary was published
    step_since: datetime  # when its current step began
    thresholds: tuple[float, float]  # (challenger's, champion's)


@dataclass(frozen=True)
class Traffic:
    """The step's requests as the gateways counted them (Prometheus, since the step began)."""

    canary: float  # requests routed to the canary
    fallbacks: float  # of which the canary did not answer (the champion did)
    canary_p99_ms: float | None  # None: no requests to measure
    champion_p99_ms: float | None


@dataclass(frozen=True)
class Quality:
    """Labelled live rows each arm answered since the canary began, and the comparison."""

    canary_rows: int
    canary_positives: int
    champion_rows: int
    champion_positives: int
    comparison: Comparison | None  # None: a side cannot be scored yet


@dataclass(frozen=True)
class Evidence:
    """What one tick knows; `unreadable` names what could not be read (then it holds)."""

    traffic: Traffic | None = None
    alerts: tuple[str, ...] = ()
    quality: Quality | None = None
    unreadable: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """One tick's decision: the action, the share after it and why."""

    action: Action
    share: float
    reasons: list[str] = field(default_factory=list)


# --- the rule (pure) ----------------------------------------------------------------------------


def decide(config: ProjectConfig, rollout: Rollout, evidence: Evidence, now: datetime) -> Verdict:
    """The next move of `rollout` given the step's `evidence` (see the module docstring)."""
    c = config.canary
    if evidence.alerts:
        return Verdict("rollback", 0.0, [f"alert firing: {', '.join(evidence.alerts)}"])
    if evidence.traffic is None or evidence.quality is None:
        unreadable = "; ".join(evidence.unreadable)
        return Verdict("hold", rollout.share, [f"evidence unreadable, nothing moves: {unreadable}"])
    t, q = evidence.traffic, evidence.quality
    allowed = c.max_error_rate * max(t.canary, c.step_min_requests)
    if t.fallbacks > allowed:
        return Verdict("rollback", 0.0, [
            f"{t.fallbacks:.0f} of {t.canary:.0f} canary requests failed in this step (the "
            f"champion answered them): over canary.max_error_rate={c.max_error_rate:g}",
        ])  # fmt: skip
    slow = _too_slow(config, t)
    if slow:
        return Verdict("rollback", 0.0, [slow])
    enough = _enough_rows(config, q)
    metric = config.evaluation.primary_metric
    cmp = q.comparison
    if enough and cmp is not None and cmp.gain_high < cmp.required:
        return Verdict("rollback", 0.0, [
            f"worse than the champion on live rows: {metric} {cmp.challenger:.4f} vs "
            f"{cmp.opponent_value:.4f}, gain {cmp.gain:+.4f} (CI {cmp.gain_low:+.4f}.."
            f"{cmp.gain_high:+.4f}) below -gate.noninferiority_margin={cmp.required:+.4f}",
        ])  # fmt: skip
    waited = (now - rollout.step_since).total_seconds() / 60.0
    holds = []
    if waited < c.step_min_minutes:
        holds.append(f"step {rollout.step + 1} at {rollout.share:g} has run {waited:.1f} of "
                     f"canary.step_min_minutes={c.step_min_minutes:g} minutes")  # fmt: skip
    if t.canary < c.step_min_requests:
        holds.append(f"{t.canary:.0f} of canary.step_min_requests={c.step_min_requests} canary "
                     "requests in this step")  # fmt: skip
    last = rollout.step >= len(c.steps) - 1
    if last and not holds and (not enough or cmp is None):
        holds.append(
            f"promotion needs canary.min_labelled_rows={c.min_labelled_rows} labelled rows (each "
            f"class >= canary.min_positives={c.min_positives}) on each arm; canary "
            f"{q.canary_rows} ({q.canary_positives} positive), champion {q.champion_rows} "
            f"({q.champion_positives} positive)"
        )
    if holds:
        return Verdict("hold", rollout.share, holds)
    within = (f"within limits: {t.fallbacks:.0f} of {t.canary:.0f} canary requests failed, p99 "
              f"{_ms(t.canary_p99_ms)} vs champion {_ms(t.champion_p99_ms)}")  # fmt: skip
    if last and cmp is not None:  # (`holds` required a comparison at the last step)
        return Verdict("promote", 1.0, [
            f"passed every step {list(c.steps)}; {within}; live {metric} {cmp.challenger:.4f} "
            f"vs champion {cmp.opponent_value:.4f} (gain CI {cmp.gain_low:+.4f}.."
            f"{cmp.gain_high:+.4f}, not below {cmp.required:+.4f})"])  # fmt: skip
    share = c.steps[rollout.step + 1]
    return Verdict("step", share, [f"step {rollout.step + 1} passed ({within}): {share:g} next"])


def _too_slow(config: ProjectConfig, t: Traffic) -> str:
    c = config.canary
    if t.canary < c.step_min_requests or t.canary_p99_ms is None or t.champion_p99_ms is None:
        return ""
    if t.canary_p99_ms <= c.latency_floor_ms:
        return ""
    if t.canary_p99_ms <= c.max_latency_ratio * t.champion_p99_ms:
        return ""
    return (f"canary p99 {t.canary_p99_ms:.1f} ms is over canary.max_latency_ratio="
            f"{c.max_latency_ratio:g} x the champion's {t.champion_p99_ms:.1f} ms")  # fmt: skip


def _enough_rows(config: ProjectConfig, q: Quality) -> bool:
    c = config.canary
    return all(
        rows >= c.min_labelled_rows and min(positives, rows - positives) >= c.min_positives
        for rows, positives in ((q.canary_rows, q.canary_positives),
                                (q.champion_rows, q.champion_positives))
    )  # fmt: skip


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


# --- evidence -----------------------------------------------------------------------------------


def step_traffic(prometheus: str, model: str, seconds: float) -> Traffic:
    """The gateways' canary requests and failures, and p99 per arm, over the last `seconds`
    (the step so far:
    an earlier canary's requests never count; a range with fewer than two scrapes counts
    nothing yet, so the step holds).

    Raises:
        MonitoringError: Prometheus does not answer.
    """
    from monitoring.stack import query

    window = f"{max(int(math.ceil(seconds)), 1)}s"
    selector = f'model="{model}"'
    counts = {
        r["metric"].get("outcome", ""): float(r["value"][1])
        for r in query(prometheus, f"sum by (outcome) (increase(gateway_canary_requests_total"
                                   f'{{{selector},arm="canary"}}[{window}]))')
    }  # fmt: skip
    p99 = {
        r["metric"].get("arm", ""): float(r["value"][1])
        for r in query(prometheus, "histogram_quantile(0.99, sum by (arm, le) (rate("
                                   f"gateway_canary_upstream_duration_seconds_bucket{{{selector}}}"
                                   f"[{window}])))")
    }  # fmt: skip

    def ms(arm: str) -> float | None:
        value = p99.get(arm)
        return value * 1000.0 if value is not None and math.isfinite(value) else None

    failed = counts.get("fallback", 0.0)
    return Traffic(counts.get("ok", 0.0) + failed, failed, ms("canary"), ms("champion"))


def canary_alerts(prometheus: str, rollout: Rollout) -> tuple[str, ...]:
    """Names of the alerts labelled `rollout="canary"` firing for the rollout's canary
    (`its_alerts`).

    Raises:
        MonitoringError: Prometheus does not answer.
    """
    from monitoring.stack import firing_alerts_since

    return its_alerts(firing_alerts_since(prometheus), rollout)


def its_alerts(
    firing: Sequence[tuple[Mapping[str, str], datetime | None]], rollout: Rollout
) -> tuple[str, ...]:
    """Names of the `firing` alerts labelled `rollout="canary"` for the rollout's model that
    became active once its canary was published: one active since before is a predecessor's,
    still firing over its range just after a rollback (the step's own error and latency
    rules judge this canary meanwhile)."""
    return tuple(sorted({
        labels["alertname"] for labels, active in firing
        if labels.get("rollout") == "canary" and labels.get("model") == rollout.model
        and (active is None or active >= rollout.since)
    }))  # fmt: skip


def live_quality(config: ProjectConfig, log_root: Path, rollout: Rollout) -> Quality:
    """Labelled rows the canary answered and those the champion answered since the canary was
    published (by arrival time, so replays that state old event times count), compared."""
    from serving.inference_log import MODEL_VERSION, RECEIVED, read_log

    # Only files written since the canary began (less CLOCK_SKEW): on a busy log the
    # per-minute tick reads the rollout's rows, not the retained months.
    since = pd.Timestamp(rollout.since)
    rows = read_log(log_root, rollout.model, written_since=since - CLOCK_SKEW)
    empty = Quality(0, 0, 0, 0, None)
    if rows.empty or TARGET_COLUMN not in rows:
        return empty
    received = pd.to_datetime(rows[RECEIVED], utc=True) if RECEIVED in rows else None
    labelled = rows[rows[TARGET_COLUMN].notna()]
    if received is not None:
        labelled = labelled[received[labelled.index] >= since]
    version = labelled[MODEL_VERSION].astype(str)
    sides = []
    for who, threshold in ((rollout.challenger, rollout.thresholds[0]),
                           (rollout.champion, rollout.thresholds[1])):  # fmt: skip
        mine = labelled[version == who]
        sides.append((mine[TARGET_COLUMN].to_numpy(dtype=int),
                      mine[SCORE_COLUMN].to_numpy(dtype=float), threshold))  # fmt: skip
    comparison = compare_independent(config, sides[0], sides[1])
    return Quality(len(sides[0][0]), int(np.sum(sides[0][0])), len(sides[1][0]),
                   int(np.sum(sides[1][0])), comparison)  # fmt: skip


def gather(
    config: ProjectConfig, rollout: Rollout, *, prometheus: str, log_root: Path, now: datetime
) -> Evidence:
    """The step's evidence; what cannot be read is named in `unreadable` (fail closed)."""
    from monitoring.stack import MonitoringError
    from serving.inference_log import InferenceLogError

    unreadable: list[str] = []
    traffic: Traffic | None = None
    alerts: tuple[str, ...] = ()
    quality: Quality | None = None
    try:
        alerts = canary_alerts(prometheus, rollout)
        seconds = (now - rollout.step_since).total_seconds()
        traffic = step_traffic(prometheus, rollout.model, seconds)
    except MonitoringError as exc:
        unreadable.append(f"Prometheus: {exc}")
    try:
        quality = live_quality(config, log_root, rollout)
    except (InferenceLogError, OSError, ValueError, KeyError) as exc:
        unreadable.append(f"inference log {log_root}: {exc}")
    return Evidence(traffic, alerts, quality, tuple(unreadable))


# --- the registry and the serving repository ---------------------------------------------------


def current_rollout(config: ProjectConfig) -> Rollout | None:
    """The registry's canary of the project's model; None when there is none.

    Raises:
        RegistryError: The registry cannot be read.
        CanaryError: A canary without a champion, a threshold or readable step tags.
    """
    import mlflow

    from models.registry import CANARY, challenger_version, champion_version

    name = config.model_name
    challenger = challenger_version(name, CANARY)
    if challenger is None:
        return None
    champion = champion_version(name)
    if champion is None:
        raise CanaryError(f"model '{name}' has a canary (version {challenger}) but no champion")
    client = mlflow.MlflowClient()
    tags = client.get_model_version(name, challenger).tags
    theirs = client.get_model_version(name, champion).tags
    try:
        since = datetime.fromisoformat(tags["canary.since"])
        return Rollout(
            model=name, champion=champion, challenger=challenger,
            step=int(tags.get("canary.step", "0")), share=float(tags["canary.share"]),
            since=since, step_since=datetime.fromisoformat(tags.get("canary.step_since") or
                                                           tags["canary.since"]),
            thresholds=(float(tags["threshold"]), float(theirs["threshold"])),
        )  # fmt: skip
    except (KeyError, ValueError) as exc:
        raise CanaryError(
            f"canary version {challenger} of '{name}' (champion {champion}) lacks a readable "
            f"tag: {exc}",
            hint="abort it (python -m monitoring.canary abort) and rerun the pipeline",
        ) from exc


def apply(
    config: ProjectConfig,
    rollout: Rollout,
    verdict: Verdict,
    *,
    repo: Path | None,
    triton_url: str | None,
    now: datetime,
) -> None:
    """Carry out `verdict` (a hold moves nothing), under the promotion lock, only while the
    `canary` and `champion` aliases still name the versions decided on.

    Raises:
        CanaryError, ChampionMovedError: A version moved since the evidence was read.
        ArtifactIntegrityError, DeployError: Publishing failed (the registry is unchanged).
    """
    from models.registry import (
        challenger_version,
        champion_version,
        promotion_lock,
        tag_challenger,
    )
    from serving.challenger_model import (
        CANARY,
        promote_challenger,
        publish_challenger,
        retire_challenger,
    )

    if verdict.action == "hold":
        return
    name, version, reason = rollout.model, rollout.challenger, verdict.reasons[0]
    with promotion_lock(name):
        if (
            challenger_version(name, CANARY) != version
            or champion_version(name) != rollout.champion
        ):
            raise CanaryError(f"the canary or champion of '{name}' moved since this tick read "
                              "them; nothing moved", hint="tick again")  # fmt: skip
        if verdict.action == "rollback":
            retire_challenger(name, CANARY, version, f"rolled back: {reason}", repo=repo)
        elif verdict.action == "step":
            if repo is not None:
                publish_challenger(repo, name, version, CANARY, share=verdict.share,
                                   triton_url=triton_url)  # fmt: skip
            tag_challenger(name, CANARY, version, {
                "share": f"{verdict.share:g}", "step": str(rollout.step + 1),
                "step_since": now.isoformat(timespec="seconds")})  # fmt: skip
        else:  # promote
            promote_challenger(
                name, CANARY, version, expected=rollout.champion,
                event=f"promoted by canary: {reason}", outcome=f"promoted: {reason}", repo=repo,
                keep=config.serving.keep_versions, triton_url=triton_url,
            )  # fmt: skip


# --- one tick -----------------------------------------------------------------------------------


def record(
    config: ProjectConfig, rollout: Rollout, verdict: Verdict, evidence: Evidence, now: datetime
) -> dict[str, Any]:
    """The decision as written to `reports/canary/` (runbook: An aborted canary)."""
    t, q = evidence.traffic, evidence.quality
    cmp = q.comparison if q is not None else None
    return {
        "project": config.name,
        "model": rollout.model,
        "champion": rollout.champion,
        "challenger": rollout.challenger,
        "decision": verdict.action,
        "step": rollout.step,
        "share_before": rollout.share,
        "share_after": verdict.share,
        "reasons": verdict.reasons,
        "checks": {
            "requests": None if t is None else round(t.canary, 1),
            "error_rate": None if t is None or not t.canary else round(t.fallbacks / t.canary, 4),
            "p99_ms": None
            if t is None
            else {"canary": t.canary_p99_ms, "champion": t.champion_p99_ms},  # fmt: skip
            "quality": None
            if q is None
            else {
                "metric": config.evaluation.primary_metric,
                "rows": {"canary": q.canary_rows, "champion": q.champion_rows},
                "positives": {"canary": q.canary_positives, "champion": q.champion_positives},
                **(
                    {}
                    if cmp is None
                    else {
                        "canary": cmp.challenger,
                        "champion": cmp.opponent_value,
                        "gain": cmp.gain,
                        "gain_low": cmp.gain_low,
                        "gain_high": cmp.gain_high,
                        "required": cmp.required,
                    }
                ),
            },  # fmt: skip
            "alerts": list(evidence.alerts),
            "unreadable": list(evidence.unreadable),
        },
        "limits": config.canary.model_dump(mode="json"),
        "since": rollout.since.isoformat(),
        "step_since": rollout.step_since.isoformat(),
        "decided_at": now.isoformat(timespec="seconds"),
    }


def write_record(entry: dict[str, Any], out: Path) -> Path:
    """`out/<project>/<decided_at>.json`."""
    stamp = entry["decided_at"].replace(":", "").replace("+0000", "Z")
    path = out / entry["project"] / f"{stamp}-{entry['decision']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=2, default=str))
    return path


def canary_samples(entry: dict[str, Any]) -> list[Sample]:
    """The decision as gauges (`CANARY_METRICS`)."""
    versions = {"champion": entry["champion"], "challenger": entry["challenger"]}
    state = {"promote": "promoted", "rollback": "rolled_back"}.get(entry["decision"], "running")
    return [
        Sample(
            "mlops_canary_share",
            float(entry["share_after"]) if state == "running" else 0.0,
            versions,
        ),  # fmt: skip
        *(
            Sample("mlops_canary_state", float(s == state), {"state": s, **versions})
            for s in STATES
        ),  # fmt: skip
    ]


def tick(
    config: ProjectConfig,
    *,
    prometheus: str,
    log_root: Path,
    repo: Path | None,
    triton_url: str | None = None,
    out: Path = REPORTS_ROOT,
    pushgateway: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """Gather, decide, act (unless `dry_run`) and record; the record, or None without a
    canary."""
    rollout = current_rollout(config)
    if rollout is None:
        return None
    now = now or datetime.now(UTC)
    evidence = gather(config, rollout, prometheus=prometheus, log_root=log_root, now=now)
    verdict = decide(config, rollout, evidence, now)
    if not dry_run:
        apply(config, rollout, verdict, repo=repo, triton_url=triton_url, now=now)
    entry = record(config, rollout, verdict, evidence, now) | {"dry_run": dry_run}
    entry["path"] = str(write_record(entry, out))
    if pushgateway and not dry_run:
        push(pushgateway, CANARY_JOB, canary_samples(entry), {"project": config.name},
             CANARY_METRICS)  # fmt: skip
    return entry


def abort(
    config: ProjectConfig,
    reason: str,
    *,
    repo: Path | None,
    out: Path = REPORTS_ROOT,
    pushgateway: str | None = None,
) -> dict[str, Any] | None:
    """Roll the canary back by hand; the record, or None without a canary."""
    rollout = current_rollout(config)
    if rollout is None:
        return None
    now = datetime.now(UTC)
    verdict = Verdict("rollback", 0.0, [f"aborted by hand: {reason}"])
    apply(config, rollout, verdict, repo=repo, triton_url=None, now=now)
    entry = record(config, rollout, verdict, Evidence(), now)
    entry["path"] = str(write_record(entry, out))
    if pushgateway:
        push(pushgateway, CANARY_JOB, canary_samples(entry), {"project": config.name},
             CANARY_METRICS)  # fmt: skip
    return entry


def _print(entry: dict[str, Any]) -> None:
    print(f"canary v{entry['challenger']} beside champion v{entry['champion']}: "
          f"{entry['decision'].upper()} (share {entry['share_before']:g} -> "
          f"{entry['share_after']:g}){' (dry run)' if entry.get('dry_run') else ''}")  # fmt: skip
    for reason in entry["reasons"]:
        print(f"  - {reason}")
    print(f"  record: {entry['path']}")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    from models.registry import ChampionMovedError, RegistryError, configure_tracking
    from serving.deploy import SERVING_REPOSITORY, DeployError, local_triton_url

    parser = cli_parser(__doc__, prog="python -m monitoring.canary", make="make canary")
    commands = parser.add_subparsers(dest="command", required=True,
                                     help="status, tick, run or abort")  # fmt: skip
    for name, text in (
        ("status", "show the canary as the registry holds it"),
        ("tick", "gather the step's evidence, decide, act and record once"),
        ("run", "tick every --interval-s until the canary is promoted or rolled back"),
        ("abort", "roll the canary back by hand"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--project", default="fraud", help="config name or YAML path")
        if name == "status":
            continue
        sub.add_argument("--repo", type=Path, default=SERVING_REPOSITORY,
                         help="Triton model repository (make serve's)")  # fmt: skip
        sub.add_argument(
            "--registry-only",
            action="store_true",
            help="move only the registry (the cluster: its sidecar publishes)",
        )
        sub.add_argument("--out", type=Path, default=REPORTS_ROOT, help="decision records")
        sub.add_argument("--pushgateway", help="push mlops_canary_* (job canary)")
        if name == "abort":
            sub.add_argument("--reason", required=True, help="why, for the record")
            continue
        sub.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus URL")
        sub.add_argument("--log-path", type=Path, help="inference log root (monitoring.log_path)")
        sub.add_argument("--triton-url", help="Triton polling --repo (default: make serve's)")
        sub.add_argument("--dry-run", action="store_true", help="decide and record, move nothing")
        if name == "run":
            sub.add_argument("--interval-s", type=float, default=60.0, help="seconds between ticks")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        configure_tracking(Path.cwd())
        if args.command == "status":
            rollout = current_rollout(config)
            print("no canary" if rollout is None else json.dumps(asdict(rollout), default=str))
            return 0
        repo = None if args.registry_only else args.repo
        if args.command == "abort":
            entry = abort(config, args.reason, repo=repo, out=args.out,
                          pushgateway=args.pushgateway)  # fmt: skip
            print("no canary" if entry is None else f"rolled back: {entry['path']}")
            return 0
        log_root = args.log_path or Path(config.monitoring.log_path)
        triton_url = None if repo is None else args.triton_url or local_triton_url(repo)
        while True:
            entry = tick(config, prometheus=args.prometheus, log_root=log_root, repo=repo,
                         triton_url=triton_url, out=args.out, pushgateway=args.pushgateway,
                         dry_run=args.dry_run)  # fmt: skip
            if entry is None:
                print("no canary")
                return 0
            _print(entry)
            if args.command == "tick" or entry["decision"] in ("promote", "rollback"):
                return 0
            time.sleep(args.interval_s)
    except ChampionMovedError as exc:
        return fail(exc)
    except (ConfigError, RegistryError, DeployError, PushError, CanaryError) as exc:
        return fail(exc)


if __name__ == "__main__":
    sys.exit(main())
