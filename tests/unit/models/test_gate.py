import numpy as np
import pytest

from configs import load_config
from models.gate import decide_promotion


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
