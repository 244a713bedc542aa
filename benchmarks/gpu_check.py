"""GPU check: the champion ONNX on the real Triton, on the GPU and on the CPU (`make gpu-check`).

    python -m benchmarks.gpu_check [--project fraud | --onnx FILE] [--seconds 10]
        [--warmup 2] [--concurrency 8 64] [--out reports] [--cpu-only]

Never in CI. CPU variant: the repository `make serve` writes. GPU variant: Triton's onnxruntime
backend (KIND_GPU) if `.venv-triton` has it, else the python-backend model on onnxruntime's CUDA
provider; it must show CUDA in the Triton log. Load: a closed loop of threads, one tritonclient
HTTP client each, single-row requests. Writes OUT/gpu_check.md, .json and the Triton logs.
Exit status: 0 OK; 1 failed requests or GPU variant; 2 cannot run; 3 no NVIDIA GPU (checked
before any heavy import); 4 no GPU serving path in `.venv-triton` (named); 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs.cli import UserError, cli_parser, fail, setup_logging

EXIT_OK, EXIT_FAILED, EXIT_CANNOT_RUN, EXIT_NO_GPU, EXIT_NO_GPU_PATH = 0, 1, 2, 3, 4
REPORT_NAME = "gpu_check"
CUDA = "CUDAExecutionProvider"
MARKER = "gpu_check: execution providers"
LABELS = {  # by GPU route; None is the CPU variant
    None: "CPU: python backend + onnxruntime CPU, KIND_CPU (as `make serve`)",
    "python": f"GPU: python backend + onnxruntime {CUDA}",
    "onnxruntime": "GPU: Triton onnxruntime backend, KIND_GPU",
}
_CPU_PROVIDERS = 'providers=["CPUExecutionProvider"]'  # as serving/triton/model.py has it


class CheckError(UserError, RuntimeError):
    """The check cannot go on; `code` is the exit status, `hint` what to do about it."""

    def __init__(
        self, message: str, code: int = EXIT_CANNOT_RUN, *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code


def find_gpus() -> tuple[list[str], str]:
    """GPU names from `nvidia-smi`, and what it said."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [], "nvidia-smi not found on PATH"
    cmd = [smi, "--query-gpu=name", "--format=csv,noheader"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)  # noqa: S603 - nvidia-smi, fixed args
    except (OSError, subprocess.SubprocessError) as exc:
        return [], f"nvidia-smi failed to run ({exc})"
    names = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not names:
        return [], f"nvidia-smi lists no GPU (exit {out.returncode}: {out.stderr.strip()[:200]})"
    return names, f"nvidia-smi lists {len(names)} GPU(s)"


def gpu_route(env: Any) -> tuple[str | None, list[str]]:
    """How `.venv-triton` runs ONNX on the GPU ("onnxruntime", "python"), else what is missing."""
    backend = env.backends / "onnxruntime" / "libtriton_onnxruntime.so"
    if backend.is_file():
        return "onnxruntime", []
    probe = "import json, onnxruntime; print(json.dumps(onnxruntime.get_available_providers()))"
    cmd = [str(env.venv / "bin" / "python"), "-c", probe]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # noqa: S603 - our venv's python
    providers = json.loads(out.stdout.splitlines()[-1]) if out.returncode == 0 else []
    if CUDA in providers:
        return "python", []
    return None, [
        f"Triton's onnxruntime backend ({backend}): the nvidia-pytriton wheel ships only the "
        "python backend",
        f"onnxruntime with {CUDA} in {env.venv}: it offers {providers or 'no onnxruntime'} "
        "(the CPU wheel), so the python-backend model cannot use the GPU either",
    ]


# Appended to the GPU variant's model.py: log the session's providers, insist on CUDA.
GPU_INITIALIZE = f'''

_cpu_initialize = TritonPythonModel.initialize


def _initialize_on_gpu(self, args: dict) -> None:  # added by benchmarks/gpu_check.py
    _cpu_initialize(self, args)
    providers = json.dumps(self.session.get_providers())
    pb_utils.Logger.log_info("{MARKER} " + providers)
    if "{CUDA}" not in providers:
        raise pb_utils.TritonModelException("onnxruntime did not enable {CUDA}: " + providers)


TritonPythonModel.initialize = _initialize_on_gpu
'''


def gpu_model_source() -> str:
    """serving/triton/model.py on CUDA: logs its providers, refuses to load without CUDA."""
    from serving.model_repository import python_model_source

    source = python_model_source().read_text()
    if source.count(_CPU_PROVIDERS) != 1:
        raise CheckError(f"{python_model_source()} lacks `{_CPU_PROVIDERS}`: update gpu_check")
    cuda_first = f'providers=[("{CUDA}", {{"device_id": 0}}), "CPUExecutionProvider"]'
    return source.replace(_CPU_PROVIDERS, cuda_first) + GPU_INITIALIZE


def gpu_proof(route: str, log_text: str) -> tuple[bool, str]:
    """Whether the Triton log shows the GPU variant on CUDA, and the evidence."""
    if route == "python":
        logged = [line.split(MARKER, 1)[1] for line in log_text.splitlines() if MARKER in line]
        providers = re.findall(r"\w+ExecutionProvider", logged[-1]) if logged else []
        return CUDA in providers, f"session providers logged by the model: {providers or 'none'}"
    placed = [line.strip() for line in log_text.splitlines() if "(GPU device" in line]
    return bool(placed), "; ".join(placed) or "no instance on a GPU device in the Triton log"


@dataclass(frozen=True)
class Model:
    name: str
    version: str
    onnx: bytes
    parameters: dict[str, str]
    source: str
    config: Any = None  # project config: requests are its traffic; None: random rows


def load_model(args: argparse.Namespace) -> Model:
    """`--onnx FILE`, or the project's champion with the parameters deploy_champion gives it."""
    if args.onnx is not None:
        if not args.onnx.is_file():
            raise CheckError(f"--onnx {args.onnx}: no such file")
        return Model("gpu-check-model", "1", args.onnx.read_bytes(), {}, f"file {args.onnx}")
    from configs import ConfigError, load_config
    from models.registry import RegistryError, configure_tracking
    from serving.deploy import DeployError, champion_onnx

    try:
        config = load_config(args.project)
        configure_tracking(Path.cwd())
        version, onnx, tags = champion_onnx(config.model_name)
    except (ConfigError, RegistryError, DeployError) as exc:
        hint = getattr(exc, "hint", None) or f"make pipeline PROJECT={args.project}"
        raise CheckError(f"no champion for {args.project} ({exc})", hint=hint) from exc
    parameters = {"threshold": tags["threshold"], "registry_version": version}
    source = f"models:/{config.model_name}@champion (version {version})"
    return Model(config.model_name, version, onnx, parameters, source, config)


def build_requests(model: Model, inputs: dict[str, str], n: int = 256, seed: int = 11) -> list:
    """Single-row requests (tritonclient inputs, shared by all threads): traffic, else random."""
    import numpy as np
    import pandas as pd
    import tritonclient.http as http

    from serving.client import ClientError, input_tensor

    if model.config is not None:  # the rows monitoring.simulate replays (fraud: drifted period)
        from monitoring.simulate import traffic

        frame = traffic(model.config, n, days=7)
    else:
        rng = np.random.default_rng(seed)
        words = np.array(["yes", "no", ""], dtype=object)
        frame = pd.DataFrame({k: rng.normal(size=n) for k, t in inputs.items() if t == "FP32"})
        frame = frame.assign(**{k: rng.choice(words, n) for k, t in inputs.items() if t != "FP32"})
    try:
        columns = {name: input_tensor(frame[name], dtype) for name, dtype in inputs.items()}
    except (ClientError, KeyError) as exc:
        raise CheckError(f"cannot build requests: {exc}") from exc
    return [
        [
            http.InferInput(k, [1, 1], inputs[k]).set_data_from_numpy(c[i : i + 1])
            for k, c in columns.items()
        ]
        for i in range(len(frame))
    ]


def write_repository(repo: Path, model: Model, route: str | None = None) -> Path:
    """The repository deploy_champion writes (route None), or the GPU variant for `route`."""
    from serving.model_repository import PYTHON_MODEL_FILENAME, triton_config, write_version

    backend = "onnxruntime" if route == "onnxruntime" else "python"
    kind = "KIND_GPU" if route == "onnxruntime" else "KIND_CPU"
    config = triton_config(
        model.name, model.onnx, parameters=model.parameters, backend=backend, kind=kind
    )
    version_dir = write_version(
        repo, model.name, int(model.version), model.onnx, config, backend=backend
    )
    if route == "python":
        (version_dir / PYTHON_MODEL_FILENAME).write_text(gpu_model_source())
    return repo


def summarize(latencies_s: Sequence[float], errors: list[str], duration_s: float) -> dict:
    """req/s (successes over the window), p50 and p99 in ms, errors and the first one."""
    import numpy as np

    ms, n = np.asarray(latencies_s, dtype=float) * 1e3, len(latencies_s)
    return {
        "requests": n,
        "errors": len(errors),
        "duration_s": float(duration_s),
        "requests_per_s": n / duration_s if duration_s > 0 else 0.0,
        "p50_ms": float(np.percentile(ms, 50)) if n else None,
        "p99_ms": float(np.percentile(ms, 99)) if n else None,
        "first_error": errors[0] if errors else None,
    }


def run_load(url: str, model: str, requests: list, threads: int, args: argparse.Namespace) -> dict:
    """Closed loop: `threads` threads, each with its own HTTP client, requests back to back."""
    import tritonclient.http as http

    gate = threading.Barrier(threads + 1)
    latencies: list[float] = []
    errors: list[str] = []  # before the start: why a client could not start

    def worker(i: int) -> None:
        try:
            client = http.InferenceServerClient(url, connection_timeout=30, network_timeout=30)
            warm_until = time.perf_counter() + args.warmup
            while True:  # at least one request: the connection is open before the start
                with contextlib.suppress(Exception):
                    client.infer(model, requests[i % len(requests)])
                i += 1
                if time.perf_counter() >= warm_until:
                    break
            gate.wait()
        except BaseException as exc:  # noqa: BLE001 - the main thread reports it
            errors.append(f"{type(exc).__name__}: {exc}")
            gate.abort()
            return
        deadline = time.perf_counter() + args.seconds
        while (t0 := time.perf_counter()) < deadline:
            try:
                client.infer(model, requests[i % len(requests)])
            except Exception as exc:  # noqa: BLE001 - every failure is a counted error
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
            else:
                latencies.append(time.perf_counter() - t0)
            i += 1
        client.close()

    pool = [threading.Thread(target=worker, args=(k * 7919,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    try:
        gate.wait(timeout=args.warmup + 120)
    except threading.BrokenBarrierError:
        raise CheckError(f"a load client failed: {(errors or ['warm-up timed out'])[0]}") from None
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    return summarize(latencies, errors, time.perf_counter() - began)


def measure(route: str | None, model: Model, args: argparse.Namespace, workdir: Path) -> dict:
    """Serve one variant (route None: CPU, as `make serve`), load it, stop it, copy its log."""
    import tritonclient.http as http

    from serving.launcher import TritonError, TritonServer
    from serving.processes import free_ports

    key = "gpu" if route else "cpu"
    repo = write_repository(workdir / key / "repository", model, route)
    server = TritonServer(run_dir=workdir / key / "run")
    http_port, grpc_port, metrics_port = free_ports(3)
    try:
        try:
            server.start(
                repo,
                http_port=http_port,
                grpc_port=grpc_port,
                metrics_port=metrics_port,
                model_control="none",
                timeout_s=180,
            )
        except TritonError as exc:
            raise CheckError(f"{LABELS[route]}: Triton did not serve the model: {exc}") from exc
        url = f"127.0.0.1:{http_port}"
        client = http.InferenceServerClient(url)
        version = client.get_server_metadata()["version"]
        inputs = client.get_model_metadata(model.name)["inputs"]
        client.close()
        requests = build_requests(model, {item["name"]: item["datatype"] for item in inputs})
        measured: dict[str, Any] = {"label": LABELS[route], "tritonserver": version, "cells": []}
        for concurrency in args.concurrency:
            print(f"gpu-check: {key} at concurrency {concurrency} ...", file=sys.stderr)
            cell = run_load(url, model.name, requests, concurrency, args)
            measured["cells"].append({"concurrency": concurrency, **cell})
        if route:
            log_text = server.log_file.read_text(errors="replace")
            measured["on_gpu"], measured["proof"] = gpu_proof(route, log_text)
        return measured
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(server.log_file, args.out / f"{REPORT_NAME}.{key}.tritonserver.log")


def verdict(result: dict[str, Any]) -> tuple[str, int]:
    """The report's status line and the exit status."""
    variants = result["variants"]
    errors = sum(cell["errors"] for v in variants.values() for cell in v["cells"])
    problems = [f"{errors} request(s) failed"] if errors else []
    if "gpu_failure" in result:
        problems.append("the GPU variant failed")
    elif "gpu" in variants and not variants["gpu"]["on_gpu"]:
        problems.append("the GPU variant did not run on the GPU")
    if problems:
        return "FAIL: " + "; ".join(problems), EXIT_FAILED
    gpu = "measured" if "gpu" in variants else result["gpu_not_run"]
    return f"OK: CPU measured; GPU {gpu}", EXIT_OK


def render_markdown(result: dict[str, Any]) -> str:
    variants = result["variants"]
    cpu = {c["concurrency"]: c["requests_per_s"] for c in variants.get("cpu", {}).get("cells", [])}
    lines = [
        f"# GPU check: `{result['model']}` version {result['version']} on Triton, GPU vs CPU",
        f"\n**{result['status']}**\n",
        f"- GPU: {', '.join(result['gpus']) or 'none'} ({result['gpu_status']})",
        f"- CPU: {result['cpu_count']} cores; Triton {result.get('tritonserver', '?')}",
        f"- Model: {result['source']}",
        "- Load: closed loop, one thread and tritonclient HTTP client per concurrent request, "
        f"single-row requests, {result['warmup_s']:g} s warm-up, {result['seconds']:g} s per cell",
        "\n| variant | concurrency | req/s | p50 ms | p99 ms | requests | errors | req/s vs CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in variants.values():
        for c in v["cells"]:
            ms = ["–" if c[k] is None else f"{c[k]:.2f}" for k in ("p50_ms", "p99_ms")]
            base = cpu.get(c["concurrency"])
            ratio = f"{c['requests_per_s'] / base:.2f}x" if base else "–"
            cells = [v["label"], c["concurrency"], f"{c['requests_per_s']:,.0f}", *ms]
            cells += [f"{c['requests']:,}", c["errors"], ratio]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    if "gpu" in variants:
        on_gpu, proof = variants["gpu"]["on_gpu"], variants["gpu"]["proof"]
        lines.append(f"\nGPU variant on CUDA: **{'yes' if on_gpu else 'NO'}** ({proof}).")
    elif "gpu_failure" in result:
        lines.append(f"\nThe GPU variant failed:\n\n```\n{result['gpu_failure']}\n```")
    else:
        lines.append(f"\nGPU: {result['gpu_not_run']}.")
    errors = [c["first_error"] for v in variants.values() for c in v["cells"] if c["first_error"]]
    return "\n".join(lines + [f"\nFirst error: `{e}`" for e in errors[:1]]) + "\n"


def run_check(args: argparse.Namespace, gpus: list[str], gpu_status: str) -> dict[str, Any]:
    """Everything after the GPU probe; the result to report."""
    from serving.launcher import TritonEnv, TritonError

    try:
        env = TritonEnv.discover()
    except TritonError as exc:
        raise CheckError(f"no usable Triton environment: {exc}", hint=exc.hint) from exc
    route, missing = (None, []) if args.cpu_only else gpu_route(env)
    if missing:
        raise CheckError(
            "an NVIDIA GPU is present, but .venv-triton cannot serve ONNX on it:\n"
            + "".join(f"  - missing: {item}\n" for item in missing)
            + "Install either into .venv-triton (or run with --cpu-only).",
            EXIT_NO_GPU_PATH,
        )
    model = load_model(args)
    result: dict[str, Any] = {"model": model.name, "version": model.version, "source": model.source}
    result |= {"gpus": gpus, "gpu_status": gpu_status, "gpu_route": route, "variants": {}}
    result |= {"cpu_count": os.cpu_count(), "seconds": args.seconds, "warmup_s": args.warmup}
    result["gpu_not_run"] = "not run (--cpu-only)" if gpus else "not run (no GPU)"
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        for variant in [None, route] if route else [None]:
            try:
                measured = measure(variant, model, args, Path(tmp))
            except CheckError as exc:
                if variant is None:
                    raise
                result["gpu_failure"] = str(exc)  # the CPU figures stay
                continue
            result["tritonserver"] = measured.pop("tritonserver")
            result["variants"]["gpu" if variant else "cpu"] = measured
    result["status"], result["exit"] = verdict(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check; see the module docstring for the exit status."""
    parser = cli_parser(
        __doc__, prog="python -m benchmarks.gpu_check", make="make gpu-check [PROJECT=...]"
    )
    parser.add_argument("--project", default="fraud", help="whose champion to serve")
    parser.add_argument("--onnx", type=Path, help="serve this ONNX file instead of the champion")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[8, 64],
        help="concurrent requests per cell (default 8 64)",
    )
    parser.add_argument("--out", type=Path, default=Path("reports"), help="report directory")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU half (no GPU needed)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or min(args.concurrency) < 1:
        parser.error("needs --seconds > 0, --warmup >= 0 and --concurrency >= 1")
    setup_logging(args.log_level)
    gpus, gpu_status = find_gpus()
    if not gpus and not args.cpu_only:
        return fail(
            f"no NVIDIA GPU found ({gpu_status}). This check needs an NVIDIA GPU and its driver; "
            "it is not part of CI. Nothing was started.",
            "run it on a machine with an NVIDIA GPU, or only the CPU half here: "
            "python -m benchmarks.gpu_check --cpu-only",
            code=EXIT_NO_GPU,
        )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds like Ctrl-C: stops servers
    try:
        result = run_check(args, gpus, gpu_status)
    except CheckError as exc:
        return fail(exc, code=exc.code)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{REPORT_NAME}.md").write_text(markdown := render_markdown(result))
    (args.out / f"{REPORT_NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown)
    print(f"gpu-check: wrote {args.out / REPORT_NAME}.md and .json", file=sys.stderr)
    return result["exit"]


if __name__ == "__main__":
    sys.exit(main())
