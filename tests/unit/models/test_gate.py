import numpy as np
import pytest

from configs import load_config
from models.gate import decide_promotion, select_candidate


@pytest.fixture(scope="module")
def config():
    return load_config("fraud").model_copy(
        update={
            "evaluation": load_config("fraud").evaluation.model_copy(
                update={"bootstrap_samples": 100}
            )
        }
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.1).astype(int)
    strong = np.clip(0.6 * y + 0.4 * rng.random(3000), 0, 1)
    weak = np.clip(0.2 * y + 0.8 * rng.random(3000), 0, 1)
    return y, strong, weak


def test_clearly_better_challenger_is_promoted_with_reasons(config, data):
    y, strong, weak = data
    d = decide_promotion(config, y, (strong, 0.5), (weak, 0.5), (weak, 0.5), [])
    assert d.promote
    assert [c.opponent for c in d.comparisons] == ["baseline", "champion"]
    assert all(c.gain_low > 0 for c in d.comparisons)
    assert d.reasons[0].startswith("challenger beats baseline")
    record = d.to_dict()
    assert record["comparisons"][1]["passed"] is True


def test_identical_challenger_does_not_replace_champion(config, data):
    y, strong, weak = data
    d = decide_promotion(config, y, (strong, 0.5), (weak, 0.5), (strong, 0.5), [])
    assert not d.promote
    champion = d.comparisons[1]
    assert champion.gain == champion.gain_low == champion.gain_high == 0.0
    assert any("does not beat champion" in r for r in d.reasons)


def test_worse_challenger_is_rejected(config, data):
    y, strong, weak = data
    assert not decide_promotion(config, y, (weak, 0.5), (strong, 0.5), None, []).promote


def test_margin_over_baseline_is_required(config, data):
    y, strong, weak = data
    strict = config.model_copy(
        update={"gate": config.gate.model_copy(update={"min_gain_over_baseline": 0.99})}
    )
    d = decide_promotion(strict, y, (strong, 0.5), (weak, 0.5), None, [])
    assert not d.promote
    assert "required > +0.9900" in d.reasons[0]


def test_slice_below_floor_blocks_promotion_and_is_named(config, data):
    y, strong, weak = data
    slices = [
        {"slice": "channel", "value": "atm", "pr_auc": 0.05},
        {"slice": "channel", "value": "pos", "pr_auc": 0.9},
        {"slice": "channel", "value": "tiny", "pr_auc": float("nan")},
    ]
    d = decide_promotion(config, y, (strong, 0.5), (weak, 0.5), None, slices)
    assert not d.promote
    assert [s["value"] for s in d.slice_failures] == ["atm"]
    assert any("slice channel=atm" in r for r in d.reasons)


def test_no_champion_compares_with_the_baseline_only(config, data):
    y, strong, weak = data
    d = decide_promotion(config, y, (strong, 0.5), (weak, 0.5), None, [])
    assert d.promote and [c.opponent for c in d.comparisons] == ["baseline"]
    assert d.reasons[-1] == "no current champion: compared with the baseline only"
    assert not d.champion_unusable and not d.baseline_only_override


def test_an_unusable_champion_blocks_even_a_clear_winner(config, data):
    y, strong, weak = data
    why = "champion version 3 exists but could not be scored (KeyError: 'threshold')"
    d = decide_promotion(config, y, (strong, 0.5), (weak, 0.5), None, [], why)
    assert not d.promote
    assert d.reasons[0].startswith(f"{why}: refused")
    assert "gate.allow_baseline_only_when_champion_unusable: true" in d.reasons[0]
    record = d.to_dict()
    assert record["champion_unusable"] == why and record["baseline_only_override"] is False


def test_the_recorded_override_compares_with_the_baseline_only(config, data):
    y, strong, weak = data
    allowed = config.model_copy(
        update={
            "gate": config.gate.model_copy(
                update={"allow_baseline_only_when_champion_unusable": True}
            )
        }
    )
    why = "champion version 3 exists but could not be scored (ValueError: columns changed)"
    d = decide_promotion(allowed, y, (strong, 0.5), (weak, 0.5), None, [], why)
    assert d.promote and d.baseline_only_override
    assert d.reasons[0].startswith("challenger beats baseline")
    assert any(
        "compared with the baseline only, as gate.allow_baseline_only" in r for r in d.reasons
    )
    worse = decide_promotion(allowed, y, (weak, 0.5), (strong, 0.5), None, [], why)
    assert not worse.promote  # the override skips the champion, never the baseline


# --- candidate selection: superiority, else the simplest non-inferior candidate -------------------


def _gate(config, **update):
    return config.model_copy(update={"gate": config.gate.model_copy(update=update)})


@pytest.fixture(scope="module")
def close(data):
    """A baseline and a tuned model a hair better on average, not significantly (seed 3 of the
    noise gives a positive point gain whose interval spans zero)."""
    y, _, _ = data
    rng = np.random.default_rng(30)
    mid = np.clip(0.3 * y + 0.7 * rng.random(len(y)), 0, 1)
    tuned = mid + 0.003 * y + 0.01 * np.random.default_rng(3).normal(size=len(y))
    return tuned, mid


def test_a_clearly_better_tuned_model_is_selected_by_superiority(config, data):
    y, strong, weak = data
    s = select_candidate(config, y, (strong, 0.5), (weak, 0.5))
    assert (s.candidate, s.rule, s.best) == ("tuned", "superiority", "tuned")
    assert [c.opponent for c in s.comparisons] == ["baseline"]
    assert s.comparisons[0].gain_low > config.gate.min_gain_over_baseline
    assert s.reason.startswith("The tuned model beat the baseline significantly (pr_auc gain +")
    assert s.to_dict()["comparisons"][0]["passed"] is True


def test_a_worse_tuned_model_leaves_the_baseline_by_non_inferiority(config, data):
    y, strong, weak = data
    s = select_candidate(config, y, (weak, 0.5), (strong, 0.5))
    assert (s.candidate, s.rule, s.best) == ("baseline", "non-inferiority", "baseline")
    assert s.comparisons[0].gain_high < 0  # the tuned model is significantly worse
    assert s.comparisons[1].gain == 0.0 and s.required == -0.01  # the baseline vs itself
    assert s.reason.startswith("No tuned model beat the baseline significantly (pr_auc gain -")
    assert "selected the baseline, the simplest model within 0.0100 pr_auc of the best" in s.reason


def test_a_slightly_better_tuned_model_loses_to_the_simpler_baseline(config, data, close):
    y = data[0]
    tuned, baseline = close
    s = select_candidate(config, y, (tuned, 0.5), (baseline, 0.5))
    superiority, within = s.comparisons
    assert superiority.gain > 0 and superiority.gain_low <= 0 < superiority.gain_high < 0.01
    assert (s.candidate, s.rule, s.best) == ("baseline", "non-inferiority", "tuned")
    assert within.opponent == "tuned" and within.gain_low > -0.01 and within.passed
    assert "the baseline vs the best (the tuned model): pr_auc gain -" in s.reason


def test_a_tighter_margin_keeps_the_best_tuned_model(config, data, close):
    y = data[0]
    tuned, baseline = close
    s = select_candidate(_gate(config, noninferiority_margin=0.001), y, (tuned, 0.5),
                         (baseline, 0.5))  # fmt: skip
    assert (s.candidate, s.rule, s.best) == ("tuned", "non-inferiority", "tuned")
    rejected, chosen = s.comparisons[1:]
    assert rejected.opponent == "tuned" and rejected.gain_low <= -0.001 and not rejected.passed
    assert chosen.gain == 0.0 and chosen.passed  # the best vs itself
    assert "(the tuned model is the best; the baseline is simpler but not within the margin" in (
        s.reason
    )


def test_a_required_gain_the_tuned_model_misses_selects_it_by_non_inferiority(config, data):
    y, strong, weak = data
    strict = _gate(config, min_gain_over_baseline=0.7)  # the baseline is significantly worse
    s = select_candidate(strict, y, (strong, 0.5), (weak, 0.5))
    assert 0 < s.comparisons[0].gain_low <= 0.7
    assert (s.candidate, s.rule, s.best) == ("tuned", "non-inferiority", "tuned")
    gate = decide_promotion(strict, y, (strong, 0.5), (weak, 0.5), None, [], selection=s,
                            tuned=(strong, 0.5))  # fmt: skip
    assert gate.promote and gate.comparisons[0].required == -0.01
    assert gate.to_dict()["selection"]["rule"] == "non-inferiority"


def test_the_gate_promotes_a_baseline_selected_by_non_inferiority(config, data, close):
    y = data[0]
    tuned, baseline = close
    s = select_candidate(config, y, (tuned, 0.5), (baseline, 0.5))
    d = decide_promotion(config, y, (baseline, 0.5), (baseline, 0.5), None, [], selection=s,
                         tuned=(tuned, 0.5))  # fmt: skip
    assert d.promote
    row = d.comparisons[0]
    assert row.opponent == "tuned" and row.required == -0.01 and row.passed
    assert row.gain == s.comparisons[1].gain and row.gain_low == s.comparisons[1].gain_low
    assert d.reasons[0] == f"selection: {s.reason}"
    assert d.reasons[1].startswith("challenger is within the margin of the best candidate (tuned")
    with pytest.raises(ValueError, match="pass its scores as `tuned`"):
        decide_promotion(config, y, (baseline, 0.5), (baseline, 0.5), None, [], selection=s)


def test_a_baseline_challenger_still_needs_a_gain_over_the_champion(config, data):
    y, strong, weak = data
    s = select_candidate(config, y, (weak, 0.5), (strong, 0.5))
    assert s.candidate == "baseline"
    same = decide_promotion(config, y, (strong, 0.5), (strong, 0.5), (strong, 0.5), [],
                            selection=s)  # fmt: skip
    assert not same.promote
    assert [(c.opponent, c.passed) for c in same.comparisons] == [
        ("baseline", True),
        ("champion", False),
    ]
    assert same.reasons[0].startswith("challenger does not beat champion")
    assert same.reasons[-1] == f"selection: {s.reason}"
    assert same.comparisons[1].required == config.gate.min_gain_over_champion
    better = decide_promotion(config, y, (strong, 0.5), (strong, 0.5), (weak, 0.5), [],
                              selection=s)  # fmt: skip
    assert better.promote and better.comparisons[1].gain_low > 0


def test_an_unusable_champion_still_blocks_a_selected_baseline(config, data):
    y, strong, weak = data
    s = select_candidate(config, y, (weak, 0.5), (strong, 0.5))
    why = "champion version 3 exists but could not be scored (KeyError: 'threshold')"
    d = decide_promotion(config, y, (strong, 0.5), (strong, 0.5), None, [], why, selection=s)
    assert not d.promote and d.reasons[0].startswith(f"{why}: refused")


def test_repeated_rows_of_one_entity_are_one_observation_to_the_gate(config):
    """400 entities with 8 rows each: a row bootstrap counts 3,200 observations and finds a
    gain the 400 entities do not show; resampling whole entities gives the 400-row answer."""
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.2).astype(int)
    base = np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1)
    tuned = np.clip(base + 0.01 * y * np.random.default_rng(5).random(400), 0, 1)
    strict = _gate(config, min_gain_over_baseline=0.004)
    y8, base8, tuned8 = (np.repeat(a, 8) for a in (y, base, tuned))
    entity = np.repeat([f"e{i}" for i in range(400)], 8)
    once = select_candidate(strict, y, (tuned, 0.5), (base, 0.5))
    rows = select_candidate(strict, y8, (tuned8, 0.5), (base8, 0.5))
    grouped = select_candidate(strict, y8, (tuned8, 0.5), (base8, 0.5), entity)
    assert once.rule == grouped.rule == "non-inferiority" and rows.rule == "superiority"
    assert grouped.comparisons[0].gain_low == pytest.approx(once.comparisons[0].gain_low)
    decided = decide_promotion(strict, y8, (tuned8, 0.5), (base8, 0.5), None, [], groups=entity)
    assert not decided.promote and rows.comparisons[0].gain_low > 0.004
