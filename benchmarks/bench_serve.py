"""Benchmark: the public endpoint (gateway + Triton) vs raw Triton vs `mlflow models serve`.

    python -m benchmarks.bench_serve --project fraud [--duration 20] [--connections 8]

All three serve the same registered version (the project's `champion`), each on free loopback
ports with its own files in a temporary directory, so a `make serve` stack is left alone. The
endpoint is what applications call: the gateway (validation, decision, inference log,
metrics) in front of Triton; raw Triton is the same Triton without it, which shows what the
gateway costs. Single-row request bodies are built from real (drifted, contract-cleaned) rows,
checked for HTTP 200 and for agreement between the servers, then replayed by `wrk` with a Lua
script (`benchmarks/wrk/post_bodies.lua`), one server at a time. Also times one-row inference
in process: sklearn `predict_proba` vs onnxruntime. Writes `reports/bench_serve.md` and
`.json`; exits 1 when the bar (endpoint >= 20x mlflow throughput, p99 <= 1/10 of mlflow's,
zero errors) fails. The share of raw Triton's throughput the endpoint keeps is reported
against its goal (>= 75%), not part of the bar.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib.metadata import distributions
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests

from configs import ConfigError, ProjectConfig, load_config
from configs.cli import UserError, cli_parser, fail, highlight, setup_logging
from serving.background import BackgroundProcess
from serving.processes import free_ports

REPORT = Path("reports/bench_serve")
LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "post_bodies.lua"
WRK_THREADS = 2
MIN_THROUGHPUT_RATIO = 20.0  # endpoint req/s over mlflow req/s, at least
MAX_P99_RATIO = 0.1  # endpoint p99 over mlflow p99, at most
KEPT_GOAL = 0.75  # endpoint req/s over raw Triton req/s: the gateway's cost, goal
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


class BenchError(UserError, RuntimeError):
    """The benchmark cannot run or its inputs are wrong; the message says why."""


# --- rows and request bodies ---


def sample_rows(config: ProjectConfig, model: Any, n_rows: int, seed: int = 11) -> pd.DataFrame:
    """Real model-input rows with every numeric value present (JSON has no NaN).

    Fraud rows come from the drifted period of the generator (traffic the model has not
    seen); other projects use their configured data. Rows pass the data contract first.

    Args:
        config: The project.
        model: The champion; up to a tenth of the rows are ones it labels positive, so that
            comparing labels between the servers checks both classes. The rest are random.
        n_rows: How many rows.
        seed: Generator and sampling seed.

    Returns:
        `n_rows` rows in `model_inputs` form (missing categories NaN), shuffled.

    Raises:
        BenchError: Fewer complete rows than asked.
    """
    from features.contract import clean_rows
    from features.split import model_inputs

    if config.data.source == "generator":
        from features.fraud_data import generate_transactions

        raw = generate_transactions(max(20 * n_rows, 1000), seed=seed, drifted=True)
    else:
        from features.sources import load_raw

        raw = load_raw(config.data)
    pool = model_inputs(clean_rows(raw, config).clean, config)
    pool = pool.dropna(subset=list(config.numeric_features)).reset_index(drop=True)
    if len(pool) < n_rows:
        raise BenchError(f"only {len(pool)} complete rows, {n_rows} asked")
    positive = pool.index[model.predict_proba(pool)[:, 1] >= 0.5][: n_rows // 10]
    rest = pool.drop(index=positive).sample(n=n_rows - len(positive), random_state=seed)
    rows = pd.concat([pool.loc[positive], rest]).sample(frac=1.0, random_state=seed)
    return rows.reset_index(drop=True)


def _value(value: object) -> float | str | None:
    """A JSON-ready cell: floats for numbers, None for a missing category."""
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else float(value)
    return None if value is None else str(value)


def triton_body(row: pd.Series, datatypes: dict[str, str]) -> str:
    """KServe v2 JSON for one row: one [1, 1] input per column ("" = missing category)."""
    inputs = []
    for name, datatype in datatypes.items():
        value = _value(row[name])
        if datatype == "BYTES" and value is None:
            value = ""
        inputs.append({"name": name, "shape": [1, 1], "datatype": datatype, "data": [value]})
    return json.dumps({"inputs": inputs}, allow_nan=False, separators=(",", ":"))


def mlflow_body(row: pd.Series) -> str:
    """mlflow `/invocations` JSON for one row (`dataframe_split`, null = missing category)."""
    split = {"columns": list(row.index), "data": [[_value(v) for v in row]]}
    return json.dumps({"dataframe_split": split}, allow_nan=False, separators=(",", ":"))


# --- servers ---


@contextlib.contextmanager
def triton_server(model_name: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """Deploy the champion into a fresh repository and serve it; yields (base url, version)."""
    from serving.deploy import deploy_champion
    from serving.launcher import TritonServer

    repo = workdir / "triton_repository"
    repo.mkdir(parents=True)
    version, _ = deploy_champion(model_name, repo)
    server = TritonServer(run_dir=workdir / "triton_run")
    http_port, grpc_port, metrics_port = free_ports(3)
    try:
        server.start(
            repo,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            model_control="none",
            timeout_s=180,
        )
        state = server.state()
        if state is None:  # start() records it before it returns
            raise BenchError(f"Triton recorded no state in {server.run_dir}")
        url = state["http_url"]
        server.background.wait_ready(f"{url}/v2/models/{model_name}/ready", timeout_s=60)
        yield url, version
    finally:
        server.stop()


@contextlib.contextmanager
def gateway_server(triton_url: str, workdir: Path) -> Iterator[str]:
    """The gateway in front of `triton_url`, logging to `workdir`; yields its base url."""
    from serving.gateway import cli

    port, metrics_port = free_ports(2)
    run_dir = workdir / "gateway_run"
    argv = ["start", "--run-dir", str(run_dir), "--port", str(port), "--upstream", triton_url,
            "--metrics-port", str(metrics_port),
            "--log-root", str(workdir / "inference_log")]  # fmt: skip
    try:
        if cli.main(argv) != 0:
            raise BenchError(f"the gateway did not start; log {run_dir / 'gateway.log'}")
        yield f"http://127.0.0.1:{port}"
    finally:
        cli.main(["stop", "--run-dir", str(run_dir)])


@contextlib.contextmanager
def mlflow_server(model_name: str, version: str, workdir: Path) -> Iterator[str]:
    """`mlflow models serve` of one registered version on a free port; yields its base url.

    MLflow 3.17 refuses to deserialize any model file, skops included, unless
    MLFLOW_ALLOW_PICKLE_DESERIALIZATION is true; it is set for this server process only
    (the skops trusted types it then uses come from the MLmodel file).
    """
    (port,) = free_ports(1)
    cmd = [sys.executable, "-m", "mlflow", "models", "serve"]
    cmd += ["-m", f"models:/{model_name}/{version}", "--env-manager", "local"]
    cmd += ["--host", "127.0.0.1", "-p", str(port)]
    env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
    # mlflow runs `exec uvicorn ...` through bash: the venv's bin must be on PATH.
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")]))
    url = f"http://127.0.0.1:{port}"
    # SIGTERM the whole group: mlflow's CLI does not pass it on to the uvicorn workers.
    server = BackgroundProcess(
        "mlflow_serve", workdir, (Path(sys.executable).name,), error=BenchError, signal_group=True
    )
    try:
        server.start(cmd, env=env, cwd=Path.cwd(), ready_url=f"{url}/ping", timeout_s=180)
        yield url
    finally:
        server.stop(timeout_s=15)


# --- checks before load ---


def _post(url: str, body: str) -> dict:
    response = requests.post(
        url, data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    if response.status_code != 200:
        raise BenchError(f"{url} answered {response.status_code}: {response.text[:300]}")
    return response.json()


def check_agreement(
    triton_url: str,
    mlflow_url: str,
    triton_bodies: list[str],
    mlflow_bodies: list[str],
    expected: np.ndarray,
    tolerance: float,
) -> dict:
    """Send every body once; both servers must answer 200 and agree.

    Args:
        triton_url: Triton's `/v2/models/<name>/infer` URL.
        mlflow_url: mlflow's `/invocations` URL.
        triton_bodies: KServe v2 bodies, one per row.
        mlflow_bodies: `dataframe_split` bodies of the same rows.
        expected: In-process sklearn `predict_proba[:, 1]` of the rows; Triton's
            probabilities must match it within `tolerance`.
        tolerance: Largest probability difference allowed.

    mlflow's sklearn pyfunc returns what `predict()` returns; when those are 0/1 labels they
    are compared with Triton's `label` output (rows within `tolerance` of 0.5 excepted),
    otherwise with Triton's probabilities.

    Returns:
        What was checked and found (JSON-ready).

    Raises:
        BenchError: A body is refused or the answers disagree.
    """
    triton_probability, triton_label, mlflow_out = [], [], []
    for triton_body_, mlflow_body_ in zip(triton_bodies, mlflow_bodies, strict=True):
        outputs = {o["name"]: o["data"] for o in _post(triton_url, triton_body_)["outputs"]}
        triton_probability.append(outputs["probabilities"][1])
        triton_label.append(outputs["label"][0])
        mlflow_out.append(_post(mlflow_url, mlflow_body_)["predictions"][0])
    probability = np.array(triton_probability, dtype=float)
    mlflow_values = np.array(mlflow_out, dtype=float)
    mlflow_kind = "labels" if np.isin(mlflow_values, (0.0, 1.0)).all() else "probabilities"
    prob_diff = float(np.max(np.abs(probability - expected)))
    if mlflow_kind == "labels":
        borderline = np.abs(probability - 0.5) <= tolerance
        mismatched = int(((mlflow_values != np.array(triton_label)) & ~borderline).sum())
    else:
        mismatched = int((np.abs(mlflow_values - probability) > tolerance).sum())
    result = {
        "rows": len(triton_bodies),
        "http_200": True,
        "mlflow_returns": mlflow_kind,
        "triton_vs_sklearn_max_abs_diff": prob_diff,
        "mlflow_vs_triton_mismatches": mismatched,
        "positive_labels": int(np.array(triton_label).sum()),
        "tolerance": tolerance,
    }
    if prob_diff > tolerance or mismatched:
        raise BenchError(f"servers disagree: {result}")
    return result


# --- wrk ---


def find_wrk() -> str:
    """Path of the `wrk` binary, or BenchError saying how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise BenchError("wrk is not on PATH", hint="sudo apt-get install -y wrk")
    return path


def run_wrk(url: str, bodies: Path, connections: int, duration_s: int) -> dict:
    """Load `url` with wrk, POSTing the bodies in turn, and parse its report.

    Args:
        url: The endpoint to POST to.
        bodies: File with one JSON body per line.
        connections: Open connections (`-c`), shared by `WRK_THREADS` threads.
        duration_s: Seconds of load (`-d`).

    Returns:
        `parse_wrk`'s numbers.

    Raises:
        BenchError: wrk is missing, fails, or its output lacks a number.
    """
    cmd = [find_wrk(), "-t", str(WRK_THREADS), "-c", str(connections), "-d", f"{duration_s}s"]
    cmd += ["--latency", "-s", str(LUA_SCRIPT), url, "--", str(bodies)]
    done = subprocess.run(  # noqa: S603 - fixed binary, no shell
        cmd, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def parse_wrk(text: str) -> dict:
    """Numbers from a wrk report run with `--latency` and `post_bodies.lua`.

    Returns:
        req/s; p50 and p99 in ms (the 50% and 99% lines of the latency distribution);
        requests; non-200 answers (Lua hook), wrk's non-2xx/3xx count, socket errors, and
        `errors`, the larger of the first two plus the socket errors.

    Raises:
        BenchError: A required line is missing.
    """

    def number(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, text, re.MULTILINE)
        if match is None:
            if default is None:
                raise BenchError(f"no /{pattern}/ in wrk output:\n{text}")
            return default
        return match.group(1)

    def percentile_ms(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
        if match is None:
            raise BenchError(f"no {label}% line in wrk output (ran without --latency?)")
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    socket_total = sum(map(int, socket_errors.groups())) if socket_errors else 0
    non_2xx = int(number(r"Non-2xx or 3xx responses: (\d+)", "0"))
    non_200 = int(number(r"^bench_serve: non200=(\d+)"))
    return {
        "requests_per_s": float(number(r"^Requests/sec:\s+([\d.]+)")),
        "p50_ms": percentile_ms("50"),
        "p99_ms": percentile_ms("99"),
        "requests": int(number(r"^\s*(\d+) requests in ")),
        "non_200": non_200,
        "non_2xx_3xx": non_2xx,
        "socket_errors": socket_total,
        "errors": max(non_200, non_2xx) + socket_total,
    }


# --- in process ---


def in_process_latency(
    model: Any, onnx_bytes: bytes, rows: pd.DataFrame, config: ProjectConfig
) -> dict:
    """Median and p99 microseconds per single-row call: sklearn vs onnxruntime.

    onnxruntime runs one session created up front (as a server holds it; `predict_onnx`
    builds a session per call, so it is used for the all-rows parity check only). Inputs are
    built outside the timed call: one-row frames for sklearn, `to_onnx_inputs` feeds for
    onnxruntime.

    Returns:
        `paths` (median_us, p99_us, rows per path), `speedup` (sklearn median over
        onnxruntime's), the largest sklearn/onnxruntime probability difference, and
        `expected_probabilities` (sklearn's, for checking the servers).
    """
    import onnxruntime as ort

    from serving.onnx_export import (
        LABEL_OUTPUT,
        PROBABILITIES_OUTPUT,
        predict_onnx,
        to_onnx_inputs,
    )

    numeric, categorical = config.numeric_features, config.categorical_features
    expected = model.predict_proba(rows)[:, 1]
    onnx_all = predict_onnx(onnx_bytes, to_onnx_inputs(rows, numeric, categorical))[1][:, 1]
    frames = [rows.iloc[[i]] for i in range(len(rows))]
    feeds = [to_onnx_inputs(frame, numeric, categorical) for frame in frames]
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = [LABEL_OUTPUT, PROBABILITIES_OUTPUT]

    def timed(call, items) -> list[float]:
        for item in items[:20]:  # warm up
            call(item)
        seconds = []
        for item in items:
            began = time.perf_counter()
            call(item)
            seconds.append(time.perf_counter() - began)
        return seconds

    paths = {
        "sklearn predict_proba": timed(model.predict_proba, frames),
        "onnxruntime session.run": timed(lambda feed: session.run(outputs, feed), feeds),
    }
    table = {
        name: {
            "median_us": statistics.median(s) * 1e6,
            "p99_us": float(np.percentile(s, 99)) * 1e6,
            "rows": len(s),
        }
        for name, s in paths.items()
    }
    return {
        "paths": table,
        "speedup": table["sklearn predict_proba"]["median_us"]
        / table["onnxruntime session.run"]["median_us"],
        "onnx_vs_sklearn_max_abs_diff": float(np.max(np.abs(expected - onnx_all))),
        "expected_probabilities": expected,
    }


# --- report ---


def bar_checks(endpoint: dict, mlflow: dict, triton: dict) -> dict:
    """The bar (throughput and p99 ratios against mlflow, zero errors) and the gateway's cost
    against raw Triton (its goal), each with PASS/FAIL."""
    throughput = endpoint["requests_per_s"] / mlflow["requests_per_s"]
    p99 = endpoint["p99_ms"] / mlflow["p99_ms"]
    errors = endpoint["errors"] + mlflow["errors"] + triton["errors"]
    kept = endpoint["requests_per_s"] / triton["requests_per_s"]
    return {
        "throughput_ratio": {
            "value": throughput,
            "required": f">= {MIN_THROUGHPUT_RATIO:g}",
            "passed": throughput >= MIN_THROUGHPUT_RATIO,
        },
        "p99_ratio": {
            "value": p99,
            "required": f"<= {MAX_P99_RATIO:g}",
            "passed": p99 <= MAX_P99_RATIO,
        },
        "errors": {"value": errors, "required": "== 0", "passed": errors == 0},
        "kept_of_raw_triton": {
            "value": kept,
            "required": f">= {KEPT_GOAL:g} (goal)",
            "passed": kept >= KEPT_GOAL,
        },
    }


def check_endpoint(endpoint_url: str, triton_url: str, bodies: list[str], tolerance: float) -> dict:
    """The endpoint answers every body with the probability raw Triton gives, and a decision."""
    diffs, positives = [], 0
    for body in bodies:
        answer = {o["name"]: o["data"] for o in _post(endpoint_url, body)["outputs"]}
        raw = {o["name"]: o["data"] for o in _post(triton_url, body)["outputs"]}
        diffs.append(abs(answer["probability"][0] - raw["probabilities"][1]))
        positives += int(answer["decision"][0])
    result = {"rows": len(bodies), "endpoint_vs_triton_max_abs_diff": max(diffs),
              "decided_positive": positives}  # fmt: skip
    if result["endpoint_vs_triton_max_abs_diff"] > tolerance:
        raise BenchError(f"the endpoint and raw Triton disagree: {result}")
    return result


def versions(triton_url: str | None = None) -> dict[str, str]:
    """Versions of the pieces measured."""
    from serving.launcher import TritonEnv

    found = {"python": platform.python_version()}
    for package in ("mlflow", "scikit-learn", "skops", "onnxruntime", "uvicorn"):
        with contextlib.suppress(Exception):
            found[package] = package_version(package)
    with contextlib.suppress(Exception):
        site = str(TritonEnv.discover().wheel_libs.parent)
        for dist in distributions(path=[site]):
            if dist.metadata["Name"] in ("onnxruntime", "numpy", "nvidia-pytriton"):
                found[f"{dist.metadata['Name']} (.venv-triton)"] = dist.version
    with contextlib.suppress(Exception):
        cmd = [find_wrk(), "-v"]
        wrk = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 - wrk -v
        found["wrk"] = (wrk.stdout or wrk.stderr).split()[1]
    if triton_url:
        with contextlib.suppress(Exception):
            found["tritonserver"] = requests.get(f"{triton_url}/v2", timeout=5).json()["version"]
    return found


def write_report(result: dict) -> str:
    """Write `reports/bench_serve.md` and `.json`; return the markdown."""
    servers, bar, load = result["servers"], result["bar"], result["load"]
    check = result["agreement"]
    status = {True: "PASS", False: "FAIL"}
    mlflow = servers["mlflow"]
    labels = {
        "endpoint": "public endpoint: gateway + Triton (what applications call)",
        "triton": "raw Triton (python backend + onnxruntime, dynamic batching)",
        "mlflow": "mlflow models serve (sklearn pyfunc, 1 uvicorn worker)",
    }
    lines = [
        f"# Serving benchmark: `{result['model']}` version {result['version']} (champion)",
        "",
        f"Machine: {result['machine']['cpu_count']} CPUs ({result['machine']['platform']}), "
        "loopback only; wrk, the servers and this script share the CPUs "
        f"(load average before the run: {result['machine']['load_average_before']}).",
        f"Load: `wrk -t {load['threads']} -c {load['connections']} -d {load['duration_s']}s "
        f"--latency`, {load['bodies']} single-row JSON bodies of real drifted rows POSTed in "
        f"turn, after a {load['warmup_s']} s warm-up per server; one server loaded at a time.",
        "",
        "| server | req/s | p50 ms | p99 ms | errors | req/s vs mlflow | p99 vs mlflow |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in labels.items():
        row = servers[key]
        lines.append(
            f"| {label} | {row['requests_per_s']:,.0f} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.2f} | {row['errors']} "
            f"| {row['requests_per_s'] / mlflow['requests_per_s']:.1f}x "
            f"| {row['p99_ms'] / mlflow['p99_ms']:.4f} |"
        )
    lines += [
        "",
        "Errors = non-200 answers (counted by the wrk Lua `response` hook) + socket errors. "
        "The endpoint logs every answered row to the inference log during the load, as in "
        "production.",
        "",
        "## Bar",
        "",
        "| check | value | required | result |",
        "|---|---:|---|---|",
        f"| throughput endpoint / mlflow | {bar['throughput_ratio']['value']:.1f}x "
        f"| {bar['throughput_ratio']['required']} | {status[bar['throughput_ratio']['passed']]} |",
        f"| p99 endpoint / mlflow | {bar['p99_ratio']['value']:.4f} "
        f"| {bar['p99_ratio']['required']} | {status[bar['p99_ratio']['passed']]} |",
        f"| errors (all servers) | {bar['errors']['value']} | {bar['errors']['required']} "
        f"| {status[bar['errors']['passed']]} |",
        "",
        f"**{status[result['passed']]}**",
        "",
        f"The gateway keeps {bar['kept_of_raw_triton']['value']:.0%} of raw Triton's throughput "
        f"(goal {bar['kept_of_raw_triton']['required']}: "
        f"{status[bar['kept_of_raw_triton']['passed']]}).",
        "",
        "## In process, one row per call",
        "",
        "| path | median µs | p99 µs | rows |",
        "|---|---:|---:|---:|",
    ]
    for name, row in result["in_process"]["paths"].items():
        lines.append(f"| {name} | {row['median_us']:.1f} | {row['p99_us']:.1f} | {row['rows']} |")
    lines += [
        "",
        f"onnxruntime is {result['in_process']['speedup']:.0f}x faster per row; "
        f"max |sklearn - onnxruntime| probability "
        f"{result['in_process']['onnx_vs_sklearn_max_abs_diff']:.2g}.",
        "",
        "## Checks before load",
        "",
        f"Every body answered 200 on both servers ({check['rows']} rows, "
        f"{check['positive_labels']} predicted positive). Triton vs sklearn probability: max "
        f"abs diff {check['triton_vs_sklearn_max_abs_diff']:.2g} (tolerance "
        f"{check['tolerance']:g}). mlflow returns {check['mlflow_returns']} (`predict()`), "
        f"compared with Triton's: {check['mlflow_vs_triton_mismatches']} mismatches. The "
        f"endpoint's probability vs raw Triton's: max abs diff "
        f"{check['endpoint']['endpoint_vs_triton_max_abs_diff']:.2g}, every answer decided "
        f"({check['endpoint']['decided_positive']} positive).",
        "",
        "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true is set in the environment of the "
        "`mlflow models serve` process only: MLflow 3.17 will not load any model file, skops "
        "included, without it (its skops trusted types come from the MLmodel file). The "
        "platform's own loader (`models.registry.load_model`) never uses it.",
        "",
        *versions_section(result["versions"]),
    ]
    return save_report(REPORT, lines, result)


def versions_section(found: dict[str, str]) -> list[str]:
    """A report's closing "Versions" section: what was measured, name by name."""
    return ["## Versions", "", *[f"- {name}: {value}" for name, value in found.items()], ""]


def save_report(report: Path, lines: list[str], result: dict) -> str:
    """Write `report`.md (the lines) and `report`.json (the result); return the markdown."""
    markdown = "\n".join(lines)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.with_suffix(".md").write_text(markdown)
    report.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    return markdown


# --- main ---


def benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    """Resolve the champion, measure in process, start both servers, check and load them."""
    from models.registry import champion_version, configure_tracking, load_registered
    from serving.deploy import champion_onnx

    find_wrk()
    load_before = [round(x, 2) for x in os.getloadavg()]
    config = load_config(args.project)
    configure_tracking(Path.cwd())
    name = config.model_name
    version = champion_version(name)
    if version is None:
        raise BenchError(
            f"model '{name}' has no champion (no version passed the gate yet)",
            hint=f"make pipeline PROJECT={args.project}",
        )
    onnx_version, onnx_bytes, _ = champion_onnx(name)
    if onnx_version != version:
        raise BenchError(f"champion moved from {version} to {onnx_version} during setup")
    model = load_registered(f"models:/{name}/{version}")
    rows = sample_rows(config, model, args.rows)
    in_process = in_process_latency(model, onnx_bytes, rows, config)
    expected = in_process.pop("expected_probabilities")

    with contextlib.ExitStack() as servers:
        triton_url, triton_version = servers.enter_context(triton_server(name, workdir))
        if triton_version != version:
            raise BenchError(f"Triton serves version {triton_version}, champion is {version}")
        endpoint_url = servers.enter_context(gateway_server(triton_url, workdir))
        mlflow_url = servers.enter_context(mlflow_server(name, version, workdir))
        metadata = requests.get(f"{triton_url}/v2/models/{name}", timeout=10).json()
        datatypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        urls = {
            "endpoint": f"{endpoint_url}/v2/models/{name}/infer",
            "triton": f"{triton_url}/v2/models/{name}/infer",
            "mlflow": f"{mlflow_url}/invocations",
        }
        v2_bodies = [triton_body(row, datatypes) for _, row in rows.iterrows()]
        bodies = {
            "endpoint": v2_bodies,
            "triton": v2_bodies,
            "mlflow": [mlflow_body(row) for _, row in rows.iterrows()],
        }
        agreement = check_agreement(
            urls["triton"],
            urls["mlflow"],
            bodies["triton"],
            bodies["mlflow"],
            expected,
            config.serving.parity_tolerance,
        )
        agreement["endpoint"] = check_endpoint(
            urls["endpoint"], urls["triton"], v2_bodies, config.serving.parity_tolerance
        )
        measured = {}
        for server, url in urls.items():
            body_file = workdir / f"{server}_bodies.jsonl"
            body_file.write_text("\n".join(bodies[server]) + "\n")
            print(f"loading {server} for {args.duration} s ...", file=sys.stderr)
            if args.warmup:
                run_wrk(url, body_file, args.connections, args.warmup)
            measured[server] = run_wrk(url, body_file, args.connections, args.duration)
        found_versions = versions(triton_url)

    bar = bar_checks(measured["endpoint"], measured["mlflow"], measured["triton"])
    return {
        "project": config.name,
        "model": name,
        "version": version,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": load_before,
        },
        "load": {
            "tool": "wrk",
            "threads": WRK_THREADS,
            "connections": args.connections,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "bodies": len(rows),
        },
        "servers": measured,
        "bar": bar,
        "passed": all(c["passed"] for key, c in bar.items() if key != "kept_of_raw_triton"),
        "agreement": agreement,
        "in_process": in_process,
        "versions": found_versions,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 0 bar passed, 1 bar failed, 2 cannot run, 130 Ctrl-C."""
    parser = cli_parser(
        __doc__, prog="python -m benchmarks.bench_serve", make="make bench-serve [PROJECT=...]"
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per server")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (-c)")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of wrk warm-up per server")
    parser.add_argument("--rows", type=int, default=400, help="distinct rows (>= 300)")
    args = parser.parse_args(argv)
    if args.rows < 300 or args.duration < 1 or args.connections < WRK_THREADS:
        parser.error(f"needs --rows >= 300, --duration >= 1, --connections >= {WRK_THREADS}")
    return run_served_bench("bench_serve", benchmark, args, write_report)


def run_served_bench(
    name: str,
    bench: Callable[[argparse.Namespace, Path], dict],
    args: argparse.Namespace,
    report: Callable[[dict], str],
) -> int:
    """Run a benchmark that starts servers in a temporary folder, then print its report.

    Exit status 0 bar passed, 1 bar failed, 2 cannot run, 130 interrupted; SIGTERM unwinds like
    Ctrl-C, so the servers are stopped either way. The result gains `wall_s`.
    """
    setup_logging(args.log_level)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from models.registry import RegistryError
    from serving.deploy import DeployError
    from serving.launcher import TritonError

    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix=f"{name}-") as tmp:
            result = bench(args, Path(tmp))
    except (BenchError, ConfigError, RegistryError, DeployError, TritonError) as exc:
        return fail(exc)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    result["wall_s"] = round(time.monotonic() - began, 1)
    print(highlight(report(result), ("PASS", "FAIL")))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
