"""The gate stage: challenger, champion and baseline compared on the test rows (the rules are
in `models.gate`), the decision record and the model card written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from pipelines.steps.edge import (
    ArtifactLike,
    predict,
    read_frame,
    read_version,
    say,
    stage,
    write_json,
)

DECISION_FILE = "decision.json"


def gate_step(
    config_yaml: str,
    run_id: str,
    registered: ArtifactLike,
    model: ArtifactLike,
    tuned: ArtifactLike,
    baseline: ArtifactLike,
    test: ArtifactLike,
    evaluation: ArtifactLike,
    explanation: ArtifactLike,
    decision: ArtifactLike,
) -> None:
    """Compare challenger, champion and baseline and decide; the deploy step moves the alias.

    The challenger (`model`) is the candidate the evaluate step selected; the selection is
    recomputed here from the tuned model and the baseline, and a challenger that is not the
    candidate the rule picks stops the step. The comparison with the candidates follows the
    selection's rule; the one with an existing champion always requires a gain.

    Fails closed: a tracking store that does not answer stops the step (nothing moved); a
    champion that exists but cannot be scored (no `threshold` tag, artifact missing or changed,
    features changed) makes the gate refuse, unless
    `gate.allow_baseline_only_when_champion_unusable` allows a baseline-only comparison. The
    record names the champion compared against (`previous_champion`), which the deploy step
    requires to still be champion when it moves the alias.

    With `gate.shadow_before_promotion` (or `canary_before_promotion`) and a champion serving,
    a challenger that passes is held (`held_as: shadow|canary`, first reason says so): the
    deploy step validates and publishes it beside the champion instead of promoting it, and
    `python -m monitoring.shadow promote` decides on the live paired rows (a canary:
    `python -m monitoring.canary tick`, step by step).

    Writes the decision record (version tags + JSON artifact) and the model card either way.
    """
    import mlflow

    from features.sources import hash_frame
    from features.split import features_and_target, group_keys
    from models.gate import (
        champion_unusable,
        check_challenger,
        decide_promotion,
        decision_context,
        decision_record,
        held_as,
        hold_reason,
        select_candidate,
    )
    from models.model_card import CURVES_PLOT, CardFacts, render_model_card, save_curves_plot
    from models.registry import champion_version, check_tracking, record_decision

    with stage("gate", config_yaml, run_id) as config:
        version = read_version(registered)
        test_frame = read_frame(test)
        X, labels = features_and_target(test_frame, config)
        y = labels.to_numpy()
        challenger = (predict(model, X), float(model.metadata["threshold"]))
        base = (predict(baseline, X), float(baseline.metadata["threshold"]))
        scored_tuned = (predict(tuned, X), float(tuned.metadata["threshold"]))
        groups = group_keys(test_frame, config)
        selection = select_candidate(config, y, scored_tuned, base, groups)
        check_challenger(model.metadata.get("candidate"), selection)
        champion, unusable, current = None, "", champion_version(config.model_name)
        if current is not None:
            try:
                champion = _score_champion(config.model_name, current, X)
            except Exception as exc:  # noqa: BLE001 - blocks the promotion, in the record
                check_tracking(mlflow.get_tracking_uri())  # a store that went down stops the run
                unusable = champion_unusable(current, exc)
        evaluation_data = json.loads(Path(evaluation.path).read_text())
        decided = decide_promotion(
            config, y, challenger, base, champion, evaluation_data["slices"], unusable,
            selection=selection, tuned=scored_tuned, groups=groups,
        )  # fmt: skip
        run = mlflow.get_run(run_id)  # what the earlier steps logged: lineage, splits, trigger
        verdict = decision_record(
            decided,
            {who: evaluation_data[who]["interval"] for who in ("challenger", "tuned", "baseline")},
            challenger_version=version.version,
            challenger_candidate=selection.candidate,
            previous_champion=current,
            **decision_context(config, test_sha256=hash_frame(test_frame),
                               trigger=run.data.tags.get("pipeline_run", "")),
        )  # fmt: skip
        verdict["held_as"] = held_as(config, decided, current)
        if verdict["held_as"]:
            verdict["reasons"].insert(0, hold_reason(config, verdict["held_as"], str(current)))
        out = Path(decision.path)
        plot = save_curves_plot(evaluation_data["curves"], out / CURVES_PLOT)
        card = render_model_card(
            CardFacts(
                project=config.name,
                description=config.description,
                model_name=version.name,
                version=version.version,
                family=str(model.metadata["family"]),
                params=dict(model.metadata.get("params", {})),
                lineage=_lineage(run),
                metrics=evaluation_data["challenger"]["metrics"],
                primary={
                    "metric": verdict["metric"],
                    "confidence": verdict["confidence"],
                    "intervals": verdict["intervals"],
                },
                slices=evaluation_data["slices"],
                top_features=_top_features(explanation),
                decision=verdict,
                selection=verdict["selection"],
                use=config.card.model_dump(),
                data=_split_facts(run),
                gaps=evaluation_data["gaps"],
                costs=evaluation_data.get("costs", []),
                calibration=evaluation_data["curves"]["calibration"],
                plot=plot.name,
            )
        )
        write_json(verdict, out / DECISION_FILE)
        (out / "model_card.md").write_text(card)
        mlflow.log_dict(verdict, f"reports/{DECISION_FILE}")
        mlflow.log_artifact(str(plot), "reports")
        mlflow.log_text(card, "reports/model_card.md")
        mlflow.MlflowClient().update_model_version(version.name, version.version, description=card)
        mlflow.set_tags({"promoted": str(verdict["promote"]).lower()})
        record_decision(version, verdict)
        decision.metadata.update({"promote": verdict["promote"], "version": version.version,
                                  "held_as": verdict["held_as"] or ""})  # fmt: skip
        say(
            config.name,
            "gate",
            ("passed" if verdict["promote"] else "not promoted") + f": {verdict['reasons'][0]}",
        )


def _score_champion(name: str, version: str, X: pd.DataFrame) -> tuple[np.ndarray, float]:
    """The champion's test probabilities and threshold, from its verified skops file."""
    import mlflow

    from models.registry import load_version

    tags = mlflow.MlflowClient().get_model_version(name, version).tags
    if "threshold" not in tags:
        raise KeyError(f"version {version} has no `threshold` tag")
    model = load_version(name, version, tags)
    return model.predict_proba(X)[:, 1], float(tags["threshold"])


def _lineage(run: Any) -> dict[str, Any]:
    """Data hashes, row counts, commit and run ids, as the earlier steps logged them."""
    tags, metrics = run.data.tags, run.data.metrics
    return {
        "dataset_sha256 (raw)": tags.get("dataset_sha256"),
        "dataset_sha256 (clean)": tags.get("clean_dataset_sha256"),
        **{
            f"rows ({part})": int(metrics.get(f"rows.{part}", 0))
            for part in ("clean", "quarantined", "train", "valid", "test")
        },
        "git_commit": tags.get("git_commit"),
        "mlflow_run_id": run.info.run_id,
        "pipeline_run": tags.get("pipeline_run"),
    }


def _split_facts(run: Any) -> dict[str, dict[str, Any]]:
    """Rows, base rate and time range of each split, as the split step logged them, and of
    the final fit ("fit": train + valid when refit), as the train step logged it."""
    tags, metrics = run.data.tags, run.data.metrics
    return {
        part: {
            "rows": int(metrics[f"rows.{part}"]),
            "positive_rate": float(metrics[f"positive_rate.{part}"]),
            "time_range": tags.get(f"time_range.{part}"),
        }
        for part in ("train", "valid", "test", "fit")
        if f"rows.{part}" in metrics
    }


def _top_features(explanation: ArtifactLike, k: int = 10) -> list[dict[str, Any]]:
    table = pd.read_csv(Path(explanation.path) / "shap_importance.csv")
    # read_csv labels columns with the header's strings
    return cast(list[dict[str, Any]], table.head(k).to_dict("records"))
