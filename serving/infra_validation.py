"""Infra validation: load a candidate into a real, private Triton and prove it before traffic.

The candidate's ONNX is first checked against the SHA-256 registered with its version (the
bytes validated are the bytes deploy publishes), then written to a temporary repository (model
config as deploy writes it, `threshold.v<N>` included), a Triton server starts on free
ports, holdout rows are replayed through the platform's client, and the served probabilities
must equal the in-process ones (tolerance) with single-row p99 latency under the budget.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.registry import ONNX_SHA256_TAG, verify_sha256
from serving.client import ModelClient
from serving.decision import threshold_parameters
from serving.launcher import TritonServer
from serving.model_repository import triton_config, write_version
from serving.processes import free_ports


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


def validate_candidate(
    name: str,
    version: int,
    onnx_bytes: bytes,
    rows: pd.DataFrame,
    expected: np.ndarray,
    *,
    sha256: str,
    threshold: float,
    parameters: dict[str, str],
    tolerance: float,
    p99_budget_ms: float,
    latency_requests: int = 200,
) -> InfraReport:
    """Serve the candidate from a private Triton and check parity and latency.

    Args:
        name, version: Triton model name and version (the registry's).
        onnx_bytes: The parity-checked ONNX of the candidate.
        rows: Holdout rows of raw features (`model_inputs` form).
        expected: In-process probabilities of the positive class for `rows`.
        sha256: The version's registered `onnx_sha256`; other bytes are refused.
        threshold: The version's decision threshold (served as `threshold.v<version>`).
        parameters: Other config parameters served with the model (registry version, ...).
        tolerance: Max |served - expected| probability difference.
        p99_budget_ms: Max p99 latency of single-row requests.
        latency_requests: How many single-row requests are timed.

    Raises:
        ArtifactIntegrityError: `onnx_bytes` do not hash to `sha256` (nothing is started).
    """
    verify_sha256(onnx_bytes, {ONNX_SHA256_TAG: sha256}, ONNX_SHA256_TAG, name=name,
                  version=str(version))  # fmt: skip
    parameters = parameters | threshold_parameters({version: threshold})
    with tempfile.TemporaryDirectory(prefix="infra-validation-") as tmp:
        repo = Path(tmp) / "repo"
        config = triton_config(name, onnx_bytes, parameters=parameters)
        write_version(repo, name, version, onnx_bytes, config)
        http, grpc, metrics = free_ports(3)
        server = TritonServer(run_dir=Path(tmp) / "run")
        started = time.perf_counter()
        server.start(repo, http_port=http, grpc_port=grpc, metrics_port=metrics,
                     model_control="none", timeout_s=60)  # fmt: skip
        ready_seconds = time.perf_counter() - started
        try:
            client = ModelClient(name, f"127.0.0.1:{http}")
            served = client.predict(rows)["probability"].to_numpy()
            timings = []
            for i in range(min(latency_requests, len(rows))):
                begin = time.perf_counter()
                client.predict(rows.iloc[[i]])
                timings.append((time.perf_counter() - begin) * 1000)
            client.close()
        finally:
            server.stop()
    diff = float(np.max(np.abs(served - np.asarray(expected, dtype=float))))
    p50, p99 = (float(v) for v in np.percentile(timings, [50, 99]))
    reasons = []
    if not diff <= tolerance:
        reasons.append(f"served probabilities differ from in-process by {diff:.3g} > {tolerance:g}")
    if not p99 <= p99_budget_ms:
        reasons.append(f"single-row p99 latency {p99:.2f} ms > budget {p99_budget_ms:g} ms")
    return InfraReport(
        passed=not reasons,
        reasons=reasons or [f"parity {diff:.2e} and p99 {p99:.2f} ms within limits"],
        rows=len(rows),
        max_abs_diff=diff,
        latency_requests=len(timings),
        p50_ms=p50,
        p99_ms=p99,
        ready_seconds=round(ready_seconds, 3),
        parameters=parameters,
    )
