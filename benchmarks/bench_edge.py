"""Benchmark: the public endpoint (gateway + Triton) held at a fixed request rate.

    python -m benchmarks.bench_edge --project fraud [--rate 250] [--duration 60]

The champion is served as `make serve` serves it (Triton on loopback, the gateway in front,
logging every row), on free ports in a temporary directory. An open-loop generator sends
single-row requests of real rows at `--rate` per second for `--duration` seconds: request i
is due at start + i/rate whatever happened to earlier ones, and its latency counts from that
due time, so a stall shows up in the percentiles instead of slowing the load (no coordinated
omission). Writes `reports/bench_edge.md` and `.json`; exits 1 when any request failed or the
p99 exceeds the config's `serving.p99_budget_ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks.bench_serve import (
    BenchError,
    gateway_server,
    run_served_bench,
    sample_rows,
    save_report,
    triton_body,
    triton_server,
    versions,
    versions_section,
)
from configs import load_config
from configs.cli import cli_parser

REPORT = Path("reports/bench_edge")


async def hold_rate(
    host: str, port: int, path: str, bodies: list[bytes], rate: float, duration_s: float
) -> dict:
    """Send `rate` requests/s for `duration_s`; status counts and latencies from due times."""
    from serving.gateway.http1 import ConnectionPool, UpstreamError

    pool = ConnectionPool(host, port, size=256, timeout_s=10.0)
    headers = {"Content-Type": "application/json"}
    total = int(rate * duration_s)
    latencies = np.zeros(total)
    statuses: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1

    async def one(i: int) -> None:
        due = start + i / rate
        try:
            response = await pool.request("POST", path, bodies[i % len(bodies)], headers)
            key = str(response.status)
        except UpstreamError as exc:
            key = f"error: {exc}"[:80]
        latencies[i] = loop.time() - due
        statuses[key] = statuses.get(key, 0) + 1

    running: set[asyncio.Task] = set()  # only the requests in flight: no 30,000-task list
    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    elapsed = loop.time() - start
    pool.close()
    ms = latencies * 1000.0
    return {
        "target_rate": rate,
        "achieved_rate": total / elapsed,
        "requests": total,
        "statuses": statuses,
        "errors": total - statuses.get("200", 0),
        "latency_ms": {
            name: float(np.percentile(ms, q))
            for name, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9))
        }
        | {"max": float(ms.max())},
    }


def benchmark(args: argparse.Namespace, workdir: Path) -> dict:
    """Serve the champion behind the gateway and hold the rate."""
    from models.registry import champion_version, configure_tracking, load_registered

    config = load_config(args.project)
    configure_tracking(Path.cwd())
    name = config.model_name
    version = champion_version(name)
    if version is None:
        raise BenchError(
            f"model '{name}' has no champion (no version passed the gate yet)",
            hint=f"make pipeline PROJECT={args.project}",
        )
    rows = sample_rows(config, load_registered(f"models:/{name}/{version}"), args.rows)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with contextlib.ExitStack() as servers:
        triton_url, _ = servers.enter_context(triton_server(name, workdir))
        endpoint = servers.enter_context(gateway_server(triton_url, workdir))
        import requests

        metadata = requests.get(f"{endpoint}/v2/models/{name}", timeout=10).json()
        datatypes = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        bodies = [triton_body(row, datatypes).encode() for _, row in rows.iterrows()]
        port = int(endpoint.rsplit(":", 1)[1])
        path = f"/v2/models/{name}/infer"
        print(f"holding {args.rate:g} req/s for {args.duration} s ...", file=sys.stderr)
        asyncio.run(hold_rate("127.0.0.1", port, path, bodies, args.rate, 3.0))  # warm-up
        load = asyncio.run(hold_rate("127.0.0.1", port, path, bodies, args.rate, args.duration))
        found_versions = versions(triton_url)
    budget = config.serving.p99_budget_ms
    return {
        "project": config.name,
        "model": name,
        "version": version,
        "machine": {"cpu_count": os.cpu_count(), "load_average_before": load_before},
        "duration_s": args.duration,
        "bodies": len(bodies),
        "load": load,
        "p99_budget_ms": budget,
        "passed": load["errors"] == 0 and load["latency_ms"]["p99"] <= budget,
        "versions": found_versions,
    }


def write_report(result: dict) -> str:
    """Write `reports/bench_edge.md` and `.json`; return the markdown."""
    load, latency = result["load"], result["load"]["latency_ms"]
    status = "PASS" if result["passed"] else "FAIL"
    lines = [
        f"# Edge benchmark: `{result['model']}` version {result['version']} at a fixed rate",
        "",
        f"Machine: {result['machine']['cpu_count']} CPUs, loopback; the generator, the gateway "
        f"and Triton share them (load average before: {result['machine']['load_average_before']}).",
        f"Load: open loop, {load['target_rate']:g} single-row requests/s for "
        f"{result['duration_s']} s ({load['requests']:,} requests, {result['bodies']} distinct "
        "bodies of real rows), latency from each request's due time; the gateway logs every row.",
        "",
        "| achieved req/s | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {load['achieved_rate']:,.1f} | {load['errors']} | {latency['p50']:.2f} "
        f"| {latency['p90']:.2f} | {latency['p99']:.2f} | {latency['p99.9']:.2f} "
        f"| {latency['max']:.2f} |",
        "",
        f"Answers: {json.dumps(load['statuses'])}. Bar: 0 errors and p99 <= "
        f"{result['p99_budget_ms']:g} ms (`serving.p99_budget_ms`): **{status}**",
        "",
        *versions_section(result["versions"]),
    ]
    return save_report(REPORT, lines, result)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 0 passed, 1 failed, 2 cannot run, 130 Ctrl-C."""
    parser = cli_parser(
        __doc__, prog="python -m benchmarks.bench_edge", make="make bench-edge [PROJECT=...]"
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument("--rate", type=float, default=250.0, help="requests per second")
    parser.add_argument("--duration", type=int, default=60, help="seconds at that rate")
    parser.add_argument("--rows", type=int, default=400, help="distinct rows (>= 300)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration < 1 or args.rows < 300:
        parser.error("needs --rate > 0, --duration >= 1 and --rows >= 300")
    return run_served_bench("bench_edge", benchmark, args, write_report)


if __name__ == "__main__":
    sys.exit(main())
