"""The promotion gate: a pure decision on paired bootstrap comparisons and slice floors.

The challenger becomes champion only if, on the same test rows, the lower bound of the
paired bootstrap interval of its gain over each opponent (the current champion, the
baseline) exceeds that opponent's margin, and no reported slice falls below the floor.
A champion that exists but cannot be scored blocks the promotion (fail closed), unless
`gate.allow_baseline_only_when_champion_unusable` is set, which the record then says.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from configs.schema import ProjectConfig
from models.evaluate import SliceRow, bootstrap_indices, bootstrap_scores, interval, score


@dataclass(frozen=True)
class Comparison:
    """The challenger's gain over one opponent on the primary metric."""

    opponent: str
    challenger: float
    opponent_value: float
    opponent_low: float
    opponent_high: float
    gain: float
    gain_low: float
    gain_high: float
    required: float

    @property
    def passed(self) -> bool:
        """True when the whole interval of the gain lies above the required margin."""
        return self.gain_low > self.required


@dataclass(frozen=True)
class Decision:
    """The gate's decision record: what was compared, the numbers, and why."""

    promote: bool
    reasons: list[str]
    metric: str
    confidence: float
    comparisons: list[Comparison] = field(default_factory=list)
    slice_failures: list[SliceRow] = field(default_factory=list)
    champion_unusable: str = ""
    baseline_only_override: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the decision record artifact)."""
        out = asdict(self)
        for row, comparison in zip(out["comparisons"], self.comparisons, strict=True):
            row["passed"] = comparison.passed
        return out


def compare(
    name: str,
    metric: str,
    y: np.ndarray,
    p_challenger: np.ndarray,
    p_opponent: np.ndarray,
    indices: np.ndarray,
    confidence: float,
    required: float,
    thresholds: tuple[float, float] = (0.5, 0.5),
) -> Comparison:
    """Paired bootstrap of the challenger's gain over one opponent (same resampled rows)."""
    ours = bootstrap_scores(metric, y, p_challenger, indices, thresholds[0])
    theirs = bootstrap_scores(metric, y, p_opponent, indices, thresholds[1])
    point_ours = score(metric, y, p_challenger, thresholds[0])
    point_theirs = score(metric, y, p_opponent, thresholds[1])
    gain = interval(point_ours - point_theirs, ours - theirs, confidence)
    theirs_iv = interval(point_theirs, theirs, confidence)
    return Comparison(
        name,
        point_ours,
        point_theirs,
        theirs_iv.low,
        theirs_iv.high,
        gain.value,
        gain.low,
        gain.high,
        required,
    )


def decide_promotion(
    config: ProjectConfig,
    y_test: np.ndarray,
    challenger: tuple[np.ndarray, float],
    baseline: tuple[np.ndarray, float],
    champion: tuple[np.ndarray, float] | None,
    challenger_slices: list[SliceRow],
    champion_unusable: str = "",
) -> Decision:
    """Decide whether the challenger replaces the champion.

    Args:
        config: Project config (metric, bootstrap settings, margins, slice floor, override).
        y_test: Test labels.
        challenger, baseline, champion: (test probabilities, decision threshold); the
            champion is None when there is none yet or it could not be scored.
        challenger_slices: The challenger's per-slice metrics on the test set.
        champion_unusable: Why an existing champion could not be scored (empty when there is
            none): the challenger is then refused unless the config's override allows a
            comparison with the baseline only.
    """
    ev, gate = config.evaluation, config.gate
    metric = ev.primary_metric
    indices = bootstrap_indices(len(y_test), ev.bootstrap_samples, ev.seed)
    opponents = [("baseline", baseline, gate.min_gain_over_baseline)]
    if champion is not None:
        opponents.append(("champion", champion, gate.min_gain_over_champion))
    comparisons = [
        compare(
            name,
            metric,
            y_test,
            challenger[0],
            probs,
            indices,
            ev.confidence,
            margin,
            (challenger[1], threshold),
        )
        for name, (probs, threshold), margin in opponents
    ]
    slice_failures = [
        row
        for row in challenger_slices
        if not math.isnan(float(row[metric])) and float(row[metric]) < gate.min_slice_metric
    ]
    # What blocked the promotion comes first, so reasons[0] is the deciding one.
    reasons = [_reason(c, metric, ev.confidence) for c in comparisons if not c.passed]
    reasons += [
        f"slice {row['slice']}={row['value']}: {metric} {float(row[metric]):.4f} "
        f"below the floor {gate.min_slice_metric:.4f}"
        for row in slice_failures
    ]
    reasons += [_reason(c, metric, ev.confidence) for c in comparisons if c.passed]
    promote = all(c.passed for c in comparisons) and not slice_failures
    override = False
    if champion_unusable and gate.allow_baseline_only_when_champion_unusable:
        override = True
        reasons.append(
            f"{champion_unusable}; compared with the baseline only, as "
            "gate.allow_baseline_only_when_champion_unusable is set"
        )
    elif champion_unusable:
        promote = False
        reasons.insert(
            0,
            f"{champion_unusable}: refused, a challenger is promoted only after a comparison "
            "with the champion it replaces (gate.allow_baseline_only_when_champion_unusable: "
            "true compares with the baseline only, e.g. for an intended schema change)",
        )
    elif champion is None:
        reasons.append("no current champion: compared with the baseline only")
    return Decision(
        promote, reasons, metric, ev.confidence, comparisons, slice_failures,
        champion_unusable, override,
    )  # fmt: skip


def _reason(c: Comparison, metric: str, confidence: float) -> str:
    verdict = "beats" if c.passed else "does not beat"
    return (
        f"challenger {verdict} {c.opponent}: {metric} {c.challenger:.4f} vs "
        f"{c.opponent_value:.4f}, gain {c.gain:+.4f} ({confidence:.0%} CI "
        f"{c.gain_low:+.4f}..{c.gain_high:+.4f}), required > {c.required:+.4f}"
    )
