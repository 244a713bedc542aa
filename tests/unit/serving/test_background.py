"""BackgroundProcess against real child processes (`python -m http.server`, short scripts)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from configs.cli import UserError
from serving.background import BackgroundError, BackgroundProcess
from serving.processes import free_ports, pid_alive, port_free, write_atomic

PYTHON = (Path(sys.executable).name,)


class CustomError(UserError, RuntimeError):
    pass


def http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def script(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def eventually(predicate, timeout_s: float = 5.0) -> bool:
    """Poll `predicate` (orphans are reaped by init, a moment after they die)."""
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def served(tmp_path):
    """A running http.server started through BackgroundProcess; stopped afterwards."""
    (port,) = free_ports(1)
    server = BackgroundProcess("web", tmp_path / "run", PYTHON)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "hello.txt").write_text("hi")
    process = server.start(
        http_server(port),
        ready_url=f"http://127.0.0.1:{port}/hello.txt",
        timeout_s=20,
        state={"port": port},
    )
    yield server, process, port
    server.stop(timeout_s=5)


def test_start_waits_for_readiness_and_records_pid_state_and_log(served):
    server, process, port = served
    assert process.poll() is None
    assert requests.get(f"http://127.0.0.1:{port}/hello.txt", timeout=5).text == "hi"
    assert server.pid_file.read_text().strip() == str(process.pid)
    state = server.state()
    assert state["port"] == port and state["pid"] == process.pid
    assert state["cmd"] == http_server(port) and state["log"] == str(server.log_file)
    assert state["ready_seconds"] > 0 and state["started_at"]
    assert server.running_pid() == process.pid
    # its own session: it outlives us and its group holds what it spawns
    assert os.getsid(process.pid) == process.pid and os.getpgid(process.pid) == process.pid
    # the request above was logged (http.server logs to stderr, which goes to the log file)
    assert eventually(lambda: "GET /hello.txt" in server.log_file.read_text())
    # no temporary files left beside the atomically written state
    assert sorted(p.name for p in server.run_dir.iterdir()) == [
        "hello.txt",
        "web.json",
        "web.log",
        "web.pid",
    ]


def test_a_second_start_from_the_same_run_dir_is_refused(served):
    server, process, port = served
    other = BackgroundProcess("web", server.run_dir, PYTHON)
    with pytest.raises(
        BackgroundError, match=rf"web started from .* already runs \(pid {process.pid}\)"
    ):
        other.start(http_server(port + 1 if port < 65535 else port - 1))
    assert server.running_pid() == process.pid


def test_stop_from_another_object_uses_the_pid_file_and_frees_the_port(served):
    server, process, port = served
    other = BackgroundProcess("web", server.run_dir, PYTHON)  # e.g. a later `stop` command
    assert other.running_pid() == process.pid
    assert other.stop(timeout_s=5) is True
    process.wait(timeout=5)  # our child: reap it
    assert not server.pid_file.exists() and server.state()["port"] == port  # state kept
    assert other.running_pid() is None and other.stop() is False
    assert port_free("127.0.0.1", port)


def test_stop_kills_the_whole_group_of_a_server_that_ignores_sigterm(tmp_path):
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    server = BackgroundProcess("stubborn", tmp_path, PYTHON)
    process = server.start(script(code))
    assert eventually(lambda: server.log_file.read_text().strip() != "", 10)
    child = int(server.log_file.read_text().split()[0])
    assert pid_alive(child)
    began = time.monotonic()
    assert server.stop(timeout_s=1) is True
    assert 1 <= time.monotonic() - began < 10  # waited for SIGTERM, then SIGKILL
    assert process.returncode == -9
    assert eventually(lambda: not pid_alive(child)) and eventually(lambda: group_gone(process.pid))


def test_signal_group_terminates_workers_gracefully(tmp_path):
    """With signal_group, SIGTERM reaches every member: no SIGKILL needed."""
    code = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "time.sleep(60)\n"
    )
    server = BackgroundProcess("workers", tmp_path, PYTHON, signal_group=True)
    process = server.start(script(code))
    time.sleep(0.3)
    assert server.stop(timeout_s=10) is True
    assert process.returncode == -15  # SIGTERM, not SIGKILL
    assert eventually(lambda: group_gone(process.pid))


def test_a_server_that_exits_during_start_raises_with_its_log_tail(tmp_path):
    (port,) = free_ports(1)
    server = BackgroundProcess("broken", tmp_path / "run", PYTHON, error=CustomError)
    cmd = script("import sys; print('config line 3 is wrong', file=sys.stderr); sys.exit(3)")
    with pytest.raises(CustomError) as raised:
        server.start(cmd, ready_url=f"http://127.0.0.1:{port}/", timeout_s=20)
    message = str(raised.value)
    assert "broken exited with code 3 during start" in message
    assert str(server.log_file) in message and "config line 3 is wrong" in message
    assert not server.pid_file.exists() and server.running_pid() is None
    assert server.process is None and server.stop() is False


def test_a_server_never_ready_is_stopped_after_the_timeout(tmp_path):
    (port,) = free_ports(1)
    server = BackgroundProcess("silent", tmp_path, PYTHON, tail=lambda path: "TAIL")
    began = time.monotonic()
    with pytest.raises(BackgroundError, match=r"silent not ready at .* after 1 s; log .*\n.*TAIL"):
        server.start(
            script("import time; time.sleep(60)"),
            ready_url=f"http://127.0.0.1:{port}/",
            timeout_s=1,
        )
    assert time.monotonic() - began < 10
    assert server.running_pid() is None and not server.pid_file.exists()


def test_a_missing_executable_is_reported(tmp_path):
    server = BackgroundProcess("ghost", tmp_path, ("ghost",))
    with pytest.raises(BackgroundError, match=r"cannot start ghost \(/nonexistent/ghost\)"):
        server.start(["/nonexistent/ghost"])
    assert server.running_pid() is None


def test_a_recycled_pid_is_not_taken_for_the_server(tmp_path):
    """The pid file names a live process that runs another binary: not our server."""
    other = subprocess.Popen([shutil.which("sleep") or "/bin/sleep", "30"])
    try:
        server = BackgroundProcess("web", tmp_path, PYTHON)
        write_atomic(server.pid_file, f"{other.pid}\n")
        assert server.running_pid() is None
        assert server.stop(timeout_s=1) is False  # and it is left alone
        assert other.poll() is None
        write_atomic(server.pid_file, "not a pid\n")
        assert server.running_pid() is None
    finally:
        other.kill()
        other.wait()


def test_env_and_cwd_reach_the_process(tmp_path):
    server = BackgroundProcess("env", tmp_path / "run", PYTHON)
    code = "import os; print(os.environ['BACKGROUND_TEST'], os.getcwd(), flush=True)"
    process = server.start(script(code), env={**os.environ, "BACKGROUND_TEST": "x1"}, cwd=tmp_path)
    process.wait(timeout=10)
    assert server.log_file.read_text().split() == ["x1", str(tmp_path)]
    assert server.stop() is False  # it had exited: nothing to stop, pid file removed
    assert not server.pid_file.exists()


@pytest.mark.parametrize("interruption", ["kill", "error"])
def test_an_interrupted_state_write_leaves_the_previous_file_intact(tmp_path, interruption):
    """A 1 MB rewrite stopped at 200 kB by RLIMIT_FSIZE: SIGXFSZ kills, or the write fails."""
    path = tmp_path / "state.json"
    write_atomic(path, json.dumps({"version": 1}))
    code = (
        "import resource, signal, sys\n"
        "from serving.processes import write_atomic\n"
        "if sys.argv[2] == 'kill':  # Python ignores SIGXFSZ; the default kills\n"
        "    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))\n"
        "write_atomic(sys.argv[1], '{\"version\": 2, \"pad\": \"' + 'x' * 1_000_000 + '\"}')\n"
    )
    repo_root = Path(__file__).resolve().parents[3]
    writer = subprocess.run(
        [*script(code), str(path), interruption], cwd=repo_root, capture_output=True, text=True
    )
    if interruption == "kill":
        assert writer.returncode == -signal.SIGXFSZ, writer.stderr
    else:
        assert writer.returncode == 1 and "File too large" in writer.stderr, writer.stderr
        assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # temporary removed
    assert json.loads(path.read_text()) == {"version": 1}
