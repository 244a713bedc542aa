"""One background server process: its own session, pid/state/log files, readiness, stop.

Every local server of the platform (Triton, Prometheus, the Pushgateway, the benchmark's
`mlflow models serve`) runs through `BackgroundProcess`:

- started in its own session (it outlives the command that started it, and its process group
  holds everything it spawns), stdout and stderr in `RUN_DIR/NAME.log`;
- `NAME.pid` and a JSON state file `NAME.json` (pid, command, log, start time and whatever the
  caller records: ports, urls) written atomically, so `status`/`stop` from another command
  find it;
- readiness: a URL polled until it answers 200 while checking the process has not exited; a
  failure names the log file and carries its tail;
- `running_pid()` guarded against a recycled pid (the pid must still run one of the expected
  binaries);
- stop: SIGTERM, wait, then SIGKILL of the whole process group (workers and stubs included).

Example::

    server = BackgroundProcess("gateway", run_dir, (Path(sys.executable).name,))
    server.start([sys.executable, "-m", "serving.gateway", ...],
                 ready_url="http://127.0.0.1:8000/v2/health/live", state={"port": 8000})
    server.running_pid(); server.state(); server.stop()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from configs.cli import UserError
from serving.processes import http_ok, pid_alive, runs_binary, write_atomic

log = logging.getLogger(__name__)


class BackgroundError(UserError, RuntimeError):
    """A background server is already running, could not start, or was not ready in time."""


def last_lines(path: Path, lines: int = 30) -> str:
    """The last `lines` non-blank lines of a log ("" when it cannot be read)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


class BackgroundProcess:
    """One server process with `NAME.pid`, `NAME.json` and `NAME.log` under `run_dir`.

    Args:
        name: the server's name, used for its files and in messages ("tritonserver").
        run_dir: where the pid, state and log files live (created on start).
        binary_names: executable names the pid must run (`runs_binary`), so that a pid file
            left behind never makes a recycled pid look like our server.
        error: the exception type raised on failures (a `UserError`; callers pass their own).
        tail: what of the log a failure message carries (default: the last 30 lines).
        signal_group: SIGTERM the whole process group on stop, not only the leader (for
            servers that do not pass the signal on to their workers).
    """

    def __init__(
        self,
        name: str,
        run_dir: Path,
        binary_names: Collection[str],
        *,
        error: type[UserError] = BackgroundError,
        tail: Callable[[Path], str] = last_lines,
        signal_group: bool = False,
    ) -> None:
        self.name = name
        self.run_dir = Path(run_dir)
        self.binary_names = tuple(binary_names)
        self.error = error
        self.tail = tail
        self.signal_group = signal_group
        self.process: subprocess.Popen | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def state_file(self) -> Path:
        return self.run_dir / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def state(self) -> dict | None:
        """What the last `start` recorded (pid, cmd, log, the caller's fields), or None."""
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def running_pid(self) -> int | None:
        """The pid of the server this run directory started, when it still runs."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and runs_binary(pid, self.binary_names) else None

    def start(
        self,
        cmd: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        ready_url: str | None = None,
        timeout_s: float = 60.0,
        state: Mapping | None = None,
    ) -> subprocess.Popen:
        """Start `cmd` in its own session; with `ready_url`, return once it answers 200.

        Args:
            cmd: the command line (no shell).
            env: the process environment (default: this process's).
            cwd: its working directory (default: the run directory).
            ready_url: polled until it answers 200; None returns at once (call `wait_ready`).
            timeout_s: how long to wait for `ready_url`.
            state: fields recorded in the state file beside pid, cmd, log and started_at
                (`ready_seconds` is added once ready).

        Returns:
            The process; it runs in its own session and outlives this one.

        Raises:
            error: a server from this run directory already runs, the command cannot be
                executed, or it exited or was not ready in time (then it is stopped, and the
                message names the log and carries its tail).
        """
        pid = self.running_pid()
        if pid is not None:
            raise self.error(
                f"{self.name} started from {self.run_dir} already runs (pid {pid})",
                hint=f"stop it first (pid file {self.pid_file})",
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        try:
            with open(self.log_file, "wb") as log_handle:
                self.process = subprocess.Popen(  # noqa: S603 - callers pass fixed argv, no shell
                    list(cmd),
                    stdin=subprocess.DEVNULL,
                    stdout=log_handle,
                    stderr=subprocess.STDOUT,
                    env=None if env is None else dict(env),
                    cwd=self.run_dir if cwd is None else cwd,
                    start_new_session=True,
                )
        except OSError as exc:
            raise self.error(f"cannot start {self.name} ({cmd[0]}): {exc}") from exc
        write_atomic(self.pid_file, f"{self.process.pid}\n")
        recorded = {
            **(state or {}),
            "pid": self.process.pid,
            "cmd": list(cmd),
            "log": str(self.log_file),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._write_state(recorded)
        if ready_url is not None:
            self.wait_ready(ready_url, timeout_s=timeout_s - (time.monotonic() - began))
            recorded["ready_seconds"] = round(time.monotonic() - began, 3)
            self._write_state(recorded)
            log.info(
                "%s ready in %.1f s (pid %d)",
                self.name,
                recorded["ready_seconds"],
                self.process.pid,
            )
        return self.process

    def wait_ready(self, url: str, *, timeout_s: float) -> None:
        """Poll `url` until it answers 200, checking that the started process still runs.

        Raises:
            error: the process exited (its group is killed, the pid file removed) or `url`
                did not answer 200 within `timeout_s` (the server is stopped); the message
                names the log file and carries its tail.
        """
        if self.process is None:
            raise RuntimeError(f"wait_ready needs a {self.name} started by this object")
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                # Whatever it spawned (stubs, workers) goes with it.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self._forget()
                raise self.error(
                    f"{self.name} exited with code {code} during start; log {self.log_file}:\n"
                    + self.tail(self.log_file)
                )
            if http_ok(url, timeout=0.5):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise self.error(
                    f"{self.name} not ready at {url} after {timeout_s:.0f} s; "
                    f"log {self.log_file}:\n" + self.tail(self.log_file)
                )
            time.sleep(0.1)

    def stop(self, timeout_s: float = 20.0) -> bool:
        """SIGTERM the server, wait up to `timeout_s`, then SIGKILL its process group.

        Works from another command too (through the pid file). The state file is kept.

        Returns:
            True when a server was running and was stopped, False when none ran.
        """
        process = self.process
        pid = process.pid if process is not None else self.running_pid()
        # poll() reaps our own child when it has exited already
        running = process.poll() is None if process is not None else pid is not None
        if pid is None or not running or not pid_alive(pid):
            self._forget()
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.signal_group:
                os.killpg(pid, signal.SIGTERM)
            else:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            exited = process.poll() is not None if process is not None else not pid_alive(pid)
            if exited:
                break
            time.sleep(0.1)
        else:
            log.warning("%s %d ignored SIGTERM for %.0f s: SIGKILL", self.name, pid, timeout_s)
        # The server leads its session's group: this also ends what it left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        self._forget()
        return True

    def _write_state(self, state: Mapping) -> None:
        write_atomic(self.state_file, json.dumps(state, indent=2) + "\n")

    def _forget(self) -> None:
        self.pid_file.unlink(missing_ok=True)
        self.process = None
