"""Every command line: `--help` works and is complete, and errors say what to run next."""

from __future__ import annotations

import argparse
import importlib
import os
import re

import pytest

from configs.cli import LOG_LEVEL_ENV, UserError
from pipelines.audit import PACKAGES
from tests.conftest import REPO, write_config

# Every module with a `main` that `make` (or a person) runs as `python -m <module>`.
# Scripts that run outside the platform's environment (standard library only), so without the
# shared console flags: the probe runs inside the production Triton image.
STANDALONE = ("serving.triton_probe",)
CLI_MODULES = (
    "benchmarks.bench_edge",
    "benchmarks.bench_explain",
    "benchmarks.bench_monitor",
    "benchmarks.bench_pipeline",
    "benchmarks.bench_quality",
    "benchmarks.bench_serve",
    "benchmarks.bench_tune",
    "benchmarks.gpu_check",
    "features.init_config",
    "configs.reference",
    "monitoring.canary",
    "monitoring.kpi",
    "monitoring.loop",
    "monitoring.monitor",
    "monitoring.shadow",
    "monitoring.simulate",
    "monitoring.stack",
    "pipelines.audit",
    "pipelines.compile",
    "pipelines.image",
    "pipelines.rollback",
    "pipelines.run_local",
    "pipelines.submit",
    "pipelines.tune_distributed",
    "serving.client",
    "serving.deploy",
    "serving.gateway.cli",
    "serving.launcher",
    "serving.log_retention",
)


@pytest.fixture(autouse=True)
def _environment():
    """The commands export their log level (for their children): undo that after each test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_every_module_with_a_main_is_listed():
    found = {
        ".".join(path.relative_to(REPO).with_suffix("").parts)
        for package in PACKAGES  # the platform's packages, as pyproject.toml lists them
        for path in (REPO / package).rglob("*.py")
        if re.search(r"^def main\(", path.read_text(), re.MULTILINE)
    }
    assert found == set(CLI_MODULES) | set(STANDALONE), (
        "add new CLIs to CLI_MODULES (and give them --help)"
    )


@pytest.mark.parametrize("name", STANDALONE)
def test_standalone_scripts_document_every_option(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(name).main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: ")
    assert all(line.strip() for line in out.split("options:")[1].splitlines()[1:] if line)


@pytest.mark.parametrize("name", CLI_MODULES)
def test_help_has_usage_description_and_help_for_every_option(name, monkeypatch, capsys):
    parsers: list[argparse.ArgumentParser] = []
    print_help = argparse.ArgumentParser.print_help

    def capture(self, file=None):
        parsers.append(self)
        print_help(self, file)

    monkeypatch.setattr(argparse.ArgumentParser, "print_help", capture)
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(name).main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m {name.removesuffix('.cli')} ")  # package CLIs
    parser = parsers[-1]
    assert parser.description and parser.description.strip()
    assert "--log-level" in out
    undocumented = [
        action.dest
        for action in parser._actions
        if action.help != argparse.SUPPRESS and not (action.help or "").strip()
    ]
    assert not undocumented, f"options without help: {undocumented}"


def test_log_level_comes_from_the_environment(monkeypatch):
    from pipelines import run_local

    monkeypatch.setenv(LOG_LEVEL_ENV, "warning")
    assert run_local.parse_args([]).log_level == "WARNING"
    assert run_local.parse_args(["--log-level", "debug"]).log_level == "DEBUG"
    with pytest.raises(SystemExit):
        run_local.parse_args(["--log-level", "loud"])


# -- errors name what went wrong and what to run next ----------------------------------------


def _next_step(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines[0].startswith("error: "), err
    steps = [line for line in lines if line.startswith("  next: ")]
    assert len(steps) == 1, err
    return steps[0].removeprefix("  next: ")


def test_monitor_with_an_empty_log_says_to_simulate(tracking, tmp_path, capsys):
    from monitoring import monitor

    config = write_config(tmp_path / "mon.yaml", name="mon")
    args = ["--project", str(config), "--log-path", str(tmp_path / "log")]
    assert monitor.main(args) == 2
    err = capsys.readouterr().err
    assert "error: no predictions of mon-classifier under" in err
    assert _next_step(err).startswith(f"make simulate PROJECT={config}")


def test_rollback_without_a_champion_says_to_run_the_pipeline(tracking, tmp_path, capsys):
    from pipelines import rollback

    config = write_config(tmp_path / "nochamp.yaml", name="nochamp")
    assert rollback.main(["--project", str(config), "--repo", str(tmp_path / "repo")]) == 2
    err = capsys.readouterr().err
    assert "'nochamp-classifier' has no champion" in err
    assert _next_step(err) == f"make pipeline PROJECT={config}"


def test_a_missing_triton_environment_says_make_triton_env(tmp_path, capsys):
    from serving import launcher

    args = ["start", "--repo", str(tmp_path), "--venv", str(tmp_path / "none"),
            "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert launcher.main(args) == 1
    err = capsys.readouterr().err
    assert f"no Triton environment at {tmp_path / 'none'}" in err
    assert _next_step(err).startswith("make triton-env")


def test_unreachable_prometheus_says_make_monitor_up(capsys):
    from monitoring import loop

    assert loop.main(["--project", "fraud", "--prometheus", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "cannot read alerts from http://127.0.0.1:9/api/v1/alerts" in err
    assert _next_step(err).startswith("make monitor-up")


def test_an_unknown_project_lists_the_known_ones(capsys):
    from serving import deploy

    assert deploy.main(["--project", "nope"]) == 2
    err = capsys.readouterr().err
    assert "config not found" in err
    assert _next_step(err).startswith("PROJECT=churn or PROJECT=fraud")


def test_a_failing_step_records_its_next_step_for_the_runner(tracking):
    import mlflow

    from configs import load_config
    from pipelines.steps.edge import stage
    from pipelines.training import config_parameter

    run = mlflow.MlflowClient().create_run(mlflow.create_experiment("cli-hint"))
    with pytest.raises(UserError), stage("load", config_parameter(load_config("fraud")),
                                         run.info.run_id):  # fmt: skip
        raise UserError("broken", hint="make something")
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["failed_stage"] == "load" and tags["failure_hint"] == "make something"
