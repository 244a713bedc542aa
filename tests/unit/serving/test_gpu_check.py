"""benchmarks.gpu_check without a GPU: the real no-GPU exit, and the check's pure parts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import gpu_check
from serving.model_repository import python_model_source
from tests.conftest import REPO

no_gpu_here = pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None, reason="nvidia-smi is here: no no-GPU exit to see"
)

_RUN_MAIN = """
import json, sys
from benchmarks.gpu_check import main
code = main(sys.argv[1:])
heavy = ["numpy", "pandas", "mlflow", "onnx", "onnxruntime", "tritonclient", "serving.launcher"]
print(json.dumps([name for name in heavy if name in sys.modules]))
sys.exit(code)
"""


@no_gpu_here
def test_no_gpu_exits_3_with_a_clear_message_before_any_heavy_import(tmp_path):
    out = tmp_path / "reports"
    cmd = [sys.executable, "-c", _RUN_MAIN, "--out", str(out), "--seconds", "1"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == gpu_check.EXIT_NO_GPU == 3, done.stderr
    for part in ("no NVIDIA GPU found", "nvidia-smi not found on PATH", "not part of CI"):
        assert part in done.stderr
    assert "--cpu-only" in done.stderr
    assert json.loads(done.stdout) == []  # nothing heavy imported
    assert not out.exists()  # nothing written, nothing started


@no_gpu_here
def test_the_module_entry_point_exits_3_too():
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--concurrency", "8", "64"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and "no NVIDIA GPU found" in done.stderr


def test_summarize_synthetic_latencies():
    summary = gpu_check.summarize(np.arange(1, 101) / 1000.0, ["timeout", "refused"], 2.0)
    assert summary["requests"] == 100 and summary["errors"] == 2
    assert summary["requests_per_s"] == pytest.approx(50.0)  # successes only
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)
    assert summary["first_error"] == "timeout"


def test_summarize_a_handful_matches_numpy():
    summary = gpu_check.summarize([0.004, 0.001, 0.003, 0.010, 0.002], [], 0.5)
    assert summary["requests_per_s"] == pytest.approx(10.0)
    assert summary["p50_ms"] == pytest.approx(3.0)
    assert summary["p99_ms"] == pytest.approx(np.percentile([4, 1, 3, 10, 2], 99)) == 9.76
    assert summary["errors"] == 0 and summary["first_error"] is None


def test_summarize_without_successes():
    summary = gpu_check.summarize([], ["e"] * 7, 1.0)
    assert (summary["requests"], summary["errors"], summary["requests_per_s"]) == (0, 7, 0.0)
    assert summary["p50_ms"] is None and summary["p99_ms"] is None
    assert gpu_check.summarize([0.001], [], 0.0)["requests_per_s"] == 0.0


def _cell(concurrency: int, rps: float, errors: int = 0) -> dict:
    return {
        "concurrency": concurrency,
        "requests": int(rps * 2),
        "errors": errors,
        "requests_per_s": rps,
        "p50_ms": 1.0,
        "p99_ms": 4.0,
        "first_error": "InferenceServerException: boom" if errors else None,
    }


def _result(**variants: dict) -> dict:
    return {
        "model": "m",
        "version": "3",
        "source": "file m.onnx",
        "gpus": ["NVIDIA H100"],
        "gpu_status": "nvidia-smi lists 1 GPU(s)",
        "cpu_count": 16,
        "seconds": 10.0,
        "warmup_s": 2.0,
        "gpu_not_run": "not run (--cpu-only)",
        "tritonserver": "2.51.0",
        "variants": variants,
    }


def test_verdict():
    cpu = {"label": "CPU", "cells": [_cell(8, 1000.0)]}
    gpu = {"label": "GPU", "cells": [_cell(8, 3000.0)], "on_gpu": True, "proof": "CUDA"}
    assert gpu_check.verdict(_result(cpu=cpu)) == ("OK: CPU measured; GPU not run (--cpu-only)", 0)
    assert gpu_check.verdict(_result(cpu=cpu, gpu=gpu)) == ("OK: CPU measured; GPU measured", 0)
    off_gpu = {**gpu, "on_gpu": False}
    assert gpu_check.verdict(_result(cpu=cpu, gpu=off_gpu)) == (
        "FAIL: the GPU variant did not run on the GPU",
        1,
    )
    failing = {"label": "CPU", "cells": [_cell(8, 900.0, errors=3)]}
    assert gpu_check.verdict({**_result(cpu=failing), "gpu_failure": "no CUDA"}) == (
        "FAIL: 3 request(s) failed; the GPU variant failed",
        1,
    )


def test_render_markdown_compares_gpu_with_cpu():
    cpu = {"label": "CPU", "cells": [_cell(8, 1000.0), _cell(64, 1200.0, errors=1)]}
    gpu = {"label": "GPU", "cells": [_cell(8, 3000.0)], "on_gpu": True, "proof": "providers [x]"}
    result = {**_result(cpu=cpu, gpu=gpu), "status": "FAIL: 1 request(s) failed"}
    markdown = gpu_check.render_markdown(result)
    assert "**FAIL: 1 request(s) failed**" in markdown
    assert "- GPU: NVIDIA H100 (nvidia-smi lists 1 GPU(s))" in markdown
    assert "| GPU | 8 | 3,000 | 1.00 | 4.00 | 6,000 | 0 | 3.00x |" in markdown
    assert "| CPU | 64 | 1,200 | 1.00 | 4.00 | 2,400 | 1 | 1.00x |" in markdown
    assert "GPU variant on CUDA: **yes** (providers [x])." in markdown
    assert "First error: `InferenceServerException: boom`" in markdown


def test_gpu_proof_reads_what_the_model_and_triton_logged():
    # A pb_utils.Logger line as Triton writes it (quotes escaped).
    logged = (
        'I1127 17:04:49.144594 18638 model.py:237] "gpu_check: execution providers '
        '[\\"CUDAExecutionProvider\\", \\"CPUExecutionProvider\\"]"'
    )
    on_gpu, proof = gpu_check.gpu_proof("python", "I0 other line\n" + logged)
    assert on_gpu and "['CUDAExecutionProvider', 'CPUExecutionProvider']" in proof
    cpu_only = logged.replace('\\"CUDAExecutionProvider\\", ', "")
    assert gpu_check.gpu_proof("python", cpu_only)[0] is False
    assert gpu_check.gpu_proof("python", "nothing logged") == (
        False,
        "session providers logged by the model: none",
    )
    placed = 'I1 onnxruntime.cc:2000] "TRITONBACKEND_ModelInstanceInitialize: m_0_0 (GPU device 0)"'
    assert gpu_check.gpu_proof("onnxruntime", placed) == (True, placed)
    assert gpu_check.gpu_proof("onnxruntime", "m_0_0 (CPU device 0)")[0] is False


def test_gpu_variant_of_the_served_model_is_valid_python():
    served = python_model_source().read_text()
    assert served.count('providers=["CPUExecutionProvider"]') == 1
    source = gpu_check.gpu_model_source()
    compile(source, "model.py", "exec")
    assert '("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"' in source
    assert source.endswith("TritonPythonModel.initialize = _initialize_on_gpu\n")
