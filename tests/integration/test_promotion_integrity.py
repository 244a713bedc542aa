"""Promotion integrity by fault injection against real stores: a real PostgreSQL and SQLite
registry, a real `mlflow server` killed mid-run, a process killed between the history and
alias writes, a tampered ONNX reported to a real Pushgateway, and a real Triton that must
serve a version before the alias names it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests
import sqlalchemy as sa

from models import registry
from pipelines import rollback
from serving import deploy
from serving.model_repository import list_versions
from serving.processes import free_ports
from tests.conftest import REPO, write_config
from tests.postgres import postgres_url  # noqa: F401 - the fixture
from tests.served_versions import bare_versions, onnx_artifact_path, race, register_served_version

pytestmark = pytest.mark.integration


@pytest.fixture
def tracking_uri(tracking):
    """Restore the session's SQLite store after a test points MLflow elsewhere."""
    yield tracking
    mlflow.set_tracking_uri(tracking)
    os.environ["MLFLOW_TRACKING_URI"] = tracking


def test_concurrent_promotions_on_postgresql_exactly_one_wins(tracking_uri, postgres_url):  # noqa: F811
    mlflow.set_tracking_uri(postgres_url)
    assert registry.lock_target(postgres_url) == postgres_url  # the advisory lock
    champion, *challengers = bare_versions("race-pg", 4)
    registry.promote(champion, "first", expected=None)
    engine = sa.create_engine(postgres_url)
    advisory = sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    with registry.promotion_lock("race-pg"), engine.connect() as conn:
        assert conn.execute(advisory).scalar() == 1
    outcomes = race(challengers, expected="1")
    assert sorted(outcomes.values()) == ["promoted", "refused", "refused"]
    winner = next(v for v, outcome in outcomes.items() if outcome == "promoted")
    assert registry.champion_version("race-pg") == winner
    history = registry.champion_history("race-pg")
    assert [(e["version"], e["from"], e["state"]) for e in history] == [
        ("1", None, "done"),
        (winner, "1", "done"),
    ]
    with engine.connect() as conn:
        assert conn.execute(advisory).scalar() == 0  # released by every contender
    engine.dispose()


ROLE_SCRIPT = REPO / "infra" / "k8s" / "base" / "postgres-init" / "promotion-lock-role.sh"


def test_the_clusters_lock_role_takes_the_lock_and_reads_nothing(postgres_url, tmp_path,  # noqa: F811
                                                                 monkeypatch):  # fmt: skip
    """The script the cluster's postgres runs at init (and by hand on an older database) makes
    a role that can hold the promotion lock pipeline runs take through MLOPS_PROMOTION_LOCK,
    and that can neither read MLflow's tables nor create any; a rerun is harmless."""
    url = sa.engine.make_url(postgres_url)
    (password := tmp_path / "password").write_text("lock-pass")
    env = {**os.environ, "PGHOST": url.host, "PGPORT": str(url.port),
           "POSTGRES_USER": url.username, "POSTGRES_DB": url.database,
           "PROMOTION_LOCK_PASSWORD_FILE": str(password)}  # fmt: skip
    for _ in range(2):
        done = subprocess.run(["bash", str(ROLE_SCRIPT)], env=env, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS public.registry_rows (x int)"))
    lock_url = url.set(username="promotion_lock", password="lock-pass")
    monkeypatch.setenv(registry.LOCK_ENV, lock_url.render_as_string(hide_password=False))
    holders = sa.text("SELECT a.usename FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                      "WHERE l.locktype = 'advisory'")  # fmt: skip
    with registry.promotion_lock("role-test"), admin.connect() as conn:
        assert conn.execute(holders).scalars().all() == ["promotion_lock"]
    locker = sa.create_engine(lock_url)
    for statement in ("SELECT * FROM public.registry_rows", "CREATE TABLE public.t (x int)"):
        with locker.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission"):
            conn.execute(sa.text(statement))
    locker.dispose()
    admin.dispose()
    password.write_text("")
    done = subprocess.run(["bash", str(ROLE_SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == 1 and "no password in" in done.stderr


KILLED_MOVE = """
import os, signal, sys
import mlflow
from models import registry

when, name, action = sys.argv[1:]
move = mlflow.MlflowClient.set_registered_model_alias

def killed(self, *args, **kwargs):
    if when == "after":
        move(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

mlflow.MlflowClient.set_registered_model_alias = killed
if action == "rollback":
    registry.rollback(name)
else:
    registry.promote(registry.Version(name, action, None), "killed", expected="2")
"""


def killed_move(when: str, name: str, action: str) -> None:
    """Run a champion move in a child process killed (SIGKILL) just before or just after the
    alias write: the history entry is written, the confirmation never is."""
    done = subprocess.run(
        [sys.executable, "-c", KILLED_MOVE, when, name, action],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert registry.champion_history(name)[-1]["state"] == "pending"


def test_a_rollback_killed_before_the_alias_moved_completes_when_rerun(tracking):
    v1, v2 = bare_versions("killed-before", 2)
    registry.promote(v1, "first", expected=None)
    registry.promote(v2, "second", expected="1")
    killed_move("before", "killed-before", "rollback")
    assert registry.champion_version("killed-before") == "2"
    assert registry.rollback("killed-before") == "1"
    assert registry.rollback("killed-before") == "1"  # and again: nothing more moves
    history = registry.champion_history("killed-before")
    assert [(e["event"], e["state"]) for e in history] == [
        ("promoted: first", "done"),
        ("promoted: second", "done"),
        ("rollback from version 2", "aborted"),
        ("rollback from version 2", "done"),
    ]
    assert registry.champion_version("killed-before") == "1"


def test_a_rollback_killed_after_the_alias_moved_is_not_repeated(tracking):
    v1, v2 = bare_versions("killed-after", 2)
    registry.promote(v1, "first", expected=None)
    registry.promote(v2, "second", expected="1")
    killed_move("after", "killed-after", "rollback")
    assert registry.champion_version("killed-after") == "1"
    assert registry.rollback("killed-after") == "1"  # settles the entry; no second step back
    history = registry.champion_history("killed-after")
    assert [(e["version"], e["state"]) for e in history] == [("1", "done"), ("2", "done"),
                                                              ("1", "done")]  # fmt: skip


def test_a_promotion_killed_between_the_writes_is_settled_by_the_next_one(tracking):
    v1, v2, v3 = bare_versions("killed-promotion", 3)
    registry.promote(v1, "first", expected=None)
    registry.promote(v2, "second", expected="1")
    killed_move("before", "killed-promotion", "3")
    with pytest.raises(registry.ChampionMovedError):  # a run gated against v3's champion-to-be
        registry.promote(v1, "gated against 3", expected="3")
    registry.promote(v3, "rerun", expected="2")
    history = registry.champion_history("killed-promotion")
    assert [(e["version"], e["state"]) for e in history][-2:] == [("3", "aborted"), ("3", "done")]


class MlflowServer:
    """A real `mlflow server` on SQLite, started and killed (SIGKILL) by the test."""

    def __init__(self, root: Path) -> None:
        self.root, (self.port,) = root, free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                   f"sqlite:///{self.root / 'server.db'}", "--artifacts-destination",
                   str(self.root / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port),
                   "--workers", "1"]  # fmt: skip
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server writes to it
        self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return
            except requests.RequestException:
                time.sleep(1)
        raise RuntimeError((self.root / "server.log").read_text()[-3000:])

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # the server and its uvicorn worker
            self.process.wait(timeout=30)


@pytest.fixture
def mlflow_server(tmp_path, tracking_uri, monkeypatch):
    server = MlflowServer(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLOPS_PROMOTION_LOCK", str(tmp_path / "locks"))
    server.start()
    yield server
    server.kill()


def test_a_tracking_server_going_down_stops_every_move_and_nothing_moved(
    mlflow_server, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow.set_tracking_uri(mlflow_server.url)
    v1, v2, v3 = bare_versions("server-down", 3)
    registry.promote(v1, "first", expected=None)
    registry.promote(v2, "second", expected="1")
    mlflow_server.kill()
    down = f"MLFLOW_TRACKING_URI={mlflow_server.url}"
    with pytest.raises(registry.RegistryError, match=down):
        registry.champion_version("server-down")  # not "no champion"
    with pytest.raises(registry.RegistryError, match=down):
        registry.promote(v3, "gated while the store was up", expected="2")
    with pytest.raises(registry.RegistryError, match=down):
        registry.rollback("server-down")
    project = write_config(tmp_path / "c.yaml", name="server-down")
    assert rollback.main(["--project", str(project), "--repo", str(tmp_path / "repo")]) == 2
    assert f"unreachable at {down}" in capsys.readouterr().err
    mlflow_server.start()
    assert registry.champion_version("server-down") == "2"
    assert [e["state"] for e in registry.champion_history("server-down")] == ["done", "done"]


@pytest.fixture(scope="module")
def served(tracking):
    """Two registered versions of a small fraud model with their ONNX (v1 threshold 0.3,
    v2 0.4), and a project config naming the model."""
    from configs import load_config
    from features.contract import clean_rows
    from features.fraud_data import generate_transactions
    from features.split import model_inputs, split_data
    from serving.onnx_export import export_onnx
    from tests.unit.conftest import fit_pipeline

    config = load_config("fraud")
    train, _, test = split_data(clean_rows(generate_transactions(6000, seed=4), config).clean,
                                config)  # fmt: skip
    model = fit_pipeline(config, train, "baseline")
    onnx_bytes = export_onnx(model, config.numeric_features, config.categorical_features)
    example = model_inputs(test.head(20), config)
    for threshold in (0.3, 0.4):
        register_served_version("integrity-classifier", model, onnx_bytes, threshold, example)
    return "integrity-classifier"


def test_a_tampered_onnx_is_refused_and_reported_to_the_pushgateway(served, tmp_path, capsys):
    name = served
    current = registry.champion_version(name)
    if current != "1":
        registry.promote(registry.Version(name, "1", None), "test", expected=current)
    port, project = free_ports(1)[0], write_config(tmp_path / "p.yaml", name="integrity")
    gateway = subprocess.Popen(
        ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                if requests.get(f"{url}/-/ready", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        path = onnx_artifact_path(name, "1")
        original = path.read_bytes()
        path.write_bytes(original + b"\0")
        argv = ["--project", str(project), "--repo", str(tmp_path / "repo"), "--pushgateway", url]
        try:
            assert deploy.main(argv) == 1
        finally:
            path.write_bytes(original)
        assert f"version 1 of '{name}' does not match its onnx_sha256" in capsys.readouterr().err
        assert not (tmp_path / "repo").exists()
        metric = 'mlops_artifact_verification_failed{instance="",job="deploy",model="' + name
        pushed = requests.get(f"{url}/metrics", timeout=5).text
        assert f'{metric}",project="integrity",version="1"}} 1' in pushed
        assert deploy.main(argv) == 0  # restored: published, and the gauge goes back to 0
        pushed = requests.get(f"{url}/metrics", timeout=5).text
        assert f'{metric}",project="integrity",version="1"}} 0' in pushed
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)


def test_rollback_reaches_a_polling_triton_before_the_alias_moves(served, tmp_path, capsys):
    from serving.launcher import TritonServer

    name = served
    for version in ("1", "2"):  # v2 champion, promoted over v1
        current = registry.champion_version(name)
        if current != version:
            registry.promote(registry.Version(name, version, None), "test", expected=current)
    repo = tmp_path / "repo"
    deploy.deploy_version(name, "2", repo)
    http, grpc, metrics = free_ports(3)
    server = TritonServer(run_dir=tmp_path / "run")
    server.start(repo, http_port=http, grpc_port=grpc, metrics_port=metrics,
                 model_control="poll", timeout_s=120)  # fmt: skip
    try:
        project = write_config(tmp_path / "p.yaml", name="integrity")
        argv = ["--project", str(project), "--repo", str(repo), "--triton-url",
                f"127.0.0.1:{http}"]  # fmt: skip
        assert rollback.main(argv) == 0
        assert "champion is now version 1" in capsys.readouterr().out
        ready = f"http://127.0.0.1:{http}/v2/models/{name}/versions/1/ready"
        assert requests.get(ready, timeout=5).status_code == 200
        assert list_versions(repo, name) == [1] and registry.champion_version(name) == "1"
    finally:
        server.stop()
