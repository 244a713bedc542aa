"""Warm start for `kfp.local`: import the ML stack once, fork one fresh process per component.

`kfp.local.SubprocessRunner` starts every component as a new interpreter
(`python -m kfp.dsl.executor_main ...`). Each one imports kfp, pandas, scikit-learn and MLflow
(whose `import mlflow` alone pulls FastAPI, SQLAlchemy and alembic) before the step's first
line runs; on a small table that is most of the pipeline's wall time. A pod per step on a
cluster pays the same, and there nothing changes: the compiled YAML, the component command and
the step code are the same.

Locally, `pipelines.run_local` starts this module as a *zygote*: one process that imports the
modules every component imports and opens nothing (no store, no file, no thread). For each
component kfp.local would start, the zygote forks a child that runs exactly the command kfp
built (`kfp.dsl.executor_main` with kfp's arguments, in kfp's environment and working
directory, its stdout and stderr on kfp's pipe); the exit status goes back to kfp.local. A
child is a new process with its own PID, its own MLflow store connection and fresh random
seeds, as a new interpreter would have; what it shares with its siblings is only what the
imports built, copy-on-write. Anything the zygote cannot run (another command shape, the
zygote gone) runs the cold way, as kfp.local does.

The imports are staged: the zygote imports what the first components need (`PRELOAD`, about
5 s here), says it is ready and serves; the rest (`LATE_PRELOAD`, about 8 s) it imports after
a fork, one module at a time while that child runs, and answers the child as soon as it ends
(the next module waits for the next fork). So the first steps start early and run beside the
heavy imports, and a table that fails to load fails in seconds. A child forked before a module
is in imports it itself, as every child does a module outside the preload.

    python -m pipelines.warm_start SOCKET [MODULE ...] [--late MODULE ...]

started and stopped by pipelines.run_local. MODULEs (default: `PRELOAD`, then `--late`
`LATE_PRELOAD`) are imported before the zygote is ready; those after `--late`, beside the
children. An explicit list without `--late` is imported whole before it is ready.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EXECUTOR_MODULE = "kfp.dsl.executor_main"
# Imported before the zygote is ready: what every component imports before its step, and all
# the first steps (load-data, validate-data, split-data) need of the ML stack: kfp, pandas,
# pyarrow, the step modules, MLflow and its SQL store. About 5 s.
PRELOAD = (
    "kfp.dsl.executor_main",
    "pandas",
    "pyarrow.parquet",
    "yaml",
    "configs",
    "configs.cli",
    "pipelines.steps.edge",
    "pipelines.steps.data",
    "pipelines.steps.tune",
    "pipelines.steps.train",
    "pipelines.steps.explain",
    "pipelines.steps.export",
    "pipelines.steps.register",
    "pipelines.steps.gate",
    "pipelines.steps.deploy",
    "features.split",
    "models.registry",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)
# Imported beside the first children, in this order (no data step needs them): scikit-learn
# (about 2 s) and skops.io (every step that saves or loads a model), which imports torch and
# every scikit-learn estimator (about 6 s; torch, half of it, first, so that a child's answer
# waits for a shorter import). Not optuna, shap, great_expectations or tritonclient: one step
# each, imported by that step's child.
LATE_PRELOAD = (
    "sklearn.pipeline",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.preprocessing",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.metrics",
    "torch",
    "skops.io",
)
LATE = "--late"  # on the command line, before the modules imported beside the children
READY = "warm-start ready"
_HEADER = 8  # bytes: the length of the JSON request that follows


# --- the zygote ------------------------------------------------------------------------------


def preload(modules: tuple[str, ...] | list[str] = PRELOAD) -> None:
    import importlib

    for name in modules:
        importlib.import_module(name)


def serve(path: str, late: tuple[str, ...] | list[str] = ()) -> dict[str, Any] | None:
    """Answer requests until the runner closes our stdin (when it stops us, or ends however it
    ends); returns a request only in a forked child. Imports `late` beside the children."""
    import select

    pending = list(late)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    print(READY, flush=True)
    while True:
        readable, _, _ = select.select([listener, sys.stdin], [], [])
        if sys.stdin in readable:  # EOF: nothing more will come
            listener.close()
            return None
        try:
            conn, _ = listener.accept()
        except OSError:
            return None
        with conn:
            request = _receive(conn)
            if request is None:  # not a request
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                return request
            os.close(request["fd"])
            status = _import_beside(pid, pending)
            conn.sendall(str(os.waitstatus_to_exitcode(status)).encode())


def _import_beside(pid: int, pending: list[str]) -> int:
    """Wait for child `pid`, importing the next `pending` modules (taken off the list) while it
    runs: at least one, then more until it ends. Returns its wait status.

    Here, not in a thread: a fork taken while another thread holds the import lock deadlocks.
    A module that fails to import is left to the child that needs it, as a cold start would.
    """
    import importlib

    while pending:
        with contextlib.suppress(Exception):
            importlib.import_module(pending.pop(0))
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
    return os.waitpid(pid, 0)[1]


def _receive(conn: socket.socket) -> dict[str, Any] | None:
    header, fds, _, _ = socket.recv_fds(conn, _HEADER, 1)
    if len(header) < _HEADER or not fds:
        for fd in fds:
            os.close(fd)
        return None
    size, chunks = int.from_bytes(header, "big"), []
    while size > 0:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    request = json.loads(b"".join(chunks))
    request["fd"] = fds[0]
    return request


def run_component(request: dict[str, Any]) -> int:
    """In the child: what `python -m kfp.dsl.executor_main ARGS` does in a new interpreter."""
    import random
    import traceback

    import numpy as np

    fd = request["fd"]
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    random.seed()  # a new interpreter seeds from the OS; a fork would repeat its siblings'
    np.random.seed()
    from kfp.dsl import executor_main as module
    from kfp.dsl.executor_main import executor_main

    sys.argv = [str(module.__file__), *request["args"]]  # as `python -m` sets it

    try:
        executor_main()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:  # noqa: BLE001 - printed and failed, as the interpreter would
        traceback.print_exc()
        return 1
    return 0


def zygote_main(argv: list[str] | None = None) -> int:
    """`SOCKET [MODULE ...] [--late MODULE ...]`: see the module's docstring."""
    args = sys.argv[1:] if argv is None else argv
    path, modules = args[0], args[1:] or [*PRELOAD, LATE, *LATE_PRELOAD]
    late: list[str] = []
    if LATE in modules:
        modules, late = modules[: modules.index(LATE)], modules[modules.index(LATE) + 1 :]
    preload(modules)
    request = serve(path, late)
    if request is None:
        return 0
    code = run_component(request)
    _exit(code)
    return code  # not reached


def _exit(code: int) -> None:
    """End the child as an interpreter ends, less the teardown of every imported module.

    A normal exit joins non-daemon threads (and stops `concurrent.futures` workers), runs the
    atexit hooks (MLflow ends its runs and flushes async logging; logging flushes handlers) and
    flushes stdio, then tears down each module: seconds with the ML stack loaded, for nothing
    a process about to end needs.
    """
    import atexit
    import threading

    shutdown = getattr(threading, "_shutdown", None)  # CPython's own exit path
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


# --- the runner's side -----------------------------------------------------------------------


def component_args(full_command: list[str]) -> tuple[str, list[str]] | None:
    """(component source, executor arguments) of a lightweight component's command, else None.

    kfp builds `sh -c PIP_SCRIPT sh -ec SCRIPT SOURCE ARGS...`: PIP_SCRIPT installs
    `kfp==VERSION --no-deps` (the component's `install_kfp_package`) and then runs the rest;
    SCRIPT writes SOURCE to `$program_path/ephemeral_component.py` and runs
    `python3 -m kfp.dsl.executor_main --component_module_path THAT_FILE ARGS...` with
    `_KFP_RUNTIME=true`. Under kfp.local (`use_venv=False`) that pip install targets this
    interpreter, which already has that kfp: a no-op the warm path skips. Any other package to
    install, or another command shape, is None (the command runs cold).
    """
    command = list(full_command)
    if command[:2] == ["sh", "-c"] and len(command) > 3 and command[3] == "sh":
        if not _installs_only_this_kfp(command[2]):
            return None
        command = command[3:]
    if len(command) < 4 or command[:2] != ["sh", "-ec"]:
        return None
    script = command[2]
    expected = ("ephemeral_component.py", f"-m {EXECUTOR_MODULE}", "_KFP_RUNTIME=true", '"$@"')
    if not all(part in script for part in expected) or "pip install" in script:
        return None
    return command[3], command[4:]


def _installs_only_this_kfp(script: str) -> bool:
    import re
    from importlib.metadata import version

    lines = [line for line in script.splitlines() if "pip install" in line]
    if len(lines) != 1 or not lines[0].rstrip().endswith('&& "$0" "$@"'):
        return False
    wanted = {f"kfp=={version('kfp')}", "--no-deps"}
    for requirement in re.findall(r"'([^']*)'", lines[0]):
        # kfp's typing-extensions line only applies to Python < 3.9
        if requirement not in wanted and 'python_version<"3.9"' not in requirement:
            return False
    return True


class Zygote:
    """The warm process and the client half of its protocol."""

    def __init__(self, process: subprocess.Popen[str], path: str, folder: str) -> None:
        self.process, self.path, self.folder = process, path, folder
        self._ready: bool | None = None  # unknown until the first component asks

    @classmethod
    def start(cls, modules: tuple[str, ...] = (), late: tuple[str, ...] = ()) -> Zygote:
        """Start the warm process; does not wait. It imports `modules` before it is ready and
        `late` beside the first children (both empty: `PRELOAD`, then `LATE_PRELOAD`).

        Started early, it imports while the runner reads the config and opens the MLflow run.
        """
        folder = tempfile.mkdtemp(prefix="kfp-warm-")
        path = os.path.join(folder, "zygote.sock")
        env = {**os.environ, "_KFP_RUNTIME": "true"}
        argv = [*modules, *([LATE, *late] if late else [])]
        process = subprocess.Popen(  # noqa: S603 - this interpreter, this module, no shell
            [sys.executable, "-m", "pipelines.warm_start", path, *argv],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,  # never written; its end (EOF) stops the zygote
            text=True,
            env=env,
        )
        return cls(process, path, folder)

    def ready(self) -> bool:
        """Wait until it has imported; False if it failed (then everything runs cold)."""
        if self._ready is None:
            line = self.process.stdout.readline() if self.process.stdout is not None else ""
            self._ready = line.strip() == READY
            if not self._ready:
                self.stop()
        return self._ready and self.process.poll() is None

    def run(self, full_command: list[str], env_vars: dict[str, str] | None) -> int | None:
        """Run one component in a fork; None when this command or the zygote cannot."""
        parsed = component_args(full_command)
        if parsed is None or not self.ready():
            return None
        source, args = parsed
        program = tempfile.mkdtemp()
        module = Path(program) / "ephemeral_component.py"
        module.write_text(source)
        env = {**os.environ, **(env_vars or {}), "_KFP_RUNTIME": "true"}
        argv = ["--component_module_path", str(module), *args]
        request = json.dumps({"args": argv, "env": env, "cwd": os.getcwd()}).encode()
        read_fd, write_fd = os.pipe()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                try:
                    conn.connect(self.path)
                    socket.send_fds(conn, [len(request).to_bytes(_HEADER, "big")], [write_fd])
                    conn.sendall(request)
                except OSError:
                    return None
                finally:
                    os.close(write_fd)
                with open(read_fd, encoding="utf-8", errors="replace") as output:
                    read_fd = -1
                    for line in output:  # as kfp.local prints its subprocess' lines
                        print(line, end="")
                print("\n")
                answer = conn.recv(64)
        finally:
            if read_fd >= 0:
                os.close(read_fd)
        return int(answer) if answer else 1

    def stop(self) -> None:
        if self.process.poll() is None and not self._ready:
            self.process.terminate()  # still importing (or failed): nothing of it to finish
            self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()  # EOF: the zygote leaves its loop and exits
        if self.process.poll() is None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        with contextlib.suppress(OSError):
            os.rmdir(self.folder)


@contextlib.contextmanager
def warm_components(
    modules: tuple[str, ...] = (), zygote: Zygote | None = None
) -> Iterator[Zygote | None]:
    """Inside: kfp.local's SubprocessRunner runs lightweight components in the zygote's forks.

    Uses `zygote` if given (started earlier), else starts one; stops it on the way out. Yields
    it, or None when kfp.local has no `run_local_subprocess` to route (then all runs cold).
    """
    from kfp.local import subprocess_task_handler as handler

    cold: Callable[..., int] | None = getattr(handler, "run_local_subprocess", None)
    if cold is None:
        if zygote is not None:
            zygote.stop()
        yield None
        return
    warm = zygote if zygote is not None else Zygote.start(modules)

    def run_local_subprocess(
        full_command: list[str], env_vars: dict[str, str] | None = None
    ) -> int:
        code = warm.run(full_command, env_vars)
        return cold(full_command=full_command, env_vars=env_vars) if code is None else code

    handler.run_local_subprocess = run_local_subprocess
    try:
        yield warm
    finally:
        handler.run_local_subprocess = cold
        warm.stop()


if __name__ == "__main__":
    sys.exit(zygote_main())
