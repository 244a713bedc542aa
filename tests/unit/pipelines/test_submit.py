"""`make deploy`: errors without a reachable host, and what is created on Kubeflow Pipelines.

No Kubeflow Pipelines API server can run on these machines (it needs a Kubernetes cluster),
so the submission itself is checked against `RecordingKfpClient`, a named fake that records
the calls `kfp.Client` would send. The pipeline package it receives is the real compiled one.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from configs import load_config
from pipelines import submit
from pipelines.compile import compile_pipeline


def _spec(path) -> dict:
    """The pipeline spec of a package (its first document; the second: Kubernetes settings)."""
    return next(yaml.safe_load_all(Path(path).read_text()))


class RecordingKfpClient:
    """Fake `kfp.Client`: records calls, returns ids (the API server needs a cluster)."""

    def __init__(self):
        self.calls = []

    def create_run_from_pipeline_package(self, pipeline_file, **kwargs):
        self.calls.append(("run", _spec(pipeline_file), kwargs))
        return SimpleNamespace(run_id="run-1")

    def create_experiment(self, name):
        self.calls.append(("experiment", name, {}))
        return SimpleNamespace(experiment_id="exp-1")

    def create_recurring_run(self, **kwargs):
        package = _spec(kwargs["pipeline_package_path"])
        self.calls.append(("recurring", package, kwargs))
        return SimpleNamespace(recurring_run_id="rec-1")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return compile_pipeline(tmp_path_factory.mktemp("kfp") / "p.yaml", "fraud")


def test_a_run_gets_the_compiled_pipeline_and_cluster_arguments(package):
    client = RecordingKfpClient()
    storage = "postgresql+psycopg://optuna@db/optuna"
    done = submit.submit(client, load_config("fraud"), package, recurring=False,
                         study_storage=storage, tune_workers=3)  # fmt: skip
    assert done == submit.Submission("run", "run-1", "fraud-training", "fraud")
    kind, spec, kwargs = client.calls[0]
    assert kind == "run" and spec["pipelineInfo"]["name"] == "tabular-training"
    assert kwargs["arguments"] == {
        "study_storage": storage,
        "serving_repository": "",  # the cluster's Triton syncs from the registry
        "tune_workers": 3,
    }
    with pytest.raises(submit.SubmitError, match="needs a PostgreSQL --study-storage"):
        submit.submit(client, load_config("fraud"), package, recurring=False, tune_workers=2)


def test_a_recurring_run_uses_the_config_schedule(package):
    client = RecordingKfpClient()
    done = submit.submit(client, load_config("fraud"), package, recurring=True)
    assert done.kind == "recurring run" and done.id == "rec-1"
    _, _, kwargs = client.calls[-1]
    assert kwargs["cron_expression"] == load_config("fraud").schedule
    assert kwargs["experiment_id"] == "exp-1" and kwargs["no_catchup"] is True


def test_a_recurring_run_needs_a_schedule(package):
    with pytest.raises(submit.SubmitError, match="has no `schedule`"):
        submit.submit(RecordingKfpClient(), load_config("churn"), package, recurring=True)


def test_missing_and_unreachable_hosts_are_clear_errors(capsys, monkeypatch):
    monkeypatch.delenv("KFP_HOST", raising=False)
    assert submit.main(["--project", "fraud"]) == 2
    assert "set KFP_HOST" in capsys.readouterr().err
    assert submit.main(["--project", "fraud", "--host", "http://127.0.0.1:9"]) == 2
    assert "Kubeflow Pipelines at http://127.0.0.1:9 does not answer" in capsys.readouterr().err


def test_schedule_must_be_six_field_cron(tmp_path):
    from configs import ConfigError
    from tests.conftest import write_config

    path = write_config(tmp_path / "c.yaml", schedule="0 3 * * *")
    with pytest.raises(ConfigError, match="needs 6 cron fields"):
        load_config(path)
