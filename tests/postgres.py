"""A throwaway PostgreSQL server for tests and benchmarks (Debian `postgresql` binaries).

`running_postgres()` initialises a cluster in a temporary directory, starts it on a free
localhost port (trust auth, unix socket inside the directory), creates the `optuna` database,
yields its SQLAlchemy URL and stops the server afterwards. PostgreSQL refuses to run as
root, so under root the server runs as the `postgres` system user (else `nobody`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from serving.processes import free_ports

DATABASE = "optuna"
TOOLS = ("initdb", "pg_ctl", "postgres", "createdb")


def postgres_bin() -> Path:
    """The directory holding the server binaries (newest Debian version first, then PATH)."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    candidates += [Path(p).parent for p in [shutil.which("pg_ctl")] if p]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in TOOLS):
            return folder
    raise FileNotFoundError(
        f"PostgreSQL server binaries {TOOLS} not found in "
        "/usr/lib/postgresql/*/bin or on PATH; install them: apt-get install postgresql"
    )


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a private PostgreSQL server; yields `postgresql+psycopg://postgres@127.0.0.1:PORT/optuna`."""
    binaries = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _user_exists("postgres") else "nobody"
        shutil.chown(root, user)
        as_user = ["runuser", "-u", user, "--"]
    data, (port,) = root / "data", free_ports(1)

    def run(*command: str) -> None:
        result = subprocess.run([*as_user, *command], capture_output=True, text=True, check=False)
        if result.returncode:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise RuntimeError(f"{command[0]} failed:\n{result.stdout}{result.stderr}{log}")

    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o",
            options, "-w", "-t", "30", "start")  # fmt: skip
        try:
            run(str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                DATABASE)  # fmt: skip
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A real, private PostgreSQL server for the module; fails (not skips) without binaries."""
    try:
        postgres_bin()
    except FileNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    with running_postgres() as url:
        yield url
