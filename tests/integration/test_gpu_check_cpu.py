"""benchmarks.gpu_check for real on CPU: the real tritonserver from .venv-triton, a tiny ONNX model.

The GPU half needs an NVIDIA GPU (`make gpu-check`, never in CI); here the CPU half runs end to
end (`--cpu-only`), and the GPU variant of the python-backend model is shown to refuse to load
when onnxruntime has no CUDA provider, instead of quietly serving on the CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from benchmarks import gpu_check
from serving import launcher
from serving.model_repository import python_model_source, triton_config
from tests.conftest import REPO
from tests.integration.test_triton_server import build_onnx

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def triton_env() -> launcher.TritonEnv:
    try:
        return launcher.TritonEnv.discover()
    except launcher.TritonError as exc:
        pytest.fail(f"{exc} (these tests need the Triton runtime environment)")


@pytest.fixture(scope="module")
def tiny() -> gpu_check.Model:
    parameters = {"threshold": "0.4", "registry_version": "3"}
    return gpu_check.Model("tiny", "3", build_onnx(), parameters, "test")


def test_cpu_only_run_reports_measured_cpu_rows(triton_env, tmp_path):
    onnx, out = tmp_path / "tiny.onnx", tmp_path / "reports"
    onnx.write_bytes(build_onnx())
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--cpu-only", "--onnx", str(onnx)]
    cmd += ["--seconds", "2", "--warmup", "0.5", "--concurrency", "2", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((out / "gpu_check.json").read_text())
    assert result["status"].startswith("OK: CPU measured; GPU not run")
    assert set(result["variants"]) == {"cpu"} and result["tritonserver"]
    (cell,) = result["variants"]["cpu"]["cells"]
    assert cell["concurrency"] == 2 and cell["errors"] == 0 and cell["first_error"] is None
    assert cell["requests"] > 50 and cell["requests_per_s"] > 25
    assert 0 < cell["p50_ms"] <= cell["p99_ms"]

    markdown = (out / "gpu_check.md").read_text()
    assert "| CPU: python backend + onnxruntime CPU, KIND_CPU (as `make serve`) | 2 |" in markdown
    assert f"GPU: {result['gpu_not_run']}." in markdown
    assert (out / "gpu_check.cpu.tritonserver.log").is_file()


def test_repositories_cpu_as_deploy_writes_it_and_the_gpu_variants(tiny, tmp_path):
    cpu = gpu_check.write_repository(tmp_path / "cpu", tiny) / "tiny"
    # serving.deploy.deploy_champion's call, for the same champion:
    deployed = triton_config("tiny", tiny.onnx, parameters=tiny.parameters)
    assert (cpu / "config.pbtxt").read_text() == deployed
    assert (cpu / "3" / "model.py").read_text() == python_model_source().read_text()

    python_gpu = gpu_check.write_repository(tmp_path / "py", tiny, "python") / "tiny"
    assert (python_gpu / "config.pbtxt").read_text() == deployed
    assert (python_gpu / "3" / "model.py").read_text() == gpu_check.gpu_model_source()

    ort_gpu = gpu_check.write_repository(tmp_path / "ort", tiny, "onnxruntime") / "tiny"
    config = (ort_gpu / "config.pbtxt").read_text()
    assert "kind: KIND_GPU" in config and 'platform: "onnxruntime_onnx"' in config
    assert not (ort_gpu / "3" / "model.py").exists()


def test_gpu_variant_refuses_to_load_without_cuda(triton_env, tiny, tmp_path):
    route, missing = gpu_check.gpu_route(triton_env)
    if route is not None:
        pytest.skip(f".venv-triton can serve on the GPU here ({route})")
    assert "onnxruntime backend" in missing[0] and "CUDAExecutionProvider" in missing[1]

    args = argparse.Namespace(out=tmp_path / "out", concurrency=[1], seconds=1.0, warmup=0.0)
    with pytest.raises(gpu_check.CheckError, match="did not enable CUDAExecutionProvider"):
        gpu_check.measure("python", tiny, args, tmp_path)
    log = (args.out / "gpu_check.gpu.tritonserver.log").read_text()
    assert gpu_check.gpu_proof("python", log) == (
        False,
        "session providers logged by the model: ['CPUExecutionProvider']",
    )
