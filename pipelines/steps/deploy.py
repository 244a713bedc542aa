"""The deploy stage: a challenger the gate passed is infra-validated in a real Triton (or, on a
cluster, staged for the production Triton image and judged by its report), then published
and made champion."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from configs import ProjectConfig
from pipelines.steps import edge
from pipelines.steps.edge import ArtifactLike, say, stage
from pipelines.steps.gate import DECISION_FILE

if TYPE_CHECKING:
    from models.registry import Version
    from serving.challenger_model import Role
    from serving.infra_validation import Candidate

DEPLOYMENT_FILE = "deployment.json"


def _version_parameters(version: Version, model: ArtifactLike) -> tuple[float, dict[str, str]]:
    """A version's decision threshold and the other config parameters served with it."""
    threshold = float(model.metadata["threshold"])
    return threshold, {"threshold": str(threshold), "registry_version": version.version}


def _hold_challenger(
    config: ProjectConfig,
    version: Version,
    champion: str | None,
    serving_repository: str,
    role: Role,
) -> dict[str, Any]:
    """Serve a validated challenger as the `role` model (`shadow` or `canary`) and set its
    alias, under the promotion lock and only while `champion` is still champion; what the
    record says."""
    from models.registry import ChampionMovedError, hold_challenger, promotion_lock
    from serving.challenger_model import (
        challenger_model_name,
        publish_challenger,
        withdraw_challenger,
    )
    from serving.deploy import local_triton_url

    repo = Path(serving_repository) if serving_repository else None
    share = config.canary.steps[0] if role == "canary" else None
    tags = {"share": f"{share:g}", "step": "0"} if share is not None else {}
    try:
        with promotion_lock(version.name):
            if repo is not None:
                publish_challenger(repo, version.name, version.version, role,
                                   share=share, triton_url=local_triton_url(repo))  # fmt: skip
            try:
                hold_challenger(version.name, role, version.version, champion=champion,
                                tags=tags)  # fmt: skip
            except BaseException:
                if repo is not None:
                    withdraw_challenger(repo, version.name, role)
                raise
    except ChampionMovedError as exc:
        return {"held_as": None, "hold_reasons": [f"refused at holding in {role}: {exc}"]}
    model = challenger_model_name(version.name, role)
    where = f" as {model} in {repo}" if repo is not None else ""
    if role == "shadow":
        what = (f"the gateway mirrors serving.shadow_share={config.serving.shadow_share} of "
                "requests to it; `python -m monitoring.shadow promote` decides on labelled "
                "live rows")  # fmt: skip
    else:
        what = (f"it answers {share:g} of callers; `python -m monitoring.canary tick` steps "
                f"it through canary.steps={list(config.canary.steps)}, then promotes it, or "
                "rolls it back")  # fmt: skip
    return {
        "held_as": role,
        "challenger_model": model,
        "hold_reasons": [
            f"held in {role}: published{where} beside champion version {champion}; {what}"
        ],  # fmt: skip
    }


def infra_candidate(
    config: ProjectConfig,
    version: Version,
    model: ArtifactLike,
    onnx_model: ArtifactLike,
    test: ArtifactLike,
) -> Candidate:
    """The promoted challenger as infra validation proves it (holdout rows, expectations)."""
    import mlflow

    from features.split import model_inputs
    from models.registry import ONNX_SHA256_TAG
    from serving.infra_validation import Candidate

    tags = mlflow.MlflowClient().get_model_version(version.name, version.version).tags
    rows = model_inputs(edge.read_frame(test).head(config.serving.validation_rows), config)
    threshold, parameters = _version_parameters(version, model)
    return Candidate(
        version.name, int(version.version), Path(onnx_model.path).read_bytes(), rows,
        edge.predict(model, rows),
        sha256=tags.get(ONNX_SHA256_TAG, ""),
        threshold=threshold,
        parameters=parameters,
        tolerance=config.serving.parity_tolerance,
        p99_budget_ms=config.serving.p99_budget_ms,
    )  # fmt: skip


def stage_candidate_step(
    config_yaml: str,
    run_id: str,
    registered: ArtifactLike,
    model: ArtifactLike,
    onnx_model: ArtifactLike,
    test: ArtifactLike,
    decision: ArtifactLike,
    candidate: ArtifactLike,
) -> None:
    """Cluster: stage a promoted challenger for the production Triton image (the onnxruntime
    backend, as the predictor serves it); a folder without a case when the gate refused.

    Raises:
        ArtifactIntegrityError: the ONNX is not the registered one (nothing is staged).
    """
    from serving.infra_validation import stage_candidate

    with stage("stage-candidate", config_yaml, run_id) as config:
        folder = Path(candidate.path)
        folder.mkdir(parents=True, exist_ok=True)
        verdict = json.loads((Path(decision.path) / DECISION_FILE).read_text())
        if not verdict["promote"]:
            say(config.name, "deploy", "nothing to stage: the gate did not pass")
            return
        version = edge.read_version(registered)
        stage_candidate(infra_candidate(config, version, model, onnx_model, test), folder,
                        backend="onnxruntime")  # fmt: skip
        candidate.metadata.update({"version": version.version, "backend": "onnxruntime"})
        say(config.name, "deploy", f"version {version.version} staged for the production Triton")


def deploy_step(
    config_yaml: str,
    run_id: str,
    serving_repository: str,
    registered: ArtifactLike,
    model: ArtifactLike,
    onnx_model: ArtifactLike,
    test: ArtifactLike,
    decision: ArtifactLike,
    deployment: ArtifactLike,
    production_report: ArtifactLike | None = None,
) -> None:
    """Infra-validate a promoted challenger in a private Triton, then move `champion`.

    Only a challenger the gate passed is validated, from its ONNX verified against the
    registered `onnx_sha256`; only a validated one is published to `serving_repository`
    (where a polling Triton picks it up) and then becomes champion, under the model's
    promotion lock and only if the champion is still the one the gate compared against
    (else refused and recorded: the next run gates against the new champion). A publish that
    fails puts the repository back and leaves the alias. A refusal or failed validation
    leaves the previous champion serving and is recorded, not raised; a changed artifact is
    raised. With `production_report` (the cluster: `stage_candidate_step`, then the production
    Triton image) that report decides instead of a local Triton; a missing one fails closed.

    A challenger the gate held (`held_as` in the record: `shadow` or `canary`) is validated the
    same way, then published as that challenger model beside the champion (`<model>__shadow`
    or `<model>__canary` answering `canary.steps[0]` of callers; `serving.challenger_model`)
    and marked with its alias, only if the champion is still the one the gate compared
    against; the champion stays.
    """
    import mlflow

    from models.registry import ChampionMovedError
    from serving.deploy import switch_champion
    from serving.infra_validation import read_probe_report, served_parameters, validate_candidate

    with stage("deploy", config_yaml, run_id) as config:
        version = edge.read_version(registered)
        verdict = json.loads((Path(decision.path) / DECISION_FILE).read_text())
        record: dict[str, Any] = {"version": version.version, "deployed": False}
        if not verdict["promote"]:
            record["reasons"] = [f"gate did not pass: {verdict['reasons'][0]}"]
        else:
            client = mlflow.MlflowClient()
            if production_report is None:
                report = validate_candidate(
                    infra_candidate(config, version, model, onnx_model, test)
                )
            else:  # staged and probed by the cluster's steps: only the parameters are needed
                threshold, parameters = _version_parameters(version, model)
                served = served_parameters(int(version.version), threshold, parameters)
                report = read_probe_report(Path(production_report.path), served)
            record |= {"infra_validation": report.to_dict(), "reasons": report.reasons}
            expected = verdict.get("previous_champion")
            record["previous_champion"] = expected
            if report.passed and verdict.get("held_as"):
                role = verdict["held_as"]
                record |= _hold_challenger(config, version, expected, serving_repository, role)
                record["reasons"] = [*record.pop("hold_reasons"), *report.reasons]
            elif report.passed:
                try:
                    switch_champion(
                        version.name, version.version, expected=expected,
                        event=f"promoted: {verdict['reasons'][0]}",
                        repo=Path(serving_repository) if serving_repository else None,
                        keep=config.serving.keep_versions,
                    )  # fmt: skip
                except ChampionMovedError as exc:
                    record["reasons"] = [f"refused at promotion: {exc}", *report.reasons]
                else:
                    if serving_repository:
                        record["serving_repository"] = serving_repository
                    info = client.get_model_version(version.name, version.version)
                    record["deployed"] = True
                    record["lead_time_s"] = round(time.time() - info.creation_timestamp / 1000, 2)
                    mlflow.log_metric("deployment_lead_time_s", record["lead_time_s"])
            mlflow.log_metrics({"infra.p99_ms": report.p99_ms,
                                "infra.max_abs_diff": report.max_abs_diff})  # fmt: skip
        edge.write_json(record, Path(deployment.path))
        if record.get("held_as"):
            mlflow.set_tags({"held_as": record["held_as"]})
        deployment.metadata.update({"deployed": record["deployed"]})
        mlflow.log_dict(record, f"reports/{DEPLOYMENT_FILE}")
        mlflow.set_tags({"deployed": str(record["deployed"]).lower()})
        mlflow.MlflowClient().set_model_version_tag(
            version.name, version.version, "deploy.status",
            "deployed" if record["deployed"] else "not deployed: " + record["reasons"][0][:4000],
        )  # fmt: skip
        outcome = "DEPLOYED as champion" if record["deployed"] else "not deployed"
        say(config.name, "deploy", f"{outcome}: {record['reasons'][0]}")
