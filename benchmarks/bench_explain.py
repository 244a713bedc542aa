"""Benchmark: explanations at inference, per row, on CPU.

    python -m benchmarks.bench_explain --project fraud [--rows 200] [--batch 64]

The champion is served as `make serve` serves it (Triton on loopback, the gateway in front)
on free ports in a temporary directory. Measured per row, after a warm-up:

- `POST /explain` on the endpoint, one row per request, one request at a time (score,
  decision and attributions: validation, Triton, the explainer, the log);
- the same with `--batch` rows per request (time per request / rows);
- in process, the same explainer (`models.explain.RowExplainer`, built once): the floor a
  served explanation can reach, with no HTTP and no Triton;
- in process, a shap explainer built for every call, as a script calling shap per request
  would (`models.explain.build_row_explainer` each time).

Writes `reports/bench_explain.md` and `.json`; exits 1 when a request failed or the endpoint's
single-row p99 exceeds `--budget-ms` (default 50).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.bench_serve import (
    BenchError,
    gateway_server,
    run_served_bench,
    sample_rows,
    save_report,
    triton_server,
    versions,
    versions_section,
)
from configs import load_config
from configs.cli import cli_parser

REPORT = Path("reports/bench_explain")
BUDGET_MS = 50.0
WARMUP = 10


def request_body(rows: pd.DataFrame, datatypes: dict[str, str]) -> bytes:
    """KServe v2 JSON for `rows`: one [n, 1] input per column ("" = missing category)."""
    inputs = []
    for name, datatype in datatypes.items():
        column = rows[name]
        if datatype == "BYTES":
            data: list[Any] = ["" if pd.isna(v) else str(v) for v in column]
        else:
            data = [None if pd.isna(v) else float(v) for v in column]
        inputs.append({"name": name, "datatype": datatype, "shape": [len(rows), 1], "data": data})
    return json.dumps({"inputs": inputs}, allow_nan=False, separators=(",", ":")).encode()


def percentiles(per_row_s: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of per-row times, in milliseconds."""
    ms = np.asarray(per_row_s) * 1000.0
    return {
        "p50": float(np.percentile(ms, 50)),
        "p90": float(np.percentile(ms, 90)),
        "p99": float(np.percentile(ms, 99)),
        "max": float(ms.max()),
        "samples": len(ms),
    }


def timed(call: Callable[[Any], object], items: list[Any], rows_per_item: int = 1) -> list[float]:
    """Seconds per row of `call(item)` for each item, after `WARMUP` untimed calls."""
    for item in items[:WARMUP]:
        call(item)
    seconds = []
    for item in items:
        began = time.perf_counter()
        call(item)
        seconds.append((time.perf_counter() - began) / rows_per_item)
    return seconds


def endpoint_latency(url: str, bodies: list[bytes], rows_per_body: int) -> tuple[list[float], dict]:
    """Per-row seconds of `POST /explain` for each body, and the answers' status counts."""
    import requests

    statuses: dict[str, int] = {}
    session = requests.Session()

    def post(body: bytes) -> None:
        response = session.post(url, data=body, timeout=60,
                                headers={"Content-Type": "application/json"})  # fmt: skip
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        if response.status_code != 200:
            raise BenchError(f"/explain answered HTTP {response.status_code}: {response.text}",
                             hint="an explainer needs a version trained with this platform: "
                             "make pipeline")  # fmt: skip

    try:
        return timed(post, bodies, rows_per_body), statuses
    finally:
        session.close()


def benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    """Serve the champion, warm its explainer, time the endpoint and the in-process paths."""
    import mlflow
    import requests

    from models.explain import BACKGROUND_FILE, SETTINGS_FILE, build_row_explainer, read_rows
    from models.families import family_of
    from models.registry import configure_tracking, load_version
    from serving.deploy import champion_onnx
    from serving.gateway.explain import single_threaded

    config = load_config(args.project)
    configure_tracking(Path.cwd())
    name = config.model_name
    version, _, tags = champion_onnx(name)  # DeployError when there is none
    model = load_version(name, version, tags)  # the bytes the gateway would verify
    rows = sample_rows(config, model, args.rows)
    run_id = mlflow.MlflowClient().get_model_version(name, version).run_id
    shap_dir = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="reports/shap",
                                                        dst_path=str(workdir)))  # fmt: skip
    if not (shap_dir / BACKGROUND_FILE).is_file():
        raise BenchError(
            f"version {version} of '{name}' has no {BACKGROUND_FILE}: trained before /explain",
            hint=f"make pipeline PROJECT={args.project}",
        )
    background = read_rows(shap_dir / BACKGROUND_FILE)
    settings = json.loads((shap_dir / SETTINGS_FILE).read_text())
    family = family_of(model.named_steps["model"])
    if family is None:
        raise BenchError(f"version {version} of '{name}' is of no known model family")
    load_before = [round(x, 2) for x in os.getloadavg()]
    singles = [rows.iloc[[i]] for i in range(len(rows))]
    batches = [
        rows.iloc[i : i + args.batch] for i in range(0, len(rows) - args.batch + 1, args.batch)
    ]
    single_threaded()  # as the gateway explains
    explainer = build_row_explainer(model, family.name, background, settings["seed"])
    in_process = timed(explainer.explain, singles)
    per_call = timed(
        lambda row: build_row_explainer(model, family.name, background, settings["seed"]).explain(
            row
        ),
        singles[: args.rebuild_rows],
    )
    with contextlib.ExitStack() as servers:
        triton_url, _ = servers.enter_context(triton_server(name, workdir))
        endpoint = servers.enter_context(gateway_server(triton_url, workdir))
        metadata = requests.get(f"{endpoint}/v2/models/{name}", timeout=10).json()
        datatypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        url = f"{endpoint}/v2/models/{name}/explain"
        requests.post(url, data=request_body(rows.head(1), datatypes), timeout=300,
                      headers={"Content-Type": "application/json"})  # fmt: skip  # loads it
        single, statuses = endpoint_latency(url, [request_body(r, datatypes) for r in singles], 1)
        batched, batch_statuses = endpoint_latency(
            url, [request_body(b, datatypes) for b in batches], args.batch
        )
        found_versions = versions(triton_url)
    endpoint_p99 = percentiles(single)["p99"]
    return {
        "project": config.name,
        "model": name,
        "version": version,
        "explainer": explainer.kind,
        "space": explainer.space,
        "features": len(explainer.features),
        "background_rows": len(background),
        "machine": {"cpu_count": os.cpu_count(), "load_average_before": load_before},
        "rows": len(rows),
        "batch": args.batch,
        "latency_ms": {
            "endpoint, 1 row per request": percentiles(single),
            f"endpoint, {args.batch} rows per request (per row)": percentiles(batched),
            "in process, explainer built once": percentiles(in_process),
            "in process, explainer built per call": percentiles(per_call),
        },
        "statuses": {"single": statuses, "batched": batch_statuses},
        "budget_ms": args.budget_ms,
        "passed": endpoint_p99 <= args.budget_ms,
        "versions": found_versions,
    }


def write_report(result: dict) -> str:
    """Write `reports/bench_explain.md` and `.json`; return the markdown."""
    status = "PASS" if result["passed"] else "FAIL"
    lines = [
        f"# Explain benchmark: `{result['model']}` version {result['version']}, per row on CPU",
        "",
        f"Machine: {result['machine']['cpu_count']} CPUs, loopback; the client, the gateway and "
        f"Triton share them (load average before: {result['machine']['load_average_before']}).",
        f"Explainer: {result['explainer']} SHAP in {result['space']} space, "
        f"{result['features']} raw features, {result['background_rows']} background rows; "
        f"{result['rows']} real rows, one request at a time, after {WARMUP} warm-up calls.",
        "",
        "| path | p50 ms | p90 ms | p99 ms | max ms | samples |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {path} | {v['p50']:.2f} | {v['p90']:.2f} | {v['p99']:.2f} | {v['max']:.2f} "
            f"| {v['samples']} |"
            for path, v in result["latency_ms"].items()
        ],
        "",
        f"Answers: {json.dumps(result['statuses'])}. Bar: the endpoint's single-row p99 <= "
        f"{result['budget_ms']:g} ms: **{status}**",
        "",
        *versions_section(result["versions"]),
    ]
    return save_report(REPORT, lines, result)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 0 passed, 1 failed, 2 cannot run, 130 Ctrl-C."""
    parser = cli_parser(
        __doc__, prog="python -m benchmarks.bench_explain", make="make bench-explain [PROJECT=...]"
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument("--rows", type=int, default=200, help="distinct rows (>= 20)")
    parser.add_argument("--batch", type=int, default=64, help="rows per batched request")
    parser.add_argument("--rebuild-rows", type=int, default=30,
                        help="rows for the explainer-per-call path (slow)")  # fmt: skip
    parser.add_argument("--budget-ms", type=float, default=BUDGET_MS,
                        help="single-row p99 bar of the endpoint")  # fmt: skip
    args = parser.parse_args(argv)
    if args.rows < 20 or not 1 <= args.batch <= args.rows or args.rebuild_rows < 1:
        parser.error("needs --rows >= 20, 1 <= --batch <= --rows and --rebuild-rows >= 1")
    return run_served_bench("bench_explain", benchmark, args, write_report)


if __name__ == "__main__":
    sys.exit(main())
