"""Infra validation against a real private Triton: the staged candidate, the probe, the report.

The probe (`serving/triton_probe.py`) is the code the cluster's production validation step
runs inside the NGC Triton image; here it also runs as a standalone, standard-library-only
script (`python3 -S -I`), the way that image runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.registry import ArtifactIntegrityError, sha256_hex
from serving import triton_probe
from serving.infra_validation import (
    PROBE_FILE,
    REPOSITORY,
    Candidate,
    read_probe_report,
    stage_candidate,
    validate_candidate,
)
from serving.launcher import TritonServer
from serving.processes import free_ports
from tests.integration.test_triton_server import build_onnx, expected

pytestmark = pytest.mark.integration

ROWS = pd.DataFrame(
    {"x": [0.5, -1.0, np.nan, 2.0, 0.0] * 8, "c": ["yes", "no", None, "yes", "maybe"] * 8}
)


def _candidate(shift: float = 0.0, **changes) -> Candidate:
    onnx_bytes = build_onnx(impute_missing=True)
    probabilities = expected(ROWS["x"].fillna(0.0).to_numpy(), ROWS["c"].tolist(), shift)
    fields = {
        "name": "tiny",
        "version": 3,
        "onnx_bytes": onnx_bytes,
        "rows": ROWS,
        "expected": probabilities[:, 1],
        "sha256": sha256_hex(onnx_bytes),
        "threshold": 0.42,
        "parameters": {"registry_version": "3"},
        "tolerance": 1e-5,
        "p99_budget_ms": 1000.0,
        "latency_requests": 10,
    }
    return Candidate(**(fields | changes))


def test_a_faithful_candidate_passes_with_its_numbers():
    report = validate_candidate(_candidate())
    assert report.passed, report.reasons
    assert report.rows == len(ROWS) and report.latency_requests == 10
    assert report.max_abs_diff < 1e-5 and 0 < report.p50_ms <= report.p99_ms
    assert report.ready_seconds > 0
    assert report.parameters == {"registry_version": "3", "threshold.v3": "0.42"}


def test_a_candidate_whose_served_scores_differ_is_refused_with_the_difference():
    report = validate_candidate(_candidate(shift=0.3))
    assert not report.passed
    assert report.reasons[0].startswith("served probabilities differ from in-process by 0.0")


def test_bytes_other_than_the_registered_ones_start_nothing(tmp_path):
    with pytest.raises(ArtifactIntegrityError, match="onnx_sha256"):
        stage_candidate(_candidate(sha256="0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_rows_that_cannot_be_encoded_stage_nothing(tmp_path):
    from serving.client import ClientError

    bad = ROWS.assign(x=["not a number"] * len(ROWS))
    with pytest.raises(ClientError, match="column 'x' has non-numeric values"):
        stage_candidate(_candidate(rows=bad), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_production_variant_is_staged_for_the_onnxruntime_backend(tmp_path):
    stage_candidate(_candidate(), tmp_path, backend="onnxruntime", kind="KIND_GPU")
    config = (tmp_path / REPOSITORY / "tiny" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "kind: KIND_GPU" in config
    assert 'key: "threshold.v3"' in config
    assert (tmp_path / REPOSITORY / "tiny" / "3" / "model.onnx").is_file()
    case = json.loads((tmp_path / triton_probe.CASE_FILE).read_text())
    assert len(case["single_rows"]) == 10 and len(case["expected"]) == len(ROWS)


def test_the_staged_probe_runs_alone_on_the_standard_library(tmp_path):
    """What the production image runs: the copied script, no site-packages, no repo on path."""
    stage_candidate(_candidate(), tmp_path)
    http, grpc, metrics = free_ports(3)
    server = TritonServer(run_dir=tmp_path / "run")
    server.start(tmp_path / REPOSITORY, http_port=http, grpc_port=grpc, metrics_port=metrics,
                 model_control="none", timeout_s=60)  # fmt: skip
    try:
        done = subprocess.run(
            [sys.executable, "-S", "-I", str(tmp_path / PROBE_FILE),
             "--case", str(tmp_path / triton_probe.CASE_FILE),
             "--report", str(tmp_path / "out" / triton_probe.REPORT_FILE),
             "--url", f"127.0.0.1:{http}"],
            capture_output=True, text=True, timeout=120, cwd="/",
        )  # fmt: skip
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    report = read_probe_report(tmp_path / "out" / triton_probe.REPORT_FILE, {})
    assert report.passed and report.max_abs_diff < 1e-5 and report.latency_requests == 10


def test_a_missing_or_broken_production_report_fails_closed(tmp_path):
    assert not read_probe_report(tmp_path / "absent.json", {}).passed
    (tmp_path / "broken.json").write_text('{"passed": true}')
    report = read_probe_report(tmp_path / "broken.json", {})
    assert not report.passed and "no readable report" in report.reasons[0]


def test_a_probe_against_no_server_reports_instead_of_raising(tmp_path):
    stage_candidate(_candidate(), tmp_path)
    (port,) = free_ports(1)
    out = tmp_path / "report.json"
    status = triton_probe.main(["--case", str(tmp_path / triton_probe.CASE_FILE),
                                "--report", str(out), "--url", f"127.0.0.1:{port}",
                                "--ready-timeout-s", "1"])  # fmt: skip
    report = json.loads(out.read_text())
    assert status == 0 and report["passed"] is False
    assert report["reasons"][0].startswith("probe failed: ProbeError: model tiny v3 not ready")


def _serve_and_probe(folder: Path, report: Path) -> subprocess.CompletedProcess:
    """The production validation step's script, with the local tritonserver as `tritonserver`.

    The one difference from the NGC image is named here: the wheel's server keeps its backends
    beside it, not in the image's default /opt/tritonserver/backends, so a two-line wrapper
    passes --backend-directory (python backend: the wheel has no onnxruntime backend).
    """
    from pipelines.production_triton import SERVE_AND_PROBE
    from serving.launcher import TritonEnv

    env = TritonEnv.discover()
    shim = folder.parent / "bin" / "tritonserver"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec {env.server} --backend-directory={env.backends} "$@"\n')
    shim.chmod(0o755)
    process_env = env.process_env()
    process_env["PATH"] = f"{shim.parent}:{process_env['PATH']}"
    (port,) = free_ports(1)
    return subprocess.run(
        ["bash", "-c", SERVE_AND_PROBE, str(folder), str(report), str(port)],
        capture_output=True, text=True, timeout=300, env=process_env,
    )  # fmt: skip


def test_the_cluster_step_script_serves_the_staged_folder_and_reports(tmp_path):
    stage_candidate(_candidate(), tmp_path / "candidate")
    done = _serve_and_probe(tmp_path / "candidate", tmp_path / "out" / "report")
    assert done.returncode == 0, done.stdout + done.stderr
    report = read_probe_report(tmp_path / "out" / "report", {})
    assert report.passed and report.rows == len(ROWS), report.reasons


def test_the_cluster_step_script_skips_a_folder_the_gate_did_not_promote(tmp_path):
    (tmp_path / "candidate").mkdir()
    done = _serve_and_probe(tmp_path / "candidate", tmp_path / "report")
    assert done.returncode == 0
    assert json.loads((tmp_path / "report").read_text()) == {"skipped": True}


def test_a_server_that_dies_at_start_fails_the_probe_at_once(tmp_path):
    stage_candidate(_candidate(), tmp_path / "candidate")
    (tmp_path / "candidate" / REPOSITORY / "tiny" / "config.pbtxt").write_text("broken {")
    done = _serve_and_probe(tmp_path / "candidate", tmp_path / "report")
    report = json.loads((tmp_path / "report").read_text())
    assert done.returncode == 0 and report["passed"] is False
    assert "exited before tiny was ready" in report["reasons"][0]
