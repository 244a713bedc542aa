"""Attribution drift: how much each feature moves the served model's scores, per window.

For each monitored window the monitor explains a seeded sample of the logged rows (at most
`monitoring.attribution_sample_rows`, drawn with `evaluation.seed`) with the served version's
own explainer, `models.explain.RowExplainer`, loaded from the registry exactly as the gateway's
`/explain` loads it (`serving.gateway.explain.load_version_explainer`: the verified skops
model, the training run's background, kind and seed). Per raw feature it takes the mean
|attribution| over the sample; the version's *reference* is the same mean over the rows its
training run explained (`reports/shap/shap_values.parquet` of the run), so both sides come from
one explainer and speak in the same space (log-odds for tree and linear SHAP, probability for
the MLP's permutation SHAP).

The ranking rule (`compare_rankings`). Features are ranked 1, 2, ... by mean |attribution|
(r in the reference, w in the window), largest first, ties broken by feature name. With
`k = min(top_k, features)` and m = `monitoring.attribution_rank_margin`, two features f, g
are an *inverted pair* when the reference puts f clearly above g and the window puts g clearly
above f:

    r[f] > (1 + m) * r[g]   and   w[g] > (1 + m) * w[f]

and `ranking_changed` is true when at least one inverted pair involves a feature of the
reference's top k or of the window's top k. With m = 0 that is any change of the top k's set
or order; a margin forgives features of near-equal weight trading places (sampling noise: on
the fraud models, 200-row windows of undrifted traffic swap such neighbours in most windows)
while a feature that overtakes one it trailed clearly, e.g. one from far down becoming the
most attributed, still flags. Also reported, for reading: the inverted pairs, each feature's
rank on both sides, `max_displacement` (the largest rank change within either top k),
`top_k_overlap` (shared top-k features / k) and `rank_correlation` (Spearman's, over all
features; NaN with fewer than two).

Fail closed: a version whose explainer or reference cannot be had (no model in the registry,
a skops file that does not match its hash, a run without SHAP files), or a window whose rows
cannot be explained, is reported `unavailable` with the reason, never as zeros or "no change";
the window's drift and quality are still reported, and no ranking gauge is pushed for it (the
alert stays quiet, `mlops_attribution_available` says 0).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from configs.schema import ProjectConfig
from features.split import input_frame
from models.explain import mean_abs_attribution
from serving.pushgateway import Sample

log = logging.getLogger(__name__)

AVAILABLE, UNAVAILABLE, OFF = "available", "unavailable", "off"
REFERENCE, WINDOW = "reference", "window"


class AttributionUnavailable(RuntimeError):  # noqa: N818 - a state, reported, not raised out
    """The explainer or the training reference of a version cannot be had; says why."""


@dataclass(frozen=True)
class VersionAttribution:
    """What one served version's attribution drift is measured with.

    Attributes:
        explainer: The version's `models.explain.RowExplainer` (`explain`, `features`, `kind`,
            `space`).
        reference: Mean |attribution| per raw feature over the training run's explained rows,
            largest first (`models.explain.mean_abs_attribution`).
        reference_rows: How many rows the reference was computed on.
    """

    explainer: Any
    reference: pd.Series
    reference_rows: int


@dataclass(frozen=True)
class RankComparison:
    """A window's feature ranking against the reference's (the rule: module docstring)."""

    top_k: int
    margin: float
    reference_top: list[str]
    window_top: list[str]
    reference_rank: dict[str, int]
    window_rank: dict[str, int]
    top_k_overlap: float
    rank_correlation: float
    max_displacement: int
    inverted_pairs: list[list[str]]  # [f, g]: f clearly above g in the reference, below after
    ranking_changed: bool


def ranks(importance: pd.Series) -> dict[str, int]:
    """1-based rank of each feature by mean |attribution| (largest 1, ties by name)."""
    order = sorted(importance.index, key=lambda f: (-float(importance[f]), str(f)))
    return {str(f): i + 1 for i, f in enumerate(order)}


def compare_rankings(
    reference: pd.Series, window: pd.Series, top_k: int, margin: float
) -> RankComparison:
    """Compare a window's mean |attribution| per feature with the reference's.

    Args:
        reference: Mean |attribution| per feature of the version's training reference.
        window: The same for the window's sampled rows; the same features.
        top_k: How many of the most attributed features are compared (capped at the features).
        margin: Relative gap both sides must show for a pair to count as inverted (0: any).

    Raises:
        ValueError: The two sides hold different features, or `top_k` < 1 / `margin` < 0.
    """
    if set(reference.index) != set(window.index):
        raise ValueError(
            f"the window's features {sorted(map(str, window.index))} are not the reference's "
            f"{sorted(map(str, reference.index))}"
        )
    if top_k < 1 or not margin >= 0:
        raise ValueError(f"top_k must be >= 1 and margin >= 0, got {top_k}, {margin}")
    before, after = ranks(reference), ranks(window)
    k = min(top_k, len(before))
    reference_top = sorted(before, key=before.__getitem__)[:k]
    window_top = sorted(after, key=after.__getitem__)[:k]
    compared = dict.fromkeys([*reference_top, *window_top])
    displacement = max(abs(after[f] - before[f]) for f in compared)
    r = {str(f): float(v) for f, v in reference.items()}
    w = {str(f): float(v) for f, v in window.items()}
    grow = 1 + margin
    inverted = [
        [f, g]
        for f in sorted(before, key=before.__getitem__)
        for g in sorted(before, key=before.__getitem__)
        if (f in compared or g in compared) and r[f] > grow * r[g] and w[g] > grow * w[f]
    ]
    n = len(before)
    squared = sum((after[f] - before[f]) ** 2 for f in before)
    correlation = 1 - 6 * squared / (n * (n * n - 1)) if n >= 2 else float("nan")
    return RankComparison(
        top_k=k,
        margin=float(margin),
        reference_top=reference_top,
        window_top=window_top,
        reference_rank=before,
        window_rank=after,
        top_k_overlap=len(set(reference_top) & set(window_top)) / k,
        rank_correlation=float(correlation),
        max_displacement=int(displacement),
        inverted_pairs=inverted,
        ranking_changed=bool(inverted),
    )


def sample_rows(rows: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """At most `limit` of `rows`, drawn without replacement with `seed` (all if fewer)."""
    if len(rows) <= limit:
        return rows.reset_index(drop=True)
    return rows.sample(limit, random_state=seed).reset_index(drop=True)


def window_attribution(
    inputs: pd.DataFrame,
    source: VersionAttribution,
    *,
    sample: int,
    top_k: int,
    margin: float,
    seed: int,
) -> dict[str, Any]:
    """Explain a seeded sample of one window's model inputs and compare with the reference.

    Args:
        inputs: The window's raw model inputs (the explainer's features, as trained: numbers
            float, categories object with NaN for missing).
        source: The served version's explainer and reference.
        sample: Most rows explained (`monitoring.attribution_sample_rows`).
        top_k, margin: The ranking rule's parameters (`compare_rankings`).
        seed: Seed of the sample.

    Returns:
        `state` "available", the explainer's `explainer` kind and `space`, `sampled_rows`,
        `reference_rows`, `seconds` spent explaining, mean |attribution| per feature for
        `window` and `reference` (largest first), and the fields of `RankComparison`.
    """
    rows = sample_rows(inputs, sample, seed)
    began = time.perf_counter()
    values, _ = source.explainer.explain(rows)
    seconds = time.perf_counter() - began
    window = mean_abs_attribution(values)
    comparison = compare_rankings(source.reference, window, top_k, margin)
    return {
        "state": AVAILABLE,
        "explainer": str(source.explainer.kind),
        "space": str(source.explainer.space),
        "sampled_rows": len(rows),
        "reference_rows": source.reference_rows,
        "seconds": round(seconds, 4),
        WINDOW: {str(f): float(v) for f, v in window.items()},
        REFERENCE: {str(f): float(v) for f, v in source.reference.items()},
        **asdict(comparison),
    }


def unavailable(reason: str) -> dict[str, Any]:
    """A window whose attributions could not be measured, and why (nothing else: no zeros)."""
    return {"state": UNAVAILABLE, "error": reason}


def assess_attribution(
    rows: pd.DataFrame,
    source: VersionAttribution | BaseException | None,
    config: ProjectConfig,
) -> dict[str, Any]:
    """Attribution drift of one window's logged rows; never raises.

    Args:
        rows: The window's logged rows (every feature column present; missing ones all NaN).
        source: The served version's explainer and reference, or why it could not be loaded
            (None: nothing was loaded).
        config: Project config (`monitoring.attribution_*`, `evaluation.seed`, feature roles).

    Returns:
        `{"state": "off"}` when `monitoring.attribution_sample_rows` is 0, `unavailable(...)`
        when the version or the window cannot be explained, else `window_attribution`'s dict.
    """
    settings = config.monitoring
    if settings.attribution_sample_rows == 0:
        return {"state": OFF}
    if source is None:
        return unavailable("no explainer was loaded for this version")
    if isinstance(source, BaseException):
        return unavailable(_reason(source))
    try:
        from serving.gateway.explain import single_threaded

        single_threaded()  # torch's intra-op threads made the MLP's 200 rows 30 s, not 1.5 s
        inputs = explainer_inputs(rows, source.explainer.features, config)
        return window_attribution(
            inputs,
            source,
            sample=settings.attribution_sample_rows,
            top_k=settings.attribution_top_k,
            margin=settings.attribution_rank_margin,
            seed=config.evaluation.seed,
        )
    except Exception as exc:  # noqa: BLE001 - one window's rows must not stop the monitor
        log.warning("attributions of a window not measured: %s", _reason(exc))
        return unavailable(_reason(exc))


def explainer_inputs(
    rows: pd.DataFrame, features: tuple[str, ...] | list[str], config: ProjectConfig
) -> pd.DataFrame:
    """The logged rows as the explainer's model inputs: its features, in its order; categories
    as objects with NaN for missing (the log holds None), everything else a float32-precise
    number, as Triton read it (`features.split.input_frame`).

    Raises:
        ValueError: A feature the version was explained on is not in the logged rows.
    """
    absent = [f for f in features if f not in rows.columns]
    if absent:
        raise ValueError(f"the version was explained on features the log does not hold: {absent}")
    return input_frame(rows, features, config.categorical_features)


def load_version_attribution(
    model: str, version: str, uri: str | None = None
) -> VersionAttribution:
    """The explainer and training reference of a registered version (the edge: registry I/O).

    The explainer is the gateway's (`serving.gateway.explain.load_version_explainer`: skops
    file verified against its hash, the run's background, kind and seed); the reference is the
    mean |attribution| of the run's `reports/shap/shap_values.parquet`.

    Args:
        model, version: The registered model version that served the window.
        uri: Tracking URI of the registry (default: MLflow's current one).

    Raises:
        AttributionUnavailable: Either cannot be had; the message says why and what to do.
    """
    import mlflow

    from models.explain import BASE_VALUE, VALUES_FILE
    from serving.gateway.contract import Rejected
    from serving.gateway.explain import SHAP_ARTIFACTS, load_version_explainer

    uri = uri or mlflow.get_tracking_uri()
    try:
        explainer = load_version_explainer(model, version, uri).explainer
    except Rejected as exc:
        raise AttributionUnavailable(exc.message) from None
    run_id = mlflow.MlflowClient(uri).get_model_version(model, version).run_id
    artifact = f"{SHAP_ARTIFACTS}/{VALUES_FILE}"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact, dst_path=tmp
            )
            values = pd.read_parquet(path).drop(columns=[BASE_VALUE], errors="ignore")
        except Exception as exc:  # noqa: BLE001 - missing or unreadable: fail closed
            raise AttributionUnavailable(
                f"version {version} of '{model}' has no training reference {artifact} in run "
                f"{run_id}: retrain it with this platform ({type(exc).__name__})"
            ) from None
    features = [str(f) for f in explainer.features]
    if sorted(map(str, values.columns)) != sorted(features):
        raise AttributionUnavailable(
            f"the training reference of version {version} of '{model}' holds "
            f"{sorted(map(str, values.columns))}, its explainer {sorted(features)}"
        )
    try:
        reference = mean_abs_attribution(values[features])
    except ValueError as exc:
        raise AttributionUnavailable(f"training reference of version {version}: {exc}") from None
    return VersionAttribution(explainer, reference, len(values))


def attribution_samples(attribution: dict[str, Any]) -> list[Sample]:
    """The gauges of one window's attribution drift (names in `monitoring.contract`).

    Nothing when it is off (or was never measured); only `mlops_attribution_available` 0 when
    unavailable, so no ranking gauge (and no alert) rests on attributions that do not exist.
    """
    state = attribution.get("state")
    if state not in (AVAILABLE, UNAVAILABLE):
        return []
    if state == UNAVAILABLE:
        return [Sample("mlops_attribution_available", 0.0)]
    out = [
        Sample("mlops_attribution_available", 1.0),
        Sample("mlops_attribution_sampled_rows", float(attribution["sampled_rows"])),
        Sample("mlops_attribution_rank_changed", float(attribution["ranking_changed"])),
        Sample("mlops_attribution_rank_correlation", float(attribution["rank_correlation"])),
        Sample("mlops_attribution_top_k_overlap", float(attribution["top_k_overlap"])),
    ]
    for source in (REFERENCE, WINDOW):
        rank = attribution[f"{source}_rank"]
        for feature, value in attribution[source].items():
            labels = {"feature": feature, "source": source}
            out.append(Sample("mlops_attribution_mean_abs", float(value), labels))
            out.append(Sample("mlops_attribution_rank", float(rank[feature]), labels))
    return out


def summary_text(attribution: dict[str, Any] | None) -> str:
    """One cell for a window: `changed (rank corr 0.71, top 5 shared 3/5)`, `stable (...)`,
    `unavailable`, `off` or `-` (never measured: a window from before attribution drift)."""
    if not attribution:
        return "-"
    state = attribution.get("state")
    if state != AVAILABLE:
        return str(state)
    verdict = "changed" if attribution["ranking_changed"] else "stable"
    k = attribution["top_k"]
    shared = round(attribution["top_k_overlap"] * k)
    return (
        f"{verdict} (rank corr {attribution['rank_correlation']:.2f}, top {k} shared {shared}/{k})"
    )


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return (
        message if isinstance(exc, AttributionUnavailable) else f"{type(exc).__name__}: {message}"
    )
