"""Probe a served candidate the way production calls it: parity and single-row latency.

    python3 triton_probe.py --case case.json --report report.json [--url 127.0.0.1:8010]

Standard library only, so the same file runs in the platform's Python (local infra
validation) and, copied beside the candidate, inside the production Triton image, which holds
none of our packages (the cluster pipeline's validation step). The case file
(`serving.infra_validation.stage_candidate`) holds the requests already encoded as the gateway
encodes them for Triton (JSON header + binary tensors), the expected probabilities and the
limits; the report says whether the served probabilities match and the p99 fits the budget.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

HEADER_LENGTH = "Inference-Header-Content-Length"
CASE_FILE = "case.json"
REPORT_FILE = "report.json"


class ProbeError(RuntimeError):
    """The server did not answer as a serving Triton must; the message says what it did."""


def wait_ready(
    url: str, model: str, version: str, timeout_s: float, server_pid: int | None = None
) -> float:
    """Seconds until `model` version `version` is ready.

    Raises:
        ProbeError: not ready after `timeout_s`, or the server process `server_pid` exited.
    """
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout_s:
        if server_pid is not None and not pid_alive(server_pid):
            raise ProbeError(f"the server (pid {server_pid}) exited before {model} was ready")
        try:
            status, _ = _get(url, f"/v2/models/{model}/versions/{version}/ready")
            if status == 200:
                return time.monotonic() - started
            last = f"HTTP {status}"
        except OSError as exc:
            last = f"{exc.__class__.__name__}: {exc}"
        time.sleep(0.25)
    raise ProbeError(f"model {model} v{version} not ready after {timeout_s:g} s ({last})")


def pid_alive(pid: int) -> bool:
    """Is `pid` a live process (a zombie, our own child not reaped yet, is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _get(url: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(url, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def positive_probabilities(
    conn: http.client.HTTPConnection, model: str, version: str, request: dict[str, Any]
) -> list[float]:
    """Send one encoded request; the positive-class column of the `probabilities` output."""
    body = base64.b64decode(request["body"])
    conn.request(
        "POST",
        f"/v2/models/{model}/versions/{version}/infer",
        body=body,
        headers={
            "Content-Type": "application/octet-stream",
            HEADER_LENGTH: str(request["header_length"]),
        },
    )
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise ProbeError(f"infer answered HTTP {response.status}: {payload[:300]!r}")
    length = int(response.getheader(HEADER_LENGTH) or len(payload))
    header = json.loads(payload[:length])
    offset = length
    for output in header["outputs"]:
        size = int(output.get("parameters", {}).get("binary_data_size", 0))
        if output["name"] == request["output"]:
            if size:
                raw = payload[offset : offset + size]
                values = struct.unpack(f"<{size // 4}f", raw)
            else:
                values = tuple(float(v) for v in output["data"])
            return list(values[1::2])  # [n, 2] row-major: column 1 is the positive class
        offset += size
    raise ProbeError(f"the answer has no output {request['output']!r}")


def probe(
    url: str,
    case: dict[str, Any],
    ready_timeout_s: float = 120.0,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Parity of the batch and p99 of the single-row requests, as a JSON-ready report."""
    model, version = case["model"], str(case["version"])
    ready_seconds = wait_ready(url, model, version, ready_timeout_s, server_pid)
    conn = http.client.HTTPConnection(url, timeout=30)
    try:
        served = positive_probabilities(conn, model, version, case["batch"])
        timings = []
        for request in case["single_rows"]:
            begin = time.perf_counter()
            positive_probabilities(conn, model, version, request)
            timings.append((time.perf_counter() - begin) * 1000)
    finally:
        conn.close()
    expected = case["expected"]
    if len(served) != len(expected):
        raise ProbeError(f"{len(served)} probabilities served for {len(expected)} rows")
    diff = max((abs(s - e) for s, e in zip(served, expected, strict=True)), default=0.0)
    p50, p99 = _percentile(timings, 50), _percentile(timings, 99)
    reasons = []
    if not diff <= case["tolerance"]:  # NaN fails too
        reasons.append(
            f"served probabilities differ from in-process by {diff:.3g} > {case['tolerance']:g}"
        )
    if not p99 <= case["p99_budget_ms"]:
        reasons.append(f"single-row p99 latency {p99:.2f} ms > budget {case['p99_budget_ms']:g} ms")
    return {
        "passed": not reasons,
        "reasons": reasons or [f"parity {diff:.2e} and p99 {p99:.2f} ms within limits"],
        "rows": len(expected),
        "max_abs_diff": diff,
        "latency_requests": len(timings),
        "p50_ms": p50,
        "p99_ms": p99,
        "ready_seconds": round(ready_seconds, 3),
    }


def failed_report(reason: str) -> dict[str, Any]:
    """The report of a probe that could not measure (the candidate is refused)."""
    nan = float("nan")
    return {
        "passed": False,
        "reasons": [reason],
        "rows": 0,
        "max_abs_diff": nan,
        "latency_requests": 0,
        "p50_ms": nan,
        "p99_ms": nan,
        "ready_seconds": nan,
    }


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def main(argv: list[str] | None = None) -> int:
    """Probe and write the report; exit 0 when a report was written (passed or not)."""
    parser = argparse.ArgumentParser(
        prog="python3 triton_probe.py", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--case",
        type=Path,
        required=True,
        help="case JSON (serving.infra_validation.stage_candidate)",
    )
    parser.add_argument("--report", type=Path, required=True, help="where the report goes")
    parser.add_argument("--url", default="127.0.0.1:8010", help="Triton's HTTP host:port")
    parser.add_argument(
        "--ready-timeout-s", type=float, default=300.0, help="how long the model may take to load"
    )
    parser.add_argument("--server-pid", type=int, help="stop waiting when this process exits")
    args = parser.parse_args(argv)
    try:
        case = json.loads(args.case.read_text())
        report = probe(args.url, case, args.ready_timeout_s, args.server_pid)
    except (ProbeError, OSError, ValueError, KeyError) as exc:
        report = failed_report(f"probe failed: {exc.__class__.__name__}: {exc}")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2))
    print(report["reasons"][0], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
