"""Start and stop the local Triton Inference Server (the binary inside `.venv-triton`).

The real `tritonserver` ships in the `nvidia-pytriton` wheel and runs on CPU. It needs its own
environment (`serving/triton/setup_env.sh`): the Python backend breaks with numpy 2, which the
training venv needs. How the server is started, and why:

- `LD_LIBRARY_PATH` starts with the venv interpreter's own `LIBDIR`: the backend stub links
  `libpython3.X.so`, and an older system copy breaks models (`_thread.RLock ...
  _recursion_count`). Then the wheel's `nvidia_pytriton.libs`, which the stub and the backend
  (copied to `.venv-triton/triton-backends/`) no longer reach through their relative RPATH.
- `PATH` starts with `.venv-triton/bin`: the stub embeds Python without a program path, so
  Python looks `python3` up on `PATH`, finds the venv's `pyvenv.cfg` and uses the venv's
  site-packages, not the base interpreter's (which may hold numpy 2). Checked: in the stub,
  `sys.executable` is `.venv-triton/bin/python3` and `sys.prefix` the venv. The stub starts
  Python with an isolated config, so PYTHONPATH, PYTHONHOME and the other PYTHON* variables
  have no effect on it: PATH is what selects the environment.
- No `__pycache__` in the model repository: setup_env.sh installs a `.pth` that sets
  `sys.dont_write_bytecode` in `.venv-triton` (a cache written next to model.py changes the
  version directory, and a polling Triton then reloads the model once, resetting statistics).
- `--disable-auto-complete-config`: every model has a complete config.pbtxt; it saves a stub
  launch per load and makes Triton ignore a model directory until its config.pbtxt exists.
- The server runs in its own session (it survives the CLI that started it); stop sends
  SIGTERM, waits, then SIGKILLs the whole process group (the server and its stubs). The
  process handling is `serving.background.BackgroundProcess`, shared by every local server.

CLI (for `make serve` / `make stop`)::

    python -m serving.launcher start --repo DIR [--http-port 8000 --grpc-port 8001 ...]
    python -m serving.launcher status
    python -m serving.launcher stop
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from configs.cli import UserError, cli_parser, fail, setup_logging
from serving.background import BackgroundProcess
from serving.processes import client_host, http_ok, port_free

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VENV = REPO_ROOT / ".venv-triton"
SETUP_HINT = "make triton-env  (runs serving/triton/setup_env.sh)"
SERVER_NAME = "tritonserver"  # its pid, state and log files are RUN_DIR/tritonserver.*
MODEL_CONTROL_MODES = ("poll", "explicit", "none")


class TritonError(UserError, RuntimeError):
    """The Triton environment is missing, or the server did not start or stop."""


def default_run_dir(venv: Path = DEFAULT_VENV) -> Path:
    """Where the pid, state and log files live unless told otherwise (ignored by git)."""
    return Path(venv) / "run"


@dataclass(frozen=True)
class TritonEnv:
    """Paths of a prepared `.venv-triton` (see serving/triton/setup_env.sh)."""

    venv: Path
    server: Path
    backends: Path
    libpython_dir: Path
    wheel_libs: Path

    @classmethod
    def discover(cls, venv: Path = DEFAULT_VENV) -> TritonEnv:
        """Ask the venv's Python where things are; TritonError with a hint when not set up."""
        venv = Path(venv).resolve()
        python = venv / "bin" / "python"
        if not python.exists():
            raise TritonError(f"no Triton environment at {venv}", hint=SETUP_HINT)
        probe = (
            "import json, sysconfig; print(json.dumps({'site': sysconfig.get_paths()['purelib'],"
            " 'libdir': sysconfig.get_config_var('LIBDIR')}))"
        )
        try:
            out = subprocess.run(  # noqa: S603 - our own venv's interpreter
                [str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            message = f"the Python of {venv} does not run ({exc})"
            raise TritonError(message, hint=SETUP_HINT) from exc
        paths = json.loads(out)
        site = Path(paths["site"])
        env = cls(
            venv=venv,
            server=site / "pytriton" / "tritonserver" / "bin" / "tritonserver",
            backends=venv / "triton-backends",
            libpython_dir=Path(paths["libdir"]),
            wheel_libs=site / "nvidia_pytriton.libs",
        )
        required_paths = (
            env.server,
            env.backends / "python" / "triton_python_backend_stub",
            site / "triton_no_bytecode.pth",
        )
        for required in required_paths:
            if not required.exists():
                raise TritonError(f"{required} is missing", hint=SETUP_HINT)
        return env

    def process_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The environment the server (and the Python backend stubs it spawns) runs with."""
        env = dict(os.environ if base is None else base)
        library_path = [str(self.libpython_dir), str(self.wheel_libs)]
        if env.get("LD_LIBRARY_PATH"):
            library_path.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(library_path)
        env["PATH"] = os.pathsep.join(filter(None, [str(self.venv / "bin"), env.get("PATH")]))
        env["VIRTUAL_ENV"] = str(self.venv)
        return env


def log_tail(path: Path, lines: int = 30) -> str:
    """The log's error lines and its last `lines` lines, without Triton's ASCII tables."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip() and line[0] not in "+|"]
    tail = kept[-lines:]
    errors = [line for line in kept[: -lines or None] if line.startswith("E")][-10:]
    return "\n".join(errors + (["..."] if errors else []) + tail)


class TritonServer:
    """One local tritonserver process, with its pid, state and log files under `run_dir`."""

    def __init__(self, *, venv: Path = DEFAULT_VENV, run_dir: Path | None = None) -> None:
        self.venv = Path(venv)
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir(self.venv)
        self.background = BackgroundProcess(
            SERVER_NAME, self.run_dir, (SERVER_NAME,), error=TritonError, tail=log_tail
        )

    @property
    def process(self) -> subprocess.Popen | None:
        """The server this object started (None before `start` and after `stop`)."""
        return self.background.process

    @property
    def pid_file(self) -> Path:
        return self.background.pid_file

    @property
    def state_file(self) -> Path:
        return self.background.state_file

    @property
    def log_file(self) -> Path:
        return self.background.log_file

    def state(self) -> dict | None:
        """What the last `start` recorded (pid, ports, repository, urls), or None."""
        return self.background.state()

    def running_pid(self) -> int | None:
        """The pid of the server this run directory started, when it still runs."""
        return self.background.running_pid()

    def start(
        self,
        repo: Path,
        *,
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        model_control: str = "poll",
        poll_seconds: int = 1,
        host: str = "127.0.0.1",
        load_models: Sequence[str] = ("*",),
        timeout_s: float = 60.0,
        log_verbose: int = 0,
    ) -> subprocess.Popen:
        """Start tritonserver on `repo` and return once `/v2/health/ready` answers 200.

        Args:
            repo: the model repository.
            http_port, grpc_port, metrics_port: KServe v2 HTTP, gRPC and Prometheus ports.
            model_control: "poll" (reload on repository changes every `poll_seconds`),
                "explicit" (load/unload through the repository API) or "none".
            poll_seconds: repository poll interval in poll mode.
            host: address the three endpoints bind to ("0.0.0.0" to expose them).
            load_models: models loaded at start in explicit mode ("*": all).
            timeout_s: how long to wait for readiness.
            log_verbose: Triton's --log-verbose level.

        Returns:
            The server process (it runs in its own session and outlives this process).

        Raises:
            TritonError: no environment, a server already running from this run directory, or
                the server exited or did not become ready in time (the log tail is included).
        """
        if model_control not in MODEL_CONTROL_MODES:
            raise ValueError(f"model_control must be one of {MODEL_CONTROL_MODES}")
        repo = Path(repo).resolve()
        if not repo.is_dir():
            raise TritonError(
                f"model repository {repo} does not exist",
                hint="make serve  (writes the champion into the repository, then starts Triton)",
            )
        env = TritonEnv.discover(self.venv)
        pid = self.running_pid()
        if pid is not None:
            raise TritonError(
                f"a tritonserver started from {self.run_dir} runs (pid {pid})",
                hint="make serve-status to see it, make stop to stop it",
            )

        for port in (http_port, grpc_port, metrics_port):
            # Else readiness could be answered by another server already on the port.
            if not port_free(host, port):
                raise TritonError(
                    f"port {port} on {host} is already in use",
                    hint="make stop (if it is a Triton of ours), or other ports: make serve "
                    "HTTP_PORT=8100 GRPC_PORT=8101 METRICS_PORT=8102",
                )

        cmd = [
            str(env.server),
            f"--model-repository={repo}",
            f"--backend-directory={env.backends}",
            f"--http-address={host}",
            f"--http-port={http_port}",
            f"--grpc-address={host}",
            f"--grpc-port={grpc_port}",
            f"--metrics-address={host}",
            f"--metrics-port={metrics_port}",
            "--allow-gpu-metrics=false",
            "--metrics-config=summary_latencies=true",  # p50/p90/p99 summaries for alerts
            f"--model-control-mode={model_control}",
            "--disable-auto-complete-config",
            "--exit-timeout-secs=10",
            f"--log-verbose={log_verbose}",
        ]
        if model_control == "poll":
            cmd.append(f"--repository-poll-secs={poll_seconds}")
        elif model_control == "explicit":
            cmd += [f"--load-model={name}" for name in load_models]

        base = f"http://{client_host(host)}"
        state = {
            "repo": str(repo),
            "host": host,
            "http_port": http_port,
            "grpc_port": grpc_port,
            "metrics_port": metrics_port,
            "model_control": model_control,
            "http_url": f"{base}:{http_port}",
            "grpc_url": f"{client_host(host)}:{grpc_port}",
            "metrics_url": f"{base}:{metrics_port}/metrics",
        }
        return self.background.start(
            cmd,
            env=env.process_env(),
            ready_url=f"{base}:{http_port}/v2/health/ready",
            timeout_s=timeout_s,
            state=state,
        )

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the server, wait up to `timeout_s`, then SIGKILL its process group.

        Returns:
            True when a server was running and was stopped, False when none ran.
        """
        return self.background.stop(timeout_s)

    def is_ready(self) -> bool:
        """Whether the recorded server answers /v2/health/ready with 200."""
        state = self.state()
        if not state:
            return False
        return http_ok(f"{state['http_url']}/v2/health/ready")

    def served(self) -> dict[str, list[str]]:
        """{model: versions Triton serves (READY)}, from its repository index; {} unanswered."""
        import requests

        state = self.state() or {}
        try:
            response = requests.post(f"{state['http_url']}/v2/repository/index", timeout=5)
            index = response.json() if response.status_code == 200 else []
        except (KeyError, requests.RequestException, ValueError):
            return {}
        served: dict[str, list[str]] = {}
        for entry in index:  # Triton's version directories are integers
            if entry.get("state") == "READY" and str(entry.get("version", "")).isdigit():
                served.setdefault(entry["name"], []).append(str(entry["version"]))
        return {name: sorted(versions, key=int) for name, versions in served.items()}


def _parser() -> argparse.ArgumentParser:
    parser = cli_parser(
        __doc__,
        prog="python -m serving.launcher",
        make="make serve [PROJECT=...] / make serve-status / make stop",
        epilog="""
            python -m serving.launcher start --repo DIR [--http-port 8000 --grpc-port 8001 ...]
            python -m serving.launcher status   # exit 0 ready, 1 not ready, 3 not running
            python -m serving.launcher stop

            The server runs in the background (it outlives this command); its pid, state and
            log files are in --run-dir.
        """,
    )
    parser.add_argument(
        "command", choices=("start", "stop", "status"), help="start, stop or check the server"
    )
    parser.add_argument("--repo", type=Path, help="model repository to serve (start only)")
    parser.add_argument(
        "--venv", type=Path, default=DEFAULT_VENV, help="Triton environment (make triton-env)"
    )
    parser.add_argument("--run-dir", type=Path, help="pid/state/log files (default VENV/run)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=8000, help="KServe v2 HTTP port")
    parser.add_argument("--grpc-port", type=int, default=8001, help="KServe v2 gRPC port")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port")
    parser.add_argument(
        "--model-control",
        choices=MODEL_CONTROL_MODES,
        default="poll",
        help="poll: load new versions as they appear (default); explicit; none",
    )
    parser.add_argument(
        "--poll-seconds", type=int, default=1, help="repository poll interval (default 1)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (status: 0 ready, 1 not ready, 3 stopped)."""
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    server = TritonServer(venv=args.venv, run_dir=args.run_dir)
    if args.command == "start":
        if args.repo is None:
            return fail("start needs --repo DIR (the model repository)", "make serve")
        try:
            server.start(
                args.repo,
                http_port=args.http_port,
                grpc_port=args.grpc_port,
                metrics_port=args.metrics_port,
                model_control=args.model_control,
                poll_seconds=args.poll_seconds,
                host=args.host,
                timeout_s=args.timeout,
            )
        except TritonError as exc:
            return fail(exc, code=1)
        state = server.state() or {}
        print(json.dumps({key: state.get(key) for key in _SUMMARY_KEYS}, indent=2))
        return 0
    if args.command == "stop":
        stopped = server.stop(timeout_s=args.timeout)
        print("stopped tritonserver" if stopped else f"no tritonserver ran from {server.run_dir}")
        return 0
    pid = server.running_pid()
    state = server.state() or {}
    ready = pid is not None and server.is_ready()
    summary = {key: state.get(key) for key in _SUMMARY_KEYS}
    summary.update(running=pid is not None, ready=ready, pid=pid)
    summary["serving"] = server.served() if ready else {}  # {model: the versions it serves}
    print(json.dumps(summary, indent=2))
    if pid is None:
        return fail(f"no tritonserver runs from {server.run_dir}", "make serve", code=3)
    if not ready:
        return fail(
            f"tritonserver (pid {pid}) is not ready", f"read its log: {state.get('log')}", code=1
        )
    return 0


_SUMMARY_KEYS = ("pid", "repo", "http_url", "grpc_url", "metrics_url", "log", "ready_seconds")


if __name__ == "__main__":
    sys.exit(main())
