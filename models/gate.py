"""Candidate selection and the promotion gate: pure decisions on paired bootstrap comparisons.

Selection (`select_candidate`): the tuned model becomes the challenger if the lower bound of
its gain over the baseline exceeds `gate.min_gain_over_baseline` (superiority); otherwise the
simplest candidate (the baseline first) whose paired difference to the best candidate has a
lower bound above `-gate.noninferiority_margin` (non-inferiority), so a run always leaves a
deployable best model.

Gate (`decide_promotion`): the challenger becomes champion only if, on the same test rows,
the lower bound of the paired bootstrap interval of its gain over each opponent exceeds that
opponent's margin, and no reported slice falls below the floor. The comparison with the
candidates follows the rule that selected the challenger; the one with an existing champion
always requires `gate.min_gain_over_champion`. A champion that exists but cannot be scored
blocks the promotion (fail closed), unless `gate.allow_baseline_only_when_champion_unusable`
is set, which the record then says.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from configs.schema import ProjectConfig
from models.evaluate import (
    Resamples,
    SliceRow,
    bootstrap_indices,
    bootstrap_scores,
    interval,
    score,
)


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


TUNED, BASELINE = "tuned", "baseline"
# Candidates from simplest to most complex: non-inferiority picks the first one that qualifies.
SIMPLICITY_ORDER = (BASELINE, TUNED)
SUPERIORITY, NON_INFERIORITY = "superiority", "non-inferiority"


@dataclass(frozen=True)
class Selection:
    """Which candidate becomes the challenger, by which rule, and the numbers behind it.

    `comparisons[0]` is the tuned model's gain over the baseline (the superiority test); under
    non-inferiority each candidate checked against the best one follows, simplest first, the
    selected one last.
    """

    candidate: str
    rule: str
    best: str
    margin: float
    comparisons: list[Comparison]
    reason: str

    @property
    def required(self) -> float:
        """The margin the challenger must clear against the candidate it is gated against."""
        return self.comparisons[-1].required

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (in the evaluation and decision records)."""
        out = asdict(self)
        for row, comparison in zip(out["comparisons"], self.comparisons, strict=True):
            row["passed"] = comparison.passed
        return out


def select_candidate(
    config: ProjectConfig,
    y_test: np.ndarray,
    tuned: tuple[np.ndarray, float],
    baseline: tuple[np.ndarray, float],
    groups: np.ndarray | None = None,
) -> Selection:
    """Choose the challenger among the tuned model and the baseline on the test set.

    Superiority: the tuned model if the lower bound of its paired gain over the baseline
    exceeds `gate.min_gain_over_baseline`. Otherwise non-inferiority: the best candidate is
    the one with the higher point estimate (the simpler one on a tie), and the simplest
    candidate whose paired difference to the best has a lower bound above
    `-gate.noninferiority_margin` is selected (the best always qualifies).

    Args:
        config: Project config (metric, bootstrap settings, margins).
        y_test: Test labels.
        tuned, baseline: (test probabilities, decision threshold) of each candidate.
        groups: The test rows' group keys (`split.group_column`): whole groups are resampled.
    """
    ev, gate = config.evaluation, config.gate
    metric, margin = ev.primary_metric, gate.noninferiority_margin
    indices = bootstrap_indices(len(y_test), ev.bootstrap_samples, ev.seed, groups)
    scores = {TUNED: tuned, BASELINE: baseline}

    def versus(ours: str, theirs: str, required: float) -> Comparison:
        (p_ours, t_ours), (p_theirs, t_theirs) = scores[ours], scores[theirs]
        return compare(
            theirs, metric, y_test, p_ours, p_theirs, indices, ev.confidence, required,
            (t_ours, t_theirs),
        )  # fmt: skip

    superiority = versus(TUNED, BASELINE, gate.min_gain_over_baseline)
    test = _gain_text(superiority, metric, ev.confidence)
    if superiority.passed:
        reason = (
            f"The tuned model beat the baseline significantly ({test}); "
            "by superiority, selected the tuned model."
        )
        return Selection(TUNED, SUPERIORITY, TUNED, margin, [superiority], reason)
    best = TUNED if superiority.gain > 0 else BASELINE
    checks: list[Comparison] = []
    for candidate in SIMPLICITY_ORDER:
        checks.append(versus(candidate, best, -margin))
        if candidate == best or checks[-1].passed:
            break
    within = (
        f"{_label(candidate)} is the best"
        if candidate == best
        else f"{_label(candidate)} vs the best ({_label(best)}): "
        + _gain_text(checks[-1], metric, ev.confidence)
    )
    skipped = "".join(
        f"; {_label(simpler)} is simpler but not within the margin "
        f"({_gain_text(check, metric, ev.confidence)})"
        for simpler, check in zip(SIMPLICITY_ORDER, checks[:-1], strict=False)
    )
    reason = (
        f"No tuned model beat the baseline significantly ({test}); by non-inferiority, selected "
        f"{_label(candidate)}, the simplest model within {margin:.4f} {metric} of the best "
        f"({within}{skipped})."
    )
    return Selection(candidate, NON_INFERIORITY, best, margin, [superiority, *checks], reason)


def _label(candidate: str) -> str:
    return "the baseline" if candidate == BASELINE else "the tuned model"


def _gain_text(c: Comparison, metric: str, confidence: float) -> str:
    return (
        f"{metric} gain {c.gain:+.4f}, {confidence:.0%} CI [{c.gain_low:+.4f}, "
        f"{c.gain_high:+.4f}], required > {c.required:+.4f}"
    )


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
    selection: Selection | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the decision record artifact)."""
        out = asdict(self)
        for row, comparison in zip(out["comparisons"], self.comparisons, strict=True):
            row["passed"] = comparison.passed
        if self.selection is not None:
            out["selection"] = self.selection.to_dict()
        return out


def compare(
    name: str,
    metric: str,
    y: np.ndarray,
    p_challenger: np.ndarray,
    p_opponent: np.ndarray,
    indices: Resamples,
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
    selection: Selection | None = None,
    tuned: tuple[np.ndarray, float] | None = None,
    groups: np.ndarray | None = None,
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
        selection: How the challenger was chosen (`select_candidate`). Without one, or under
            superiority, the challenger must beat the baseline by `min_gain_over_baseline`;
            under non-inferiority it must be within `noninferiority_margin` of the best
            candidate (itself, a zero gain, when it is the best).
        tuned: The tuned model's (probabilities, threshold); needed when the selection's best
            candidate is the tuned model.
        groups: The test rows' group keys (`split.group_column`): whole groups are resampled.
    """
    ev, gate = config.evaluation, config.gate
    metric = ev.primary_metric
    indices = bootstrap_indices(len(y_test), ev.bootstrap_samples, ev.seed, groups)
    opponents = [("baseline", baseline, gate.min_gain_over_baseline)]
    if selection is not None and selection.rule == NON_INFERIORITY:
        if selection.best == TUNED and tuned is None:
            raise ValueError("the best candidate is the tuned model: pass its scores as `tuned`")
        best = tuned if selection.best == TUNED and tuned is not None else baseline
        opponents = [(selection.best, best, -gate.noninferiority_margin)]
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
    within = selection is not None and selection.rule == NON_INFERIORITY
    texts = [
        _reason(c, metric, ev.confidence, within and i == 0) for i, c in enumerate(comparisons)
    ]
    reasons = [t for c, t in zip(comparisons, texts, strict=True) if not c.passed]
    reasons += [
        f"slice {row['slice']}={row['value']}: {metric} {float(row[metric]):.4f} "
        f"below the floor {gate.min_slice_metric:.4f}"
        for row in slice_failures
    ]
    reasons += [t for c, t in zip(comparisons, texts, strict=True) if c.passed]
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
    if selection is not None:
        reasons.insert(0 if promote else len(reasons), f"selection: {selection.reason}")
    return Decision(
        promote, reasons, metric, ev.confidence, comparisons, slice_failures,
        champion_unusable, override, selection,
    )  # fmt: skip


class SelectionMismatchError(RuntimeError):
    """The model handed to the gate is not the candidate the selection rule picks."""


def check_challenger(candidate: str | None, selection: Selection) -> None:
    """Refuse a challenger that is not the candidate the selection rule picks on this test set.

    Raises:
        SelectionMismatchError: `candidate` is not `selection.candidate`.
    """
    if candidate != selection.candidate:
        raise SelectionMismatchError(
            f"the challenger is the {candidate} model, but on this test set the selection "
            f"rule picks the {selection.candidate} one ({selection.reason})"
        )


def champion_unusable(version: str, exc: BaseException) -> str:
    """Why an existing champion could not be scored, as the decision record says it."""
    return (
        f"champion version {version} exists but could not be scored on this test "
        f"set ({exc.__class__.__name__}: {str(exc)[:300]})"
    )


def decision_record(
    decision: Decision, intervals: dict[str, dict[str, float]], **context: Any
) -> dict[str, Any]:
    """The decision record: the decision, `context`, and each model's interval of the primary
    metric (`intervals` from the evaluation, the champion's from its comparison)."""
    intervals = dict(intervals)
    for c in decision.comparisons:
        if c.opponent == "champion":
            intervals["champion"] = {
                "value": c.opponent_value,
                "low": c.opponent_low,
                "high": c.opponent_high,
            }
    return decision.to_dict() | context | {"intervals": intervals}


def decision_context(
    config: ProjectConfig, *, test_sha256: str, trigger: str, now: datetime | None = None
) -> dict[str, Any]:
    """What a reviewer needs to re-check a decision: when it was made, what started the run,
    the data it trained on, the test rows it rests on (their hash), the bootstrap size (and the
    column whose groups it resampled) and the margins applied."""
    gate = config.gate
    return {
        "decided_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "trigger": trigger,
        "data": config.data.describe(),
        "test_sha256": test_sha256,
        "bootstrap_samples": config.evaluation.bootstrap_samples,
        "bootstrap_groups": config.split.group_column,  # None: rows are resampled
        "margins": {
            "min_gain_over_baseline": gate.min_gain_over_baseline,
            "noninferiority_margin": gate.noninferiority_margin,
            "min_gain_over_champion": gate.min_gain_over_champion,
            "min_slice_metric": gate.min_slice_metric,
        },
    }


def _reason(c: Comparison, metric: str, confidence: float, within: bool = False) -> str:
    if within:  # a non-inferiority check against the best candidate
        verdict = "is within the margin of" if c.passed else "is not within the margin of"
        opponent = f"the best candidate ({_label(c.opponent).removeprefix('the ')})"
    else:
        verdict = "beats" if c.passed else "does not beat"
        opponent = c.opponent
    return (
        f"challenger {verdict} {opponent}: {metric} {c.challenger:.4f} vs "
        f"{c.opponent_value:.4f}, gain {c.gain:+.4f} ({confidence:.0%} CI "
        f"{c.gain_low:+.4f}..{c.gain_high:+.4f}), required > {c.required:+.4f}"
    )


# --- shadow traffic: live, paired evidence ------------------------------------------------------

OFFLINE, LIVE = "offline", "live"


def held_as(config: ProjectConfig, decision: Decision, champion: str | None) -> str | None:
    """The challenger slot a challenger that passed the gate goes to instead of champion:
    `shadow` (`gate.shadow_before_promotion`), `canary` (`gate.canary_before_promotion`) or
    None (promoted at once). Only with a champion serving: without one there is no live
    traffic to compare with, and the offline gate decides, as before."""
    if not decision.promote or champion is None:
        return None
    if config.gate.shadow_before_promotion:
        return "shadow"
    if config.gate.canary_before_promotion:
        return "canary"
    return None


def hold_reason(config: ProjectConfig, role: str, champion: str) -> str:
    """The first reason of a decision record held in `role` (`held_as`)."""
    if role == "shadow":
        return (
            f"passed offline; held in shadow beside champion version {champion} for live paired "
            "evidence (gate.shadow_before_promotion): `python -m monitoring.shadow promote` "
            "decides"
        )
    return (
        f"passed offline; rolled out as a canary beside champion version {champion} "
        f"(gate.canary_before_promotion): it answers {config.canary.steps[0]:g} of callers "
        "first, and `python -m monitoring.canary tick` steps it up, promotes it or rolls it back"
    )


@dataclass(frozen=True)
class LiveEvidence:
    """Champion and shadow challenger scored on the same labelled live rows.

    `comparison` is the challenger's paired bootstrap gain over the champion (None when the
    rows are too few to compare: fewer than 2, or a single class)."""

    champion_version: str
    challenger_version: str
    rows: int  # labelled rows scored by both
    positives: int
    first: str  # time range of those rows (ISO 8601), "" without rows
    last: str
    shadow_rows: int  # shadow rows in the window, labelled or not
    comparison: Comparison | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.comparison is not None:
            out["comparison"]["passed"] = self.comparison.passed
        return out


def compare_live(
    config: ProjectConfig,
    y: np.ndarray,
    challenger: tuple[np.ndarray, float],
    champion: tuple[np.ndarray, float],
) -> Comparison | None:
    """The challenger's paired gain over the champion on live rows: the gate's `compare`, same
    bootstrap and margin (`gate.min_gain_over_champion`); None when the rows cannot be scored
    (fewer than 2 or one class only)."""
    if len(y) < 2 or len(np.unique(y)) < 2:
        return None
    ev = config.evaluation
    indices = bootstrap_indices(len(y), ev.bootstrap_samples, ev.seed)
    return compare(
        "champion", ev.primary_metric, y, challenger[0], champion[0], indices, ev.confidence,
        config.gate.min_gain_over_champion, (challenger[1], champion[1]),
    )  # fmt: skip


def compare_independent(
    config: ProjectConfig,
    challenger: tuple[np.ndarray, np.ndarray, float],
    champion: tuple[np.ndarray, np.ndarray, float],
) -> Comparison | None:
    """The challenger's gain over the champion on two different sets of labelled live rows
    (a canary and the champion each answer their own callers): (labels, scores, threshold)
    each, bootstrapped independently (seeds `evaluation.seed` and +1), so the interval is
    wider than a paired one. Required: within `gate.noninferiority_margin` below the champion.
    None when either side cannot be scored (fewer than 2 rows or one class)."""
    if any(len(y) < 2 or len(np.unique(y)) < 2 for y, _, _ in (challenger, champion)):
        return None
    ev, metric = config.evaluation, config.evaluation.primary_metric
    draws, points = [], []
    for offset, (y, p, threshold) in enumerate((challenger, champion)):
        indices = bootstrap_indices(len(y), ev.bootstrap_samples, ev.seed + offset)
        draws.append(bootstrap_scores(metric, y, p, indices, threshold))
        points.append(score(metric, y, p, threshold))
    gain = interval(points[0] - points[1], draws[0] - draws[1], ev.confidence)
    theirs = interval(points[1], draws[1], ev.confidence)
    return Comparison(
        "champion", points[0], points[1], theirs.low, theirs.high, gain.value, gain.low,
        gain.high, -config.gate.noninferiority_margin,
    )  # fmt: skip


@dataclass(frozen=True)
class ShadowDecision:
    """The promotion decision for a shadow challenger, and which evidence decided it."""

    promote: bool
    decided_by: list[str]  # "offline" and/or "live"
    rule: str  # gate.shadow_evidence: "both" or "live"
    reasons: list[str]
    metric: str
    confidence: float
    offline: dict[str, Any]
    live: LiveEvidence

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["live"] = self.live.to_dict()
        return out


def decide_from_shadow(
    config: ProjectConfig, offline_record: dict[str, Any], live: LiveEvidence
) -> ShadowDecision:
    """Decide a shadow challenger's promotion from its offline decision record and the live
    paired rows, by `gate.shadow_evidence`:

    - too few labelled live rows (`gate.shadow_min_labelled_rows`, and
      `gate.shadow_min_positives` of each class): no promotion, whatever the rule (fail closed);
    - "both": promoted only when the offline gate passed against the champion serving now and
      the live gain's lower bound exceeds `gate.min_gain_over_champion`;
    - "live": the live comparison decides alone; the offline record is reported.

    `decided_by` names the evidence the outcome rests on: for a promotion every evidence the
    rule required, for a refusal each one that refused.
    """
    gate, ev = config.gate, config.evaluation
    metric, rule = ev.primary_metric, gate.shadow_evidence
    offline_champion = offline_record.get("previous_champion")
    offline_passed = bool(offline_record.get("promote")) and (
        offline_champion is not None and str(offline_champion) == live.champion_version
    )
    offline = {
        "passed": offline_passed,
        "gate_passed": bool(offline_record.get("promote")),
        "compared_with_champion": offline_champion,
        "test_sha256": offline_record.get("test_sha256"),
        "decided_at": offline_record.get("decided_at"),
        "comparisons": offline_record.get("comparisons", []),
        "reason": (offline_record.get("reasons") or [""])[0],
    }
    negatives = live.rows - live.positives
    comparison = live.comparison
    enough = (
        live.rows >= gate.shadow_min_labelled_rows
        and min(live.positives, negatives) >= gate.shadow_min_positives
        and comparison is not None
    )
    live_text = (
        f"live: {live.rows} labelled rows scored by champion v{live.champion_version} and "
        f"challenger v{live.challenger_version} ({live.positives} positive, {live.first} .. "
        f"{live.last})"
    )
    if comparison is not None:
        live_text += ": " + _reason(comparison, metric, ev.confidence)
    if not offline_passed:
        offline_text = (
            f"offline: the gate compared with champion version {offline_champion}, not the "
            f"serving champion {live.champion_version}; rerun the pipeline"
            if offline_record.get("promote")
            else f"offline: the gate did not pass ({offline['reason']})"
        )
    else:
        offline_text = f"offline: the gate passed on the test set ({offline['reason']})"
    if not enough:
        why = (
            f"too few labelled shadow rows to decide: {live.rows} rows ({live.positives} "
            f"positive, {negatives} negative); needs >= {gate.shadow_min_labelled_rows} rows "
            f"and >= {gate.shadow_min_positives} of each class (gate.shadow_min_labelled_rows, "
            "gate.shadow_min_positives): not promoted, the challenger stays in shadow"
        )
        return ShadowDecision(
            False, [LIVE], rule, [why, live_text, offline_text], metric, ev.confidence,
            offline, live,
        )  # fmt: skip
    assert comparison is not None  # noqa: S101 - `enough` checked it
    live_passed = comparison.passed
    if rule == "live":
        promote, decided_by = live_passed, [LIVE]
        reasons = [live_text, f"{offline_text} (reported; gate.shadow_evidence: live)"]
    else:
        promote = offline_passed and live_passed
        if promote:
            decided_by = [OFFLINE, LIVE]
        else:
            decided_by = [e for e, ok in ((OFFLINE, offline_passed), (LIVE, live_passed)) if not ok]
        texts = {OFFLINE: offline_text, LIVE: live_text}
        order = decided_by + [e for e in (OFFLINE, LIVE) if e not in decided_by]
        reasons = [texts[e] for e in order]
    verdict = "promoted" if promote else "not promoted"
    reasons.insert(0, f"{verdict} on {' and '.join(decided_by)} evidence (rule: {rule})")
    return ShadowDecision(promote, decided_by, rule, reasons, metric, ev.confidence, offline, live)
