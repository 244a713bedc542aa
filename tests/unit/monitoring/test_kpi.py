"""The KPI page: every project with a registered model, counted manual steps, real coverage."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from configs import ProjectConfig, load_config
from monitoring import kpi
from pipelines.stages import STAGES
from pipelines.training import config_parameter
from tests.conftest import write_config

ALL_STAGES = {f"stage_seconds.{stage}": 1.0 for stage in STAGES}


def registered(
    config: ProjectConfig | None,
    model_name: str,
    metrics: dict[str, float],
    *,
    champion: bool = True,
) -> str:
    """Register a version of `model_name` from a real MLflow run; return the version."""
    import mlflow

    client = mlflow.MlflowClient()
    name = f"kpi-{model_name}"
    found = client.get_experiment_by_name(name)
    experiment = found.experiment_id if found else client.create_experiment(name)
    run_id = client.create_run(experiment).info.run_id
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    if config is not None:  # what the load stage logs
        mlflow.MlflowClient().log_text(run_id, config_parameter(config), "config.yaml")
    if not client.search_registered_models(filter_string=f"name='{model_name}'"):
        client.create_registered_model(model_name)
    version = client.create_model_version(model_name, f"runs:/{run_id}/model", run_id=run_id)
    if champion:
        client.set_registered_model_alias(model_name, "champion", version.version)
    return str(version.version)


def project(tmp_path: Path, name: str, **overrides: Any) -> ProjectConfig:
    return load_config(write_config(tmp_path / f"{name}.yaml", name=name, **overrides))


def monitored(root: Path, config: ProjectConfig, version: str) -> Path:
    """A monitor history with one window served by `version`."""
    window = {
        "start": "2026-07-01T00:00",
        "version": version,
        "rows": 10,
        "quality": {},
        "drift": {"drift_share": 0.0, "dataset_drift": False},
        "vs_baseline_pct": {},
    }
    (root / config.name).mkdir(parents=True, exist_ok=True)
    (root / config.name / "history.json").write_text(json.dumps([window]))
    return root


def test_every_registered_project_is_on_the_page(tracking, tmp_path) -> None:
    configs = tmp_path / "configs"
    configs.mkdir()
    on_disk = project(configs, "kpi-disk")
    orphan = project(tmp_path, "kpi-orphan")  # trained from a YAML elsewhere, since moved
    registered(orphan, orphan.model_name, ALL_STAGES)
    registered(None, "kpi-noconfig-classifier", ALL_STAGES)  # no logged config: skipped
    registered(None, "kpi-other-model", ALL_STAGES)  # not a project's model
    names = [c.name for c in kpi.discover_projects(configs)]
    assert {on_disk.name, orphan.name} <= set(names)
    assert "kpi-noconfig" not in names and "kpi-other-model" not in names
    assert names == sorted(names)
    found = next(c for c in kpi.discover_projects(configs) if c.name == orphan.name)
    assert found == orphan  # the config the run logged, not a guess


def test_manual_steps_are_counted_from_the_champion_run(tracking, tmp_path) -> None:
    full = project(tmp_path, "kpi-full")
    registered(full, full.model_name, {**ALL_STAGES, "deployment_lead_time_s": 4.0})
    assert kpi.project_kpi(full, tmp_path).manual_steps == [kpi.START_STEP]

    scheduled = project(tmp_path, "kpi-scheduled", schedule="0 0 3 * * *")
    registered(scheduled, scheduled.model_name, {**ALL_STAGES, "deployment_lead_time_s": 4.0})
    standing = kpi.project_kpi(scheduled, tmp_path)
    assert standing.manual_steps == [] and standing.lead_time_s == 4.0

    by_hand = project(tmp_path, "kpi-by-hand")
    partial = {k: v for k, v in ALL_STAGES.items() if k != "stage_seconds.explain"}
    registered(by_hand, by_hand.model_name, partial)  # no lead time: deployed outside
    steps = kpi.project_kpi(by_hand, tmp_path).manual_steps
    assert steps == [
        kpi.START_STEP,
        "explain: not run by the pipeline",
        "deploy: the champion alias was moved outside the pipeline",
    ]
    report = kpi.KpiReport([kpi.project_kpi(by_hand, tmp_path)], math.nan, len(STAGES))
    assert "| Manual steps, raw data to served model, kpi-by-hand | 3: start" in kpi.markdown(
        report, {}
    )

    unserved = project(tmp_path, "kpi-unserved")
    registered(unserved, unserved.model_name, ALL_STAGES, champion=False)
    assert kpi.project_kpi(unserved, tmp_path).manual_steps is None
    page = kpi.markdown(kpi.KpiReport([kpi.project_kpi(unserved, tmp_path)], 0.9, 11), {})
    assert "kpi-unserved | n/a (no champion) |" in page


def test_ready_means_a_champion_deployed_and_monitored(tracking, tmp_path) -> None:
    root = tmp_path / "monitoring"
    ready = project(tmp_path, "kpi-ready")
    version = registered(ready, ready.model_name, ALL_STAGES)
    stale = project(tmp_path, "kpi-stale")  # monitored, but only a former champion's windows
    old = registered(stale, stale.model_name, ALL_STAGES)
    registered(stale, stale.model_name, ALL_STAGES)
    unwatched = project(tmp_path, "kpi-unwatched")  # a champion nobody monitors
    registered(unwatched, unwatched.model_name, ALL_STAGES)
    untrained = project(tmp_path, "kpi-untrained")  # windows but no champion
    monitored(root, ready, version)
    monitored(root, stale, old)
    monitored(root, untrained, "1")
    standings = [kpi.project_kpi(c, root) for c in (ready, stale, unwatched, untrained)]
    assert [(p.deployed, p.monitored) for p in standings] == [
        (True, True),
        (True, False),
        (True, False),
        (False, False),
    ]
    report = kpi.KpiReport(standings, 0.9, len(STAGES))
    assert report.ready == 1 and report.readiness == 0.25
    assert "1/4 projects deployed and monitored (25%)" in kpi.markdown(report, {})


def test_coverage_comes_from_the_last_test_run(tmp_path) -> None:
    xml = tmp_path / "coverage.xml"
    assert math.isnan(kpi.coverage_ratio(xml))
    assert kpi.coverage_source(xml) == "no coverage.xml: run make test"
    xml.write_text('<coverage line-rate="0.8985"/>')
    assert kpi.coverage_ratio(xml) == 0.8985
    assert kpi.coverage_source(xml).startswith("coverage.xml of ")
    xml.unlink()
    assert math.isnan(kpi.coverage_ratio(xml))  # n/a only when no report exists


def test_the_default_coverage_report_is_the_repository_root_one() -> None:
    assert Path(kpi.__file__).resolve().parents[1] / "coverage.xml" == kpi.COVERAGE_XML


def test_the_cli_honours_projects_and_writes_the_page(tracking, tmp_path, monkeypatch) -> None:
    config = project(tmp_path, "kpi-cli")
    registered(config, config.model_name, {**ALL_STAGES, "deployment_lead_time_s": 2.0})
    (tmp_path / "coverage.xml").write_text('<coverage line-rate="0.9"/>')
    monkeypatch.chdir(tmp_path)
    argv = ["--projects", str(tmp_path / "kpi-cli.yaml"), "--out", str(tmp_path / "kpi"),
            "--coverage", str(tmp_path / "coverage.xml")]  # fmt: skip
    assert kpi.main(argv) == 0
    page = (tmp_path / "kpi" / "kpi.md").read_text()
    assert "kpi-cli" in page and "| Test coverage | 90.0% (coverage.xml of " in page
    assert "kpi-disk" not in page  # only the project asked for
    facts = json.loads((tmp_path / "kpi" / "kpi.json").read_text())
    assert facts["projects"][0]["manual_steps"] == [kpi.START_STEP]
