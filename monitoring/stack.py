"""The local Prometheus + Pushgateway stack (Debian binaries), and helpers to query it.

Both servers run as background processes in their own sessions (they outlive the CLI; see
`serving.background.BackgroundProcess`), with pid, state and log files, Prometheus' TSDB and
the Pushgateway's persistence file in a run directory (default `local_outputs/monitoring/`).
The scrape config is rendered from the repo's `monitoring/prometheus/prometheus.yml`: only
the targets of the jobs `prometheus`, `pushgateway`, `triton` and `gateway` change (to the
effective ports) and `rule_files` become absolute, so the repo file stays the single source
that the cluster manifests reuse.

Prometheus runs with `--web.enable-lifecycle` (POST /-/reload after editing the rules) and a
short retention: this is a workstation stack, not long-term storage.

CLI (for `make monitor-up` / `make monitor-down`)::

    python -m monitoring.stack up [--prometheus-port 9090 --pushgateway-port 9091
                                   --triton-metrics 127.0.0.1:8002
                                   --gateway-metrics 127.0.0.1:8003]
    python -m monitoring.stack status
    python -m monitoring.stack down
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

import requests
import yaml

from configs.cli import UserError, cli_parser, fail, setup_logging
from serving.background import BackgroundProcess
from serving.processes import client_host, free_ports, http_ok, port_free, write_atomic

log = logging.getLogger(__name__)

MONITORING_DIR = Path(__file__).resolve().parent
REPO_ROOT = MONITORING_DIR.parent
PROMETHEUS_CONFIG = MONITORING_DIR / "prometheus" / "prometheus.yml"
DASHBOARDS_DIR = MONITORING_DIR / "grafana" / "dashboards"
DEFAULT_RUN_DIR = REPO_ROOT / "local_outputs" / "monitoring"
STATE_FILE = "monitoring.json"
CONFIG_FILE = "prometheus.yml"

# name -> (binary names to look for on PATH, Debian package that ships it)
BINARIES = {
    "prometheus": (("prometheus",), "prometheus"),
    "pushgateway": (("prometheus-pushgateway", "pushgateway"), "prometheus-pushgateway"),
}
SCRAPE_JOBS = ("prometheus", "pushgateway", "triton", "gateway")
DEFAULT_GATEWAY_METRICS = "127.0.0.1:8003"  # python -m serving.gateway serve --metrics-port
# Grafana's interval macros, replaced so that a panel's PromQL runs against Prometheus as is.
GRAFANA_MACROS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}


class MonitoringError(UserError, RuntimeError):
    """A binary is missing, a port is taken, a server did not start, or a query failed."""


# -- config --------------------------------------------------------------------------------


def render_config(
    *,
    prometheus: str,
    pushgateway: str,
    triton: str,
    gateway: str = DEFAULT_GATEWAY_METRICS,
    template: Path = PROMETHEUS_CONFIG,
    scrape_interval: str | None = None,
) -> str:
    """The template's YAML with the scrape jobs' targets replaced and rule_files made absolute.

    Args:
        prometheus, pushgateway, triton, gateway: `host:port` targets of those scrape jobs.
        template: the repo's prometheus.yml.
        scrape_interval: override of the global scrape and evaluation interval (e.g. "1s").

    Raises:
        MonitoringError: the template lacks one of the jobs or has no static target for it.
    """
    template = Path(template)
    config = yaml.safe_load(template.read_text())
    targets = {
        "prometheus": prometheus,
        "pushgateway": pushgateway,
        "triton": triton,
        "gateway": gateway,
    }
    jobs = {job.get("job_name"): job for job in config.get("scrape_configs") or []}
    for name, target in targets.items():
        job = jobs.get(name)
        if job is None or not job.get("static_configs"):
            raise MonitoringError(
                f"{template}: scrape_configs has no job {name!r} with static_configs"
            )
        job["static_configs"] = [{"targets": [target]}]
    config["rule_files"] = [
        str((template.parent / rule).resolve()) for rule in config.get("rule_files") or []
    ]
    if scrape_interval is not None:
        glob = config.setdefault("global", {})
        glob["scrape_interval"] = glob["evaluation_interval"] = scrape_interval
        glob["scrape_timeout"] = scrape_interval  # must not exceed the interval
    header = f"# Rendered by monitoring/stack.py from {template}; edit that file, not this one.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


# -- processes -----------------------------------------------------------------------------


def find_binary(name: str) -> Path:
    """The path of `prometheus` or `pushgateway`; MonitoringError with the install command."""
    candidates, package = BINARIES[name]
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return Path(found)
    raise MonitoringError(
        f"{' or '.join(candidates)} not found on PATH: sudo apt-get install -y {package}",
        hint="make system-deps",
    )


def _tail(path: Path, lines: int = 15) -> str:
    """The log's error lines (Prometheus and the Pushgateway log `level=error`), else its tail."""
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in text if "level=error" in line]
    return "\n".join((errors or text)[-lines:])


def server_commands(
    binaries: dict[str, Path], ports: dict[str, int], *, host: str, run_dir: Path, retention: str
) -> dict[str, list[str]]:
    """The Pushgateway's and Prometheus' command lines (Pushgateway first: it is scraped)."""
    return {
        "pushgateway": [
            str(binaries["pushgateway"]),
            f"--web.listen-address={host}:{ports['pushgateway']}",
            # pushes survive a restart: the monitor pushes once per window, not per scrape
            f"--persistence.file={run_dir / 'pushgateway.db'}",
            "--persistence.interval=1m",
        ],
        "prometheus": [
            str(binaries["prometheus"]),
            f"--config.file={run_dir / CONFIG_FILE}",
            f"--web.listen-address={host}:{ports['prometheus']}",
            f"--storage.tsdb.path={run_dir / 'prometheus-data'}",
            f"--storage.tsdb.retention.time={retention}",
            "--web.enable-lifecycle",  # POST /-/reload re-reads the config and rules
        ],
    }


class PrometheusStack:
    """Prometheus and the Pushgateway, with pid, state, log and data files under `run_dir`."""

    def __init__(self, run_dir: Path | None = None, *, template: Path = PROMETHEUS_CONFIG) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else DEFAULT_RUN_DIR
        self.template = Path(template)
        self.servers = {
            name: BackgroundProcess(
                name, self.run_dir, binary_names, error=MonitoringError, tail=_tail
            )
            for name, (binary_names, _) in BINARIES.items()
        }

    @property
    def processes(self) -> dict[str, subprocess.Popen]:
        """The server processes this object started (and has not stopped)."""
        return {name: s.process for name, s in self.servers.items() if s.process is not None}

    @property
    def state_file(self) -> Path:
        return self.run_dir / STATE_FILE

    def pid_file(self, name: str) -> Path:
        return self.servers[name].pid_file

    def log_file(self, name: str) -> Path:
        return self.servers[name].log_file

    def state(self) -> dict | None:
        """What the last `start` recorded (pids, ports, urls, files), or None."""
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def running_pids(self) -> dict[str, int]:
        """The pids of the servers this run directory started that still run."""
        pids = {name: server.running_pid() for name, server in self.servers.items()}
        return {name: pid for name, pid in pids.items() if pid is not None}

    @property
    def prometheus_url(self) -> str:
        return self._url("prometheus_url")

    @property
    def pushgateway_url(self) -> str:
        return self._url("pushgateway_url")

    def _url(self, key: str) -> str:
        state = self.state()
        if not state:
            raise MonitoringError(
                f"no monitoring stack recorded in {self.state_file}", hint="make monitor-up"
            )
        return state[key]

    def start(
        self,
        *,
        prometheus_port: int = 9090,
        pushgateway_port: int = 9091,
        triton_metrics: str = "127.0.0.1:8002",
        gateway_metrics: str = DEFAULT_GATEWAY_METRICS,
        host: str = "127.0.0.1",
        retention: str = "2d",
        scrape_interval: str | None = None,
        timeout_s: float = 30.0,
    ) -> dict:
        """Start the Pushgateway and Prometheus; return the state once both answer /-/ready.

        Args:
            prometheus_port, pushgateway_port: listen ports (0: pick a free one).
            triton_metrics: `host:port` of Triton's metrics endpoint (scraped as job triton;
                it may be down, Prometheus keeps trying).
            gateway_metrics: `host:port` of the gateway's metrics endpoint (job gateway).
            host: address both servers bind to.
            retention: Prometheus' --storage.tsdb.retention.time.
            scrape_interval: override of the config's scrape/evaluation interval.
            timeout_s: how long to wait for readiness.

        Raises:
            MonitoringError: a binary is missing, a port is taken, a server from this run
                directory already runs, or a server exited or was not ready in time (with
                the tail of its log); whatever was started is stopped again.
        """
        binaries = {name: find_binary(name) for name in BINARIES}
        running = self.running_pids()
        if running:
            raise MonitoringError(f"the monitoring stack in {self.run_dir} already runs: {running}")
        wanted = {"prometheus": prometheus_port, "pushgateway": pushgateway_port}
        spare = iter(free_ports(2, host=client_host(host)))
        ports = {name: port or next(spare) for name, port in wanted.items()}
        for name, port in ports.items():
            # Else readiness could be answered by another server already on the port.
            if not port_free(host, port):
                raise MonitoringError(
                    f"{name} port {port} on {host} is already in use",
                    hint="make monitor-down (if it is ours), or other ports: make monitor-up "
                    "PROM_PORT=9190 PUSH_PORT=9191",
                )

        self.run_dir.mkdir(parents=True, exist_ok=True)
        client = client_host(host)
        urls = {name: f"http://{client}:{port}" for name, port in ports.items()}
        config_path = self.run_dir / CONFIG_FILE
        config_path.write_text(
            render_config(
                prometheus=f"{client}:{ports['prometheus']}",
                pushgateway=f"{client}:{ports['pushgateway']}",
                triton=triton_metrics,
                gateway=gateway_metrics,
                template=self.template,
                scrape_interval=scrape_interval,
            )
        )
        commands = server_commands(
            binaries, ports, host=host, run_dir=self.run_dir, retention=retention
        )
        began = time.monotonic()
        try:
            for name, cmd in commands.items():  # both start at once, then both are awaited
                self.servers[name].start(cmd, state={"url": urls[name], "port": ports[name]})
            state = {
                "pids": {name: proc.pid for name, proc in self.processes.items()},
                "host": host,
                "prometheus_port": ports["prometheus"],
                "pushgateway_port": ports["pushgateway"],
                "prometheus_url": urls["prometheus"],
                "pushgateway_url": urls["pushgateway"],
                "triton_metrics": triton_metrics,
                "gateway_metrics": gateway_metrics,
                "config": str(config_path),
                "logs": {name: str(self.log_file(name)) for name in BINARIES},
                "commands": commands,
            }
            write_atomic(self.state_file, json.dumps(state, indent=2) + "\n")
            for name, url in urls.items():
                left = began + timeout_s - time.monotonic()
                self.servers[name].wait_ready(f"{url}/-/ready", timeout_s=max(left, 0.0))
        except MonitoringError:
            self.stop()  # whatever did start
            raise
        state["ready_seconds"] = round(time.monotonic() - began, 3)
        write_atomic(self.state_file, json.dumps(state, indent=2) + "\n")
        log.info(
            "monitoring stack ready in %.1f s: prometheus %s, pushgateway %s",
            state["ready_seconds"],
            urls["prometheus"],
            urls["pushgateway"],
        )
        return state

    def stop(self, timeout_s: float = 15.0) -> bool:
        """SIGTERM each server, wait up to `timeout_s`, then SIGKILL its process group.

        Prometheus goes first (it scrapes the Pushgateway).

        Returns:
            True when at least one server was running and was stopped.
        """
        stopped = [self.servers[name].stop(timeout_s) for name in reversed(BINARIES)]
        return any(stopped)

    def status(self) -> dict:
        """Running and ready per server, with the recorded urls."""
        state = self.state() or {}
        pids = self.running_pids()
        summary: dict = {key: state.get(key) for key in _SUMMARY_KEYS}
        for name in BINARIES:
            url = state.get(f"{name}_url")
            summary[name] = {
                "pid": pids.get(name),
                "running": name in pids,
                "ready": name in pids and bool(url) and http_ok(f"{url}/-/ready"),
            }
        return summary


_SUMMARY_KEYS = (
    "prometheus_url",
    "pushgateway_url",
    "triton_metrics",
    "gateway_metrics",
    "config",
    "logs",
)


# -- queries -------------------------------------------------------------------------------


def query(prometheus_url: str, promql: str, *, timeout_s: float = 10.0) -> list:
    """Evaluate `promql` now through /api/v1/query; the `result` list (vector: one dict a series).

    Raises:
        MonitoringError: Prometheus is unreachable, or rejected the query (its error named).
    """
    url = f"{prometheus_url.rstrip('/')}/api/v1/query"
    try:
        response = requests.get(url, params={"query": promql}, timeout=timeout_s)
    except requests.RequestException as exc:
        raise MonitoringError(
            f"query {promql!r} at {url} failed: {exc}", hint="make monitor-up"
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or body.get("status") != "success":
        error = body.get("error") or response.text[:200]
        raise MonitoringError(f"query {promql!r} at {url}: HTTP {response.status_code}: {error}")
    return body["data"]["result"]


def firing_alerts(prometheus_url: str, *, timeout_s: float = 10.0) -> list[dict[str, str]]:
    """The labels of every alert firing now (`alertname` among them), from /api/v1/alerts.

    Raises:
        MonitoringError: Prometheus is unreachable or answered something else.
    """
    return [labels for labels, _ in firing_alerts_since(prometheus_url, timeout_s=timeout_s)]


def firing_alerts_since(
    prometheus_url: str, *, timeout_s: float = 10.0
) -> list[tuple[dict[str, str], datetime | None]]:
    """(labels, when it became active) of every alert firing now, from /api/v1/alerts.

    Raises:
        MonitoringError: Prometheus is unreachable or answered something else.
    """
    url = f"{prometheus_url.rstrip('/')}/api/v1/alerts"
    try:
        alerts = requests.get(url, timeout=timeout_s).json()["data"]["alerts"]
        return [(dict(a["labels"]), _instant(a.get("activeAt")))
                for a in alerts if a["state"] == "firing"]  # fmt: skip
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise MonitoringError(f"cannot read alerts from {url}: {exc}") from exc


def _instant(text: str | None) -> datetime | None:
    """Prometheus's RFC 3339 time (nanoseconds, `Z`) as an aware datetime; None without one."""
    return datetime.fromisoformat(text) if text else None


def wait_for_query(
    prometheus_url: str, promql: str, *, timeout_s: float = 30.0, interval_s: float = 0.5
) -> list:
    """Poll `query` until it returns at least one series; that result.

    Raises:
        MonitoringError: still empty after `timeout_s`, or the query is invalid.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = query(prometheus_url, promql)
        if result:
            return result
        if time.monotonic() > deadline:
            raise MonitoringError(f"query {promql!r} returned nothing for {timeout_s:.0f} s")
        time.sleep(interval_s)


def wait_for_targets(
    prometheus_url: str,
    jobs: Iterable[str] = ("prometheus", "pushgateway"),
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.5,
) -> list[dict]:
    """Poll /api/v1/targets until every active target of `jobs` is up; those targets.

    Raises:
        MonitoringError: a job has no target, or a target is not up after `timeout_s`
            (with its scrape url and last error).
    """
    jobs = tuple(jobs)
    url = f"{prometheus_url.rstrip('/')}/api/v1/targets"
    deadline = time.monotonic() + timeout_s
    problems: list[str] = []
    while True:
        try:
            active = requests.get(url, params={"state": "active"}, timeout=5).json()["data"]
            targets = [t for t in active["activeTargets"] if t["labels"].get("job") in jobs]
        except (requests.RequestException, ValueError, KeyError) as exc:
            targets, problems = [], [f"{url}: {exc}"]
        else:
            missing = [job for job in jobs if job not in {t["labels"].get("job") for t in targets}]
            problems = [f"job {job!r} has no target" for job in missing] + [
                f"{t['scrapeUrl']} ({t['labels'].get('job')}) is {t['health']}: {t['lastError']}"
                for t in targets
                if t["health"] != "up"
            ]
        if not problems:
            return targets
        if time.monotonic() > deadline:
            raise MonitoringError(f"targets not up after {timeout_s:.0f} s: " + "; ".join(problems))
        time.sleep(interval_s)


# -- dashboards ----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def _panels(panels: list[dict]) -> Iterable[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])  # collapsed rows hold their panels


def dashboard_queries(path: Path = DASHBOARDS_DIR) -> list[tuple[str, str, str]]:
    """Every panel target's PromQL as (dashboard uid, panel title, expr), runnable as is.

    Grafana's macros ($__rate_interval, $__interval: 1m; $__range: 1h) and the dashboard's
    template variables (their allValue, else ".*": variables are used with `=~`) are
    substituted. `path` is one dashboard JSON file or a folder of them.

    Raises:
        ValueError: a file is not JSON, or an expr uses an unknown variable (file and panel named).
    """
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    queries = []
    for file in files:
        try:
            dashboard = json.loads(file.read_text())
        except ValueError as exc:
            raise ValueError(f"{file} is not valid JSON: {exc}") from exc
        values = dict(GRAFANA_MACROS)
        for variable in (dashboard.get("templating") or {}).get("list") or []:
            values[variable["name"]] = variable.get("allValue") or ".*"
        uid = dashboard.get("uid") or file.stem
        for panel in _panels(dashboard.get("panels") or []):
            title = panel.get("title", "")
            for target in panel.get("targets") or []:
                expr = _substitute(target.get("expr", ""), values, f"{file}: panel {title!r}")
                queries.append((uid, title, expr))
    return queries


def _substitute(expr: str, values: dict[str, str], where: str) -> str:
    def value(match: re.Match) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise ValueError(f"{where}: unknown variable ${name}")
        return values[name]

    return _VARIABLE.sub(value, expr)


# -- CLI -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = cli_parser(
        __doc__,
        prog="python -m monitoring.stack",
        make="make monitor-up / make monitor-status / make monitor-down",
    )
    parser.add_argument(
        "command", choices=("up", "down", "status"), help="start, stop or check both servers"
    )
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="pid/state/log/data")
    parser.add_argument("--host", default="127.0.0.1", help="bind address")
    parser.add_argument("--prometheus-port", type=int, default=9090, help="0: a free port")
    parser.add_argument("--pushgateway-port", type=int, default=9091, help="0: a free port")
    parser.add_argument("--triton-metrics", default="127.0.0.1:8002", help="host:port to scrape")
    parser.add_argument(
        "--gateway-metrics", default=DEFAULT_GATEWAY_METRICS, help="host:port to scrape"
    )
    parser.add_argument("--retention", default="2d", help="Prometheus TSDB retention")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (status: 0 ready, 1 not ready, 3 stopped)."""
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    stack = PrometheusStack(args.run_dir)
    if args.command == "up":
        if stack.running_pids():
            print(f"already up (from {stack.run_dir}):", file=sys.stderr)
            print(json.dumps(stack.status(), indent=2))
            return 0
        try:
            stack.start(
                prometheus_port=args.prometheus_port,
                pushgateway_port=args.pushgateway_port,
                triton_metrics=args.triton_metrics,
                gateway_metrics=args.gateway_metrics,
                host=args.host,
                retention=args.retention,
                timeout_s=args.timeout,
            )
        except MonitoringError as exc:
            return fail(exc, code=1)
        print(json.dumps(stack.status(), indent=2))
        return 0
    if args.command == "down":
        stopped = stack.stop(timeout_s=args.timeout)
        print("stopped the monitoring stack" if stopped else f"nothing ran from {stack.run_dir}")
        return 0
    summary = stack.status()
    print(json.dumps(summary, indent=2))
    servers = [summary[name] for name in BINARIES]
    if not any(server["running"] for server in servers):
        return 3
    return 0 if all(server["ready"] for server in servers) else 1


if __name__ == "__main__":
    sys.exit(main())
