"""Small process, port and file helpers shared by the local servers and the monitor."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Collection
from pathlib import Path

import requests

# Standard library only, shared with the probe that runs where our packages are not installed.
from serving.triton_probe import pid_alive as pid_alive


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that are free on `host` right now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_free(host: str, port: int) -> bool:
    """Can a server bind `host:port` now?"""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Does `url` answer 200?"""
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def runs_binary(pid: int, names: Collection[str]) -> bool:
    """Guard against a recycled pid: is `pid` running one of the executables `names`?"""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return Path(os.fsdecode(argv0)).name in names


def client_host(host: str) -> str:
    """The address a client uses for a server bound to `host` (wildcards -> loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 - compares, binds nothing


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` atomically: a temporary sibling, fsync, `os.replace`.

    A reader (or a crash at any point) sees the previous file or the new one, never a part.
    The directory is fsynced too, so the rename itself survives a power loss.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    payload = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
