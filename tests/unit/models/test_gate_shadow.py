"""The shadow decision: live paired evidence beside the offline gate, and which one decided."""

from __future__ import annotations

import numpy as np
import pytest

from configs import load_config
from models.gate import LIVE, OFFLINE, LiveEvidence, compare_live, decide_from_shadow


def _config(rule: str = "both", min_rows: int = 200):
    config = load_config("fraud")
    return config.model_copy(
        update={
            "evaluation": config.evaluation.model_copy(update={"bootstrap_samples": 100}),
            "gate": config.gate.model_copy(
                update={"shadow_evidence": rule, "shadow_min_labelled_rows": min_rows,
                        "shadow_before_promotion": True}
            ),
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(5)
    y = (rng.random(2000) < 0.2).astype(int)
    strong = np.clip(0.6 * y + 0.4 * rng.random(2000), 0, 1)
    weak = np.clip(0.2 * y + 0.8 * rng.random(2000), 0, 1)
    return y, strong, weak


def _live(config, y, challenger, champion) -> LiveEvidence:
    comparison = compare_live(config, y, (challenger, 0.5), (champion, 0.5))
    return LiveEvidence("1", "2", len(y), int(y.sum()), "a", "b", len(y), comparison)


OFFLINE_PASSED = {"promote": True, "previous_champion": "1", "reasons": ["beats champion"]}
OFFLINE_FAILED = {"promote": False, "previous_champion": "1", "reasons": ["does not beat"]}


def test_both_pass_promotes_on_both_evidences(rows):
    y, strong, weak = rows
    config = _config()
    decision = decide_from_shadow(config, OFFLINE_PASSED, _live(config, y, strong, weak))
    assert decision.promote and decision.decided_by == [OFFLINE, LIVE]
    assert decision.reasons[0] == "promoted on offline and live evidence (rule: both)"
    record = decision.to_dict()
    assert record["live"]["rows"] == 2000 and record["live"]["comparison"]["passed"] is True
    assert record["live"]["comparison"]["gain_low"] > 0 and record["offline"]["passed"]


def test_a_worse_live_challenger_is_refused_by_the_live_rows(rows):
    y, strong, weak = rows
    config = _config()
    decision = decide_from_shadow(config, OFFLINE_PASSED, _live(config, y, weak, strong))
    assert not decision.promote and decision.decided_by == [LIVE]
    assert decision.reasons[1].startswith("live: 2000 labelled rows")


def test_offline_failure_decides_under_both_and_is_only_reported_under_live(rows):
    y, strong, weak = rows
    both = decide_from_shadow(_config(), OFFLINE_FAILED, _live(_config(), y, strong, weak))
    assert not both.promote and both.decided_by == [OFFLINE]
    live = decide_from_shadow(_config("live"), OFFLINE_FAILED, _live(_config(), y, strong, weak))
    assert live.promote and live.decided_by == [LIVE]
    assert "reported; gate.shadow_evidence: live" in live.reasons[2]


def test_offline_evidence_against_another_champion_does_not_count(rows):
    y, strong, weak = rows
    stale = {**OFFLINE_PASSED, "previous_champion": "0"}
    decision = decide_from_shadow(_config(), stale, _live(_config(), y, strong, weak))
    assert not decision.promote and decision.decided_by == [OFFLINE]
    assert "not the serving champion 1" in decision.reasons[1]


def test_too_few_labelled_rows_never_promote_and_say_why(rows):
    y, strong, weak = rows
    config = _config(min_rows=500)
    few = _live(config, y[:300], strong[:300], weak[:300])
    decision = decide_from_shadow(config, OFFLINE_PASSED, few)
    assert not decision.promote and decision.decided_by == [LIVE]
    assert decision.reasons[0].startswith("too few labelled shadow rows to decide: 300 rows")
    one_class = LiveEvidence("1", "2", 600, 0, "a", "b", 600, None)
    assert compare_live(config, np.zeros(600, int), (strong[:600], 0.5), (weak[:600], 0.5)) is None
    refused = decide_from_shadow(config, OFFLINE_PASSED, one_class)
    assert not refused.promote and "0 positive" in refused.reasons[0]
