"""The compiled pipeline YAML loads back with the kfp SDK and names the pipeline image."""

import pytest
import yaml
from kfp import components

from configs import RUN_PARAMETERS, ConfigError, load_config, run_parameters
from pipelines.compile import compile_pipeline, main
from pipelines.components import PIPELINE_IMAGE
from pipelines.production_triton import TRITON_IMAGE

STEPS = [
    "load-data",
    "validate-data",
    "split-data",
    "tune-model",
    "condition-1",  # parallel tuning workers when tune_workers > 1
    "train-model",
    "evaluate-model",
    "explain-model",
    "export-model",
    "register-model",
    "gate-model",
    "condition-branches-3",  # deploy: validated in the production Triton image, or locally
]


def _pipeline_spec(path) -> dict:
    """The pipeline spec: the first of the file's two documents (the second: Kubernetes)."""
    return next(yaml.safe_load_all(path.read_text()))


def test_compiled_pipeline_loads_back_with_every_step(tmp_path):
    path = compile_pipeline(tmp_path / "p.yaml", "churn")
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == "tabular-training"
    spec = _pipeline_spec(path)
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEPS)
    assert tasks["gate-model"]["dependentTasks"] == sorted(
        [
            "evaluate-model",
            "explain-model",
            "load-data",
            "register-model",
            "split-data",
            "train-model",
        ]
    )
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {PIPELINE_IMAGE, TRITON_IMAGE}
    executors = spec["deploymentSpec"]["executors"]
    assert executors["exec-validate-in-production-triton"]["container"]["image"] == TRITON_IMAGE
    default = spec["root"]["inputDefinitions"]["parameters"]["config_yaml"]["defaultValue"]
    assert yaml.safe_load(default)["name"] == "churn"
    # The settings runs are compared by, beside the config, defaulting to the project's values.
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert {k: parameters[k]["defaultValue"] for k in RUN_PARAMETERS} == run_parameters(
        load_config("churn")
    )
    parallel = tasks["condition-1"]
    assert "tune_workers']) > 1" in parallel["triggerPolicy"]["condition"]
    loop = spec["components"]["comp-condition-1"]["dag"]["tasks"]["for-loop-2"]
    assert loop["parameterIterator"]["items"]["inputParameter"]
    assert list(spec["components"]["comp-for-loop-2"]["dag"]["tasks"]) == ["tune-worker"]


def test_the_cluster_validates_a_winner_in_the_production_triton_image(tmp_path):
    spec = _pipeline_spec(compile_pipeline(tmp_path / "p.yaml", "churn"))
    parameter = spec["root"]["inputDefinitions"]["parameters"]["triton_validation"]
    assert parameter["defaultValue"] == "production"  # kfp.local runs pass nothing: "local"
    branches = spec["components"]["comp-condition-branches-3"]["dag"]["tasks"]
    conditions = {name: task["triggerPolicy"]["condition"] for name, task in branches.items()}
    production = next(n for n, c in conditions.items() if not c.startswith("!"))
    assert "triton_validation'] == 'production'" in conditions[production]
    on_cluster = spec["components"][f"comp-{production}"]["dag"]["tasks"]
    assert sorted(on_cluster) == [
        "deploy-model",
        "stage-candidate",
        "validate-in-production-triton",
    ]
    probe = on_cluster["validate-in-production-triton"]
    assert probe["dependentTasks"] == ["stage-candidate"]
    report = on_cluster["deploy-model"]["inputs"]["artifacts"]["production_report"]
    assert report["taskOutputArtifact"]["producerTask"] == "validate-in-production-triton"
    (local,) = (n for n in conditions if n != production)
    assert list(spec["components"][f"comp-{local}"]["dag"]["tasks"]) == ["deploy-model-2"]


def test_every_deploy_step_holds_the_cluster_wide_promotion_lock(tmp_path):
    """On a cluster the tracking store is an http server, so both deploy branches read the
    shared lock from a required Secret (no Secret: the pod does not start, nothing moves)."""
    from models.registry import LOCK_ENV
    from pipelines.training import PROMOTION_LOCK_SECRET

    _, platform = yaml.safe_load_all(compile_pipeline(tmp_path / "p.yaml", "churn").read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(executors) == ["exec-deploy-model", "exec-deploy-model-2"]
    for executor in executors.values():
        (secret,) = executor["secretAsEnv"]
        assert secret["secretName"] == PROMOTION_LOCK_SECRET and secret["optional"] is False
        assert secret["keyToEnv"] == [{"envVar": LOCK_ENV, "secretKey": LOCK_ENV}]


def test_bad_project_fails_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="config not found"):
        compile_pipeline(tmp_path / "p.yaml", "nope")
    assert not (tmp_path / "p.yaml").exists()


def test_cli_writes_the_file(tmp_path, capsys):
    assert main(["--output", str(tmp_path / "out.yaml")]) == 0
    assert (tmp_path / "out.yaml").is_file() and "compiled" in capsys.readouterr().out
