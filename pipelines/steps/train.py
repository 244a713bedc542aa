"""The train and evaluate stages: fit the tuned family and the baseline, score both on the test
set and select the challenger."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pipelines.steps.edge import ArtifactLike, predict, read_frame, say, stage, write_json


def train_step(
    config_yaml: str,
    run_id: str,
    train: ArtifactLike,
    valid: ArtifactLike,
    best: ArtifactLike,
    model: ArtifactLike,
    baseline: ArtifactLike,
) -> None:
    """Fit the winning family and the logistic baseline, each with its decision threshold.

    Each is fitted on the training split and its threshold chosen on validation data; with
    `training.refit_on_validation` the same hyperparameters and preprocessing are then refit on
    train + validation rows, and that model (with the threshold) is saved.
    """
    import mlflow
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from features.split import features_and_target
    from features.transform import fit_preprocessor
    from models.evaluate import choose_threshold
    from models.families import BASELINE, build_estimator, get_family
    from models.registry import save_model

    with stage("train", config_yaml, run_id) as config:
        tuned = json.loads(Path(best.path).read_text())
        train_frame, valid_frame = read_frame(train), read_frame(valid)
        X_valid, y_valid = features_and_target(valid_frame, config)
        refit = config.training.refit_on_validation
        fit_on = "train + valid" if refit else "train"
        fit_frame = pd.concat([train_frame, valid_frame], ignore_index=True) if refit else None

        def fit(family: str, params: dict[str, Any], frame: pd.DataFrame) -> Pipeline:
            scaled = get_family(family).scaled_inputs  # trees take unscaled numbers
            preprocess, X, y = fit_preprocessor(config, frame, scaled=scaled)
            estimator = build_estimator(family, params, config.tuning.seed)
            estimator.fit(preprocess.transform(X), y.to_numpy())
            return Pipeline([("preprocess", preprocess), ("model", estimator)])

        for family, params, artifact in (
            (tuned["family"], tuned["params"], model),
            (BASELINE, {}, baseline),
        ):
            started = time.perf_counter()
            fitted = fit(family, params, train_frame)
            threshold = choose_threshold(y_valid.to_numpy(), fitted.predict_proba(X_valid)[:, 1])
            if fit_frame is not None:
                fitted = fit(family, params, fit_frame)
            save_model(fitted, Path(artifact.path))
            artifact.metadata.update(
                {
                    "family": family,
                    "params": params,
                    "threshold": threshold,
                    "fit_on": fit_on,
                    "numeric_inputs": "imputed, standardised"
                    if get_family(family).scaled_inputs
                    else "imputed",
                    "framework": "sklearn",
                    "format": "skops",
                    "candidate": BASELINE if artifact is baseline else "tuned",
                }
            )
            say(
                config.name,
                "train",
                f"{family} fitted on {fit_on}, threshold "
                f"{threshold:.4f} from valid ({time.perf_counter() - started:.1f}s)",
            )
        final = train_frame if fit_frame is None else fit_frame
        mlflow.set_tag("fit_on", fit_on)
        mlflow.log_metrics(
            {"rows.fit": len(final), "positive_rate.fit": float(final[config.target].mean())}
        )


def evaluate_step(
    config_yaml: str,
    run_id: str,
    model: ArtifactLike,
    baseline: ArtifactLike,
    test: ArtifactLike,
    evaluation: ArtifactLike,
    selected: ArtifactLike,
) -> None:
    """Test metrics and bootstrap intervals of the tuned model and the baseline, the choice of
    the challenger between them (`models.gate.select_candidate`), and its per-slice metrics.

    Writes the selected model (a copy of its skops file and metadata, plus the rule) to
    `selected`: the model that later steps explain, export, register, gate and deploy.
    """
    import mlflow

    from features.split import features_and_target, group_keys
    from models.evaluate import (
        Bootstrap,
        bootstrap_indices,
        bootstrap_scores,
        classification_metrics,
        cost_table,
        curves,
        error_rate_gaps,
        interval,
        slice_metrics,
    )
    from models.gate import BASELINE, TUNED, select_candidate

    with stage("evaluate", config_yaml, run_id) as config:
        ev, metric = config.evaluation, config.evaluation.primary_metric
        test_frame = read_frame(test)
        X, labels = features_and_target(test_frame, config)
        y = labels.to_numpy()
        groups = group_keys(test_frame, config)
        indices = bootstrap_indices(len(y), ev.bootstrap_samples, ev.seed, groups)
        result: dict[str, Any] = {"metric": metric, "confidence": ev.confidence}
        candidates = {TUNED: model, BASELINE: baseline}
        scores = {who: predict(artifact, X) for who, artifact in candidates.items()}
        thresholds = {who: float(a.metadata["threshold"]) for who, a in candidates.items()}
        for who in candidates:
            metrics = classification_metrics(y, scores[who], thresholds[who])
            draws = bootstrap_scores(metric, y, scores[who], indices, thresholds[who])
            result[who] = {
                "family": str(candidates[who].metadata["family"]),
                "metrics": metrics,
                "interval": interval(metrics[metric], draws, ev.confidence).to_dict(),
            }
            mlflow.log_metrics({f"{who}.test.{k}": float(v) for k, v in metrics.items()})
        selection = select_candidate(
            config,
            y,
            (scores[TUNED], thresholds[TUNED]),
            (scores[BASELINE], thresholds[BASELINE]),
            groups,
        )
        chosen = selection.candidate
        result["selection"] = selection.to_dict()
        result["challenger"] = result[chosen] | {"candidate": chosen}
        mlflow.log_metrics(
            {f"challenger.test.{k}": float(v) for k, v in result[chosen]["metrics"].items()}
        )
        bootstrap = Bootstrap(metric, ev.bootstrap_samples, ev.confidence, ev.seed)
        p_chosen, t_chosen = scores[chosen], thresholds[chosen]
        result["slices"] = slice_metrics(
            test_frame, y, p_chosen, config.evaluated_slices, t_chosen, ev.slice_min_rows,
            bootstrap, groups,
        )  # fmt: skip
        result["gaps"] = error_rate_gaps(result["slices"], config.card.sensitive_attributes)
        result["curves"] = curves(y, p_chosen)
        if ev.costs is not None:
            costs = ev.costs
            result["costs"] = cost_table(
                y, p_chosen, t_chosen, costs.false_positive, costs.false_negative
            )
        Path(selected.path).write_bytes(Path(candidates[chosen].path).read_bytes())
        selected.metadata.update(
            dict(candidates[chosen].metadata) | {"candidate": chosen, "selection": selection.rule}
        )
        write_json(result, Path(evaluation.path))
        mlflow.log_dict(result, "reports/evaluation.json")
        mlflow.set_tags({"selection.candidate": chosen, "selection.rule": selection.rule})
        iv = result["challenger"]["interval"]
        evaluation.metadata.update(
            {
                "metric": metric,
                "challenger": iv["value"],
                "tuned": result[TUNED]["interval"]["value"],
                "baseline": result[BASELINE]["interval"]["value"],
                "selected": chosen,
                "rule": selection.rule,
            }
        )
        say(
            config.name,
            "evaluate",
            f"tuned test {metric}={result[TUNED]['interval']['value']:.4f}, baseline "
            f"{result[BASELINE]['interval']['value']:.4f}; challenger: {chosen} "
            f"({selection.rule}) [{iv['low']:.4f}, {iv['high']:.4f}], "
            f"{len(result['slices'])} slices",
        )
