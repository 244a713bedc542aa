"""Small process and port checks shared by the local servers (Triton, Prometheus, Pushgateway)."""

from __future__ import annotations

import os
import socket
from collections.abc import Collection
from pathlib import Path

import requests


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


def pid_alive(pid: int) -> bool:
    """Is `pid` a live process (a zombie, our own child not reaped yet, is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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
