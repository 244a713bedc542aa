"""The canary rule: each branch of `decide` with evidence where that branch must win, the
unpaired live comparison it rests on, and what a decision records and pushes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from configs import load_config
from models.gate import compare_independent
from monitoring.canary import (
    Evidence,
    Quality,
    Rollout,
    Traffic,
    canary_samples,
    decide,
    its_alerts,
    live_quality,
    record,
)
from monitoring.contract import CANARY_METRICS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def config():
    base = load_config("fraud")
    limits = {"steps": (0.1, 0.5), "step_min_minutes": 10.0, "step_min_requests": 100,
              "min_labelled_rows": 100}  # fmt: skip
    canary = base.canary.model_copy(update=limits)
    evaluation = base.evaluation.model_copy(update={"bootstrap_samples": 200})
    return base.model_copy(update={"canary": canary, "evaluation": evaluation})


def _rollout(step: int = 0, minutes: float = 30.0, share: float = 0.1) -> Rollout:
    began = NOW - timedelta(minutes=minutes)
    return Rollout("m", "1", "2", step, share, began - timedelta(hours=1), began, (0.5, 0.5))


def _traffic(canary=500.0, fallbacks=0.0, p99=(10.0, 10.0)) -> Traffic:
    return Traffic(canary, fallbacks, p99[0], p99[1])


def _labelled(auc_shift: float, n: int, seed: int):
    """(labels, scores, threshold): scores separate the classes by `auc_shift`."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    return y, 1 / (1 + np.exp(-(rng.normal(size=n) + auc_shift * y))), 0.5


def _quality(config, canary_shift=2.0, champion_shift=2.0, n=600) -> Quality:
    canary, champion = _labelled(canary_shift, n, 1), _labelled(champion_shift, n, 2)
    return Quality(n, int(canary[0].sum()), n, int(champion[0].sum()),
                   compare_independent(config, canary, champion))  # fmt: skip


def test_a_step_within_limits_steps_up(config):
    verdict = decide(config, _rollout(), Evidence(_traffic(), (), _quality(config)), NOW)
    assert verdict.action == "step" and verdict.share == 0.5
    assert verdict.reasons[0].startswith("step 1 passed (within limits: 0 of 500")


def test_the_last_step_promotes_only_with_enough_labelled_rows(config):
    last = _rollout(step=1, share=0.5)
    good = decide(config, last, Evidence(_traffic(), (), _quality(config)), NOW)
    assert good.action == "promote" and good.share == 1.0
    few = Quality(40, 10, 40, 10, None)
    held = decide(config, last, Evidence(_traffic(), (), few), NOW)
    assert held.action == "hold" and "canary.min_labelled_rows=100" in held.reasons[0]
    # slightly worse on 150 rows is not significantly worse: the guardrail holds, it promotes
    unsure = decide(config, last, Evidence(_traffic(), (), _quality(config, 1.7, 2.0, 150)), NOW)
    assert unsure.action == "promote" and "not below -0.0100" in unsure.reasons[0]


def test_only_this_canarys_alerts_count_not_a_predecessors_still_firing():
    rollout = _rollout()  # published 90 minutes before NOW
    mine = {"alertname": "CanaryErrorRateHigh", "rollout": "canary", "model": "m"}
    firing = [
        (mine, rollout.since + timedelta(minutes=5)),
        ({**mine, "alertname": "CanaryLatencyHigh"}, rollout.since - timedelta(seconds=30)),
        ({**mine, "alertname": "TritonDown", "rollout": ""}, NOW),  # not a rollout alert
        ({**mine, "alertname": "Other", "model": "n"}, NOW),  # another model's canary
        ({**mine, "alertname": "NoTime"}, None),  # no activeAt: counted (fail closed)
    ]
    assert its_alerts(firing, rollout) == ("CanaryErrorRateHigh", "NoTime")


def test_a_firing_canary_alert_rolls_back_whatever_else_says(config):
    evidence = Evidence(_traffic(), ("CanaryErrorRateHigh",), _quality(config))
    verdict = decide(config, _rollout(step=1, share=0.5), evidence, NOW)
    assert verdict.action == "rollback" and verdict.share == 0.0
    assert verdict.reasons == ["alert firing: CanaryErrorRateHigh"]


def test_failed_canary_requests_roll_back_even_early_in_a_step(config):
    # 2 of 30 failed: over 1% of the 100 requests a step needs, before the step has them
    early = decide(config, _rollout(minutes=1), Evidence(_traffic(30, 2), (), _quality(config)),
                   NOW)  # fmt: skip
    assert early.action == "rollback" and "2 of 30 canary requests failed" in early.reasons[0]
    # 1 of 30 is within 1% of 100: wait for more
    within = decide(config, _rollout(minutes=1), Evidence(_traffic(30, 1), (), _quality(config)),
                    NOW)  # fmt: skip
    assert within.action == "hold"


def test_a_slow_canary_rolls_back_but_not_under_the_latency_floor(config):
    slow = decide(config, _rollout(), Evidence(_traffic(p99=(40.0, 10.0)), (), _quality(config)),
                  NOW)  # fmt: skip
    assert slow.action == "rollback" and "p99 40.0 ms is over" in slow.reasons[0]
    fast = decide(config, _rollout(), Evidence(_traffic(p99=(15.0, 5.0)), (), _quality(config)),
                  NOW)  # fmt: skip
    assert fast.action == "step"  # 3x the champion, but under latency_floor_ms (20)


def test_a_canary_significantly_worse_on_live_rows_rolls_back(config):
    worse = _quality(config, canary_shift=-1.0)
    verdict = decide(config, _rollout(), Evidence(_traffic(), (), worse), NOW)
    assert verdict.action == "rollback" and verdict.reasons[0].startswith("worse than the champion")


def test_a_young_or_quiet_step_holds(config):
    young = decide(config, _rollout(minutes=2), Evidence(_traffic(), (), _quality(config)), NOW)
    assert (
        young.action == "hold" and "has run 2.0 of canary.step_min_minutes=10" in young.reasons[0]
    )
    quiet = decide(config, _rollout(), Evidence(_traffic(canary=50), (), _quality(config)), NOW)
    assert quiet.action == "hold" and "50 of canary.step_min_requests=100" in quiet.reasons[0]


def test_unreadable_evidence_moves_nothing(config):
    evidence = Evidence(None, (), None, ("Prometheus: cannot reach it",))
    verdict = decide(config, _rollout(), evidence, NOW)
    assert verdict.action == "hold" and verdict.share == 0.1
    assert verdict.reasons == ["evidence unreadable, nothing moves: Prometheus: cannot reach it"]


def test_the_independent_comparison_is_none_without_both_classes(config):
    one_class = (np.zeros(50, dtype=int), np.full(50, 0.2), 0.5)
    assert compare_independent(config, one_class, _labelled(2.0, 50, 3)) is None
    same = compare_independent(config, _labelled(2.0, 2000, 4), _labelled(2.0, 2000, 5))
    assert same is not None and same.gain_low < 0 < same.gain_high
    assert same.gain_high - same.gain_low > 0.03  # unpaired: wider than a paired interval


def test_a_record_and_its_gauges(config):
    evidence = Evidence(_traffic(500, 6), (), _quality(config))
    rollout = _rollout()
    verdict = decide(config, rollout, evidence, NOW)
    entry = record(config, rollout, verdict, evidence, NOW)
    assert entry["decision"] == "rollback" and entry["share_after"] == 0.0
    assert entry["checks"]["error_rate"] == 0.012 and entry["checks"]["quality"]["rows"]["canary"]
    samples = canary_samples(entry)
    assert {s.name for s in samples} == set(CANARY_METRICS)
    states = {s.labels["state"]: s.value for s in samples if s.name == "mlops_canary_state"}
    assert states == {"running": 0.0, "promoted": 0.0, "rolled_back": 1.0}


def test_live_quality_reads_only_what_arrived_since_the_canary_began(config, tmp_path):
    """The per-minute tick reads only the log files written since the canary began: older files
    (here also a corrupt one, which a read would set aside as unreadable) are not opened; the
    rows and late labels that arrived since are all counted, per arm."""
    import os

    import pandas as pd

    from serving.inference_log import (
        RECEIVED,
        label_frame,
        prediction_frame,
        write_labels,
        write_predictions,
    )

    def rows(version: str, ids: list[str], received: datetime) -> pd.DataFrame:
        n = len(ids)
        return prediction_frame(
            model="m", version=version, features=pd.DataFrame({"amount": np.ones(n)}),
            scores=np.linspace(0.1, 0.9, n), decisions=np.zeros(n, dtype=int),
            request_ids=ids, timestamps=[received - timedelta(days=30)] * n,  # a replay
        ).assign(**{RECEIVED: pd.Timestamp(received)})  # fmt: skip

    now = datetime.now(UTC)
    rollout = Rollout("m", "1", "2", 0, 0.1, now - timedelta(minutes=5), now, (0.5, 0.5))
    before = now - timedelta(days=2)
    write_predictions(tmp_path, "m", rows("1", ["old-a", "old-b"], before))
    write_labels(tmp_path, "m", label_frame(["old-a", "old-b"], [1, 0], pd.Timestamp(before)))
    corrupt = tmp_path / "m" / "predictions" / "date=2026-01-01" / "part-corrupt.parquet"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"not parquet")
    for path in (tmp_path / "m").rglob("part-*.parquet"):
        os.utime(path, (before.timestamp(), before.timestamp()))
    write_predictions(tmp_path, "m", rows("2", ["c1", "c2", "c3"], now))
    write_predictions(tmp_path, "m", rows("1", ["h1", "h2"], now))
    write_labels(tmp_path, "m", label_frame(["c1", "c2", "c3", "h1", "h2"], [1, 0, 1, 0, 1]))

    quality = live_quality(config, tmp_path, rollout)
    assert (quality.canary_rows, quality.canary_positives) == (3, 2)
    assert (quality.champion_rows, quality.champion_positives) == (2, 1)
    assert corrupt.exists()  # never opened, so not set aside
