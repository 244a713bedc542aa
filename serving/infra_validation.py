"""Infra validation: load a candidate into a real, private Triton and prove it before traffic.

The candidate's ONNX is first checked against the SHA-256 registered with its version (the
bytes validated are the bytes deploy publishes). `stage_candidate` then writes what a Triton
needs to prove it: a one-model repository (the model config as deploy writes it for the
chosen backend, `threshold.v<N>` included), the holdout rows encoded exactly as the gateway
encodes requests for Triton, the in-process probabilities they must produce, and the probe
(`serving/triton_probe.py`, standard library only). Locally `validate_candidate` serves the
folder from the platform's Triton (python backend); on the cluster the pipeline's production
validation step serves the same folder from the production Triton image and backend
(`pipelines/production_triton.py`). Both run the same probe: served probabilities equal to
the in-process ones (tolerance) and single-row p99 latency under the budget.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.registry import ONNX_SHA256_TAG, verify_sha256
from serving import triton_probe
from serving.client import input_tensor
from serving.decision import PROBABILITIES_OUTPUT, threshold_parameters
from serving.gateway.contract import (
    TRITON_TO_V2,
    InputSpec,
    ModelContract,
    ParsedRequest,
    encode_for_triton,
)
from serving.launcher import TritonServer
from serving.model_repository import graph_inputs, triton_config, write_version
from serving.processes import free_ports

REPOSITORY = "repo"  # the candidate's one-model repository inside a staged folder
PROBE_FILE = "triton_probe.py"


@dataclass(frozen=True)
class InfraReport:
    """What the private Triton did with the candidate."""

    passed: bool
    reasons: list[str]
    rows: int
    max_abs_diff: float
    latency_requests: int
    p50_ms: float
    p99_ms: float
    ready_seconds: float
    parameters: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """A promoted challenger and what proves it (see `stage_candidate`)."""

    name: str
    version: int
    onnx_bytes: bytes
    rows: pd.DataFrame  # holdout rows of raw features (`model_inputs` form)
    expected: np.ndarray  # in-process probabilities of the positive class for `rows`
    sha256: str  # the version's registered `onnx_sha256`; other bytes are refused
    threshold: float  # served as `threshold.v<version>`
    parameters: dict[str, str]  # other config parameters served with the model
    tolerance: float  # max |served - expected| probability difference
    p99_budget_ms: float  # max p99 latency of single-row requests
    latency_requests: int = 200  # how many single-row requests are timed

    def served_parameters(self) -> dict[str, str]:
        """The model config parameters served with the version (its threshold included)."""
        return served_parameters(self.version, self.threshold, self.parameters)


def served_parameters(version: int, threshold: float, parameters: dict[str, str]) -> dict[str, str]:
    """`parameters` with the version's `threshold.v<version>`, as its model config serves them."""
    return parameters | threshold_parameters({version: threshold})


def stage_candidate(
    candidate: Candidate, folder: Path, *, backend: str = "python", kind: str = "KIND_CPU"
) -> dict[str, str]:
    """Write the candidate's repository, case file and probe into `folder`.

    Returns:
        The config parameters served with the version (threshold included).

    Raises:
        ArtifactIntegrityError: the ONNX bytes do not hash to `candidate.sha256` (nothing
            is written).
    """
    name, version = candidate.name, candidate.version
    verify_sha256(candidate.onnx_bytes, {ONNX_SHA256_TAG: candidate.sha256}, ONNX_SHA256_TAG,
                  name=name, version=str(version))  # fmt: skip
    parameters = candidate.served_parameters()
    config = triton_config(
        name, candidate.onnx_bytes, parameters=parameters, backend=backend, kind=kind
    )
    contract = _contract(candidate)
    rows = candidate.rows.head(candidate.latency_requests)
    case = {
        "model": name,
        "version": str(version),
        "batch": _encoded(contract, candidate.rows),
        "single_rows": [_encoded(contract, rows.iloc[[i]]) for i in range(len(rows))],
        "expected": [float(p) for p in np.asarray(candidate.expected, dtype=float)],
        "tolerance": candidate.tolerance,
        "p99_budget_ms": candidate.p99_budget_ms,
    }
    # Written only once every check and encoding above has passed.
    write_version(folder / REPOSITORY, name, version, candidate.onnx_bytes, config,
                  backend=backend)  # fmt: skip
    (folder / triton_probe.CASE_FILE).write_text(json.dumps(case))
    shutil.copyfile(triton_probe.__file__, folder / PROBE_FILE)
    return parameters


def _contract(candidate: Candidate) -> ModelContract:
    inputs = tuple(
        InputSpec(name, TRITON_TO_V2[dtype], tuple(dims))
        for name, dtype, dims in graph_inputs(candidate.onnx_bytes)
    )
    return ModelContract(candidate.name, (str(candidate.version),), inputs, max_batch_size=1024)


def _encoded(contract: ModelContract, rows: pd.DataFrame) -> dict[str, object]:
    """One request as the gateway sends it to Triton, base64 for the case file."""
    columns = {
        spec.name: input_tensor(rows[spec.name], spec.datatype).reshape(-1).tolist()
        for spec in contract.inputs
    }
    body, header_length = encode_for_triton(
        ParsedRequest(columns, len(rows)), contract, [PROBABILITIES_OUTPUT]
    )
    return {
        "body": base64.b64encode(body).decode(),
        "header_length": header_length,
        "output": PROBABILITIES_OUTPUT,
    }


def report_from_probe(probe: dict[str, object], parameters: dict[str, str]) -> InfraReport:
    """The InfraReport of a probe's report (local or from the production Triton)."""
    fields = {key: probe[key] for key in InfraReport.__dataclass_fields__ if key != "parameters"}
    return InfraReport(**fields, parameters=parameters)  # type: ignore[arg-type]


def validate_candidate(candidate: Candidate) -> InfraReport:
    """Serve the candidate from a private local Triton and probe parity and latency.

    Raises:
        ArtifactIntegrityError: the ONNX bytes do not hash to `candidate.sha256` (nothing
            is started).
    """
    with tempfile.TemporaryDirectory(prefix="infra-validation-") as tmp:
        folder = Path(tmp)
        parameters = stage_candidate(candidate, folder)
        http, grpc, metrics = free_ports(3)
        server = TritonServer(run_dir=folder / "run")
        started = time.perf_counter()
        server.start(folder / REPOSITORY, http_port=http, grpc_port=grpc, metrics_port=metrics,
                     model_control="none", timeout_s=60)  # fmt: skip
        ready_seconds = time.perf_counter() - started
        try:
            case = json.loads((folder / triton_probe.CASE_FILE).read_text())
            probe = triton_probe.probe(f"127.0.0.1:{http}", case, ready_timeout_s=10)
        except triton_probe.ProbeError as exc:
            probe = triton_probe.failed_report(f"probe failed: {exc}")
        finally:
            server.stop()
    probe["ready_seconds"] = round(ready_seconds, 3)
    return report_from_probe(probe, parameters)


def read_probe_report(path: Path, parameters: dict[str, str]) -> InfraReport:
    """The production validation step's report; a missing or unreadable one fails closed."""
    try:
        probe = json.loads(path.read_text())
        report = report_from_probe(probe, parameters)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = f"no readable report from the production Triton validation ({exc})"
        report = report_from_probe(triton_probe.failed_report(reason), parameters)
    if report.passed and not math.isfinite(report.max_abs_diff):
        return report_from_probe(triton_probe.failed_report("parity not measured"), parameters)
    return report
