"""Run the serving gateway (foreground or background), or manage its API keys.

    python -m serving.gateway serve [--host 127.0.0.1 --port 8000 --upstream http://127.0.0.1:8010]
    python -m serving.gateway start [same options]   # in the background (make serve)
    python -m serving.gateway status | stop          # make serve-status / make stop
    python -m serving.gateway keys add --name app-a [--model fraud-classifier] [--labels]

`serve` runs in the foreground (what `start` runs in the background and what the cluster's
InferenceService runs as its transformer). On loopback it runs without keys; bound to any
other address it refuses to start without a keys file.

Shadow traffic: `--shadow-share 0.2` mirrors 20% of answered requests (by a hash of the request
id) to the model's shadow challenger, when one is loaded (`<model>__shadow`, published by the
deploy step under `gate.shadow_before_promotion`); `--shadow-queue` and
`--shadow-concurrency` bound the work kept off the request path.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from configs.cli import UserError, cli_parser, fail, setup_logging
from serving.background import BackgroundProcess
from serving.gateway.auth import KeysFileError, KeyStore, add_key
from serving.gateway.contract import Limits
from serving.processes import client_host, http_ok, port_free

log = logging.getLogger(__name__)

DEFAULT_UPSTREAM = "http://127.0.0.1:8010"
DEFAULT_KEYS_FILE = Path("local_outputs/gateway/keys.json")
DEFAULT_LOG_ROOT = Path("local_outputs/inference_log")
DEFAULT_RUN_DIR = Path("local_outputs/gateway/run")
KEYS_ENV = "GATEWAY_KEYS_FILE"
_STATUS_KEYS = ("pid", "url", "upstream", "metrics_url", "keys", "log_root", "log", "ready_seconds")


class GatewayError(UserError, RuntimeError):
    """The gateway cannot start as configured, or did not start; the message says why."""


def is_loopback(host: str) -> bool:
    """Does binding `host` keep the endpoint on this machine?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_keys(host: str, keys_file: Path | None) -> KeyStore | None:
    """The keys to enforce; None only on loopback without a keys file.

    Raises:
        GatewayError: a non-loopback bind without keys, or an unusable keys file.
    """
    if keys_file is None:
        if is_loopback(host):
            return None
        raise GatewayError(
            f"refusing to serve on {host} without API keys (anyone could call the model)",
            hint="python -m serving.gateway keys add --name APP --keys-file FILE, then "
            f"--keys-file FILE (or {KEYS_ENV}=FILE)",
        )
    try:
        return KeyStore(keys_file)
    except KeysFileError as exc:
        raise GatewayError(str(exc), hint="python -m serving.gateway keys add --help") from None


def _upstream_url(args: argparse.Namespace) -> str:
    if args.predictor_host:  # what KServe passes a transformer container
        host = args.predictor_host
        return host if "://" in host else f"http://{host}"
    return args.upstream


def serve(args: argparse.Namespace) -> None:
    """Build the app and run uvicorn until SIGTERM/SIGINT."""
    import uvicorn
    from prometheus_client import start_http_server

    from serving.gateway.app import Gateway
    from serving.gateway.edge_log import EdgeLog
    from serving.gateway.metrics import GatewayMetrics
    from serving.gateway.shadow import ShadowMirror
    from serving.gateway.upstream import Upstream

    keys = load_keys(args.host, args.keys_file)
    metrics = GatewayMetrics()
    edge_log = None
    if not args.no_log:
        edge_log = EdgeLog(args.log_root, metrics, max_rows=args.log_queue_rows)
    limits = Limits(max_body_bytes=args.max_body_bytes, max_string_bytes=args.max_string_bytes)
    upstream = Upstream(_upstream_url(args), timeout_s=args.upstream_timeout, poll_s=args.poll_s)
    shadow = None
    if args.shadow_share > 0:
        if edge_log is None:
            raise GatewayError("--shadow-share needs the inference log (drop --no-log)")
        shadow = ShadowMirror(
            upstream, edge_log, metrics, share=args.shadow_share, queue_size=args.shadow_queue,
            concurrency=args.shadow_concurrency, timeout_s=args.upstream_timeout,
        )  # fmt: skip
    app = Gateway(
        upstream,
        keys=keys,
        edge_log=edge_log,
        metrics=metrics,
        limits=limits,
        swap_grace_s=args.swap_grace_s,
        shadow=shadow,
    )
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_host or args.host,
                          registry=metrics.registry)  # fmt: skip
    log.info(
        "gateway on %s:%d -> %s (%s, log %s, shadow share %g)",
        args.host,
        args.port,
        _upstream_url(args),
        f"{len(keys)} key(s)" if keys else "no keys: loopback only",
        "off" if edge_log is None else args.log_root,
        args.shadow_share,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        limit_concurrency=args.max_connections,
        timeout_keep_alive=30,
    )


def background(run_dir: Path = DEFAULT_RUN_DIR) -> BackgroundProcess:
    """The gateway started by `start` from `run_dir` (pid, state and log files there)."""
    return BackgroundProcess(
        "gateway", run_dir, (Path(sys.executable).name, "python", "python3"), error=GatewayError
    )


def start(args: argparse.Namespace) -> dict:
    """Run `serve` with the same options in the background; returns its state once live."""
    load_keys(args.host, args.keys_file)  # refuse here, not in a background log
    server = background(args.run_dir)
    pid = server.running_pid()
    if pid is not None:
        raise GatewayError(
            f"a gateway started from {args.run_dir} runs (pid {pid})",
            hint="make serve-status to see it, make stop to stop it",
        )
    for port in filter(None, (args.port, args.metrics_port)):
        if not port_free(args.host, port):
            raise GatewayError(
                f"port {port} on {args.host} is already in use",
                hint="make stop (if it is ours), or other ports: make serve HTTP_PORT=8100 "
                "GATEWAY_METRICS_PORT=8103",
            )
    base = f"http://{client_host(args.host)}:{args.port}"
    server.start(
        [sys.executable, "-m", "serving.gateway", f"--log-level={args.log_level}", "serve"]
        + _serve_options(args),
        cwd=Path.cwd(),
        ready_url=f"{base}/v2/health/live",
        timeout_s=args.timeout,
        state={
            "url": base,
            "upstream": _upstream_url(args),
            "metrics_url": f"http://{client_host(args.metrics_host or args.host)}:"
            f"{args.metrics_port}/metrics"
            if args.metrics_port
            else None,
            "keys": str(args.keys_file) if args.keys_file else None,
            "log_root": None if args.no_log else str(args.log_root),
        },
    )
    return server.state() or {}


def _serve_options(args: argparse.Namespace) -> list[str]:
    """The `serve` command line that reproduces `args` (the options `start` was given)."""
    options = [
        f"--host={args.host}",
        f"--port={args.port}",
        f"--upstream={_upstream_url(args)}",
        f"--metrics-port={args.metrics_port}",
        f"--log-root={args.log_root}",
        f"--log-queue-rows={args.log_queue_rows}",
        f"--max-body-bytes={args.max_body_bytes}",
        f"--max-string-bytes={args.max_string_bytes}",
        f"--max-connections={args.max_connections}",
        f"--upstream-timeout={args.upstream_timeout}",
        f"--poll-s={args.poll_s}",
        f"--swap-grace-s={args.swap_grace_s}",
        f"--shadow-share={args.shadow_share}",
        f"--shadow-queue={args.shadow_queue}",
        f"--shadow-concurrency={args.shadow_concurrency}",
    ]
    if args.metrics_host:
        options.append(f"--metrics-host={args.metrics_host}")
    if args.keys_file:
        options.append(f"--keys-file={args.keys_file}")
    if args.no_log:
        options.append("--no-log")
    return options


def status(run_dir: Path) -> tuple[int, dict]:
    """(exit status, summary): 0 live and Triton ready, 1 live but Triton not ready, 3 stopped."""
    server = background(run_dir)
    pid, state = server.running_pid(), server.state() or {}
    summary = {key: state.get(key) for key in _STATUS_KEYS}
    summary.update(running=pid is not None, pid=pid, ready=False)
    if pid is None:
        return 3, summary
    summary["ready"] = http_ok(f"{state.get('url')}/v2/health/ready")
    return (0 if summary["ready"] else 1), summary


def _add_serve_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    run.add_argument("--port", "--http_port", type=int, default=8000, help="public HTTP port")
    run.add_argument("--upstream", default=DEFAULT_UPSTREAM, help="Triton's HTTP base URL")
    run.add_argument("--predictor_host", help="KServe's name for the upstream (host[:port])")
    run.add_argument("--model_name", help="accepted from KServe; the gateway serves every model")
    run.add_argument("--metrics-port", type=int, default=8003, help="Prometheus port (0: off)")
    run.add_argument("--metrics-host", help="metrics bind address (default: --host)")
    run.add_argument(
        "--keys-file",
        type=Path,
        default=Path(os.environ[KEYS_ENV]) if os.environ.get(KEYS_ENV) else None,
        help=f"hashed API keys (env {KEYS_ENV}); required beyond loopback",
    )
    run.add_argument("--log-root", type=Path, default=DEFAULT_LOG_ROOT, help="inference log root")
    run.add_argument("--no-log", action="store_true", help="do not write the inference log")
    run.add_argument("--log-queue-rows", type=int, default=100_000, help="log buffer bound")
    run.add_argument("--max-body-bytes", type=int, default=Limits.max_body_bytes, help="then 413")
    run.add_argument(
        "--max-string-bytes", type=int, default=Limits.max_string_bytes, help="per BYTES value"
    )
    run.add_argument("--max-connections", type=int, default=1024, help="then 503")
    run.add_argument("--upstream-timeout", type=float, default=10.0, help="seconds per request")
    run.add_argument(
        "--poll-s",
        type=_seconds,
        default=1.0,
        help="how often the gateway reads Triton's models, versions and configs (a request for "
        "a version it has not seen, or a canary request that failed, reads them at once)",
    )
    run.add_argument(
        "--swap-grace-s",
        type=float,
        default=3.0,
        help="how long a request for a version new to the gateway waits for its threshold "
        "(above Triton's --repository-poll-secs)",
    )
    run.add_argument(
        "--shadow-share",
        type=_share,
        default=0.0,
        help="share of answered requests mirrored to the model's shadow challenger, chosen by "
        "a hash of the request id (0: off; the config's serving.shadow_share)",
    )
    run.add_argument(
        "--shadow-queue", type=int, default=1000, help="mirrored requests waiting, then dropped"
    )
    run.add_argument(
        "--shadow-concurrency", type=int, default=4, help="mirrored requests in flight at once"
    )


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0.0:  # NaN too
        raise argparse.ArgumentTypeError(f"a period is over 0 seconds, got {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share is within [0, 1], got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = cli_parser(
        __doc__, prog="python -m serving.gateway", make="make serve / serve-status / stop"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, help="serve, start, status, stop or keys"
    )
    _add_serve_options(commands.add_parser("serve", help="run the gateway in the foreground"))
    begin = commands.add_parser("start", help="run `serve` in the background, wait until live")
    _add_serve_options(begin)
    begin.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it")
    for name, text in (
        ("status", "is it live, and is Triton behind it ready?"),
        ("stop", "stop it"),
    ):
        commands.add_parser(name, help=text)
    for sub in commands.choices.values():
        sub.add_argument(
            "--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="pid/state/log files"
        )

    keys = commands.add_parser("keys", help="manage API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, help="add")
    add = key_commands.add_parser("add", help="create a key; prints it once, stores its hash")
    add.add_argument("--name", required=True, help="the caller the key identifies")
    add.add_argument("--keys-file", type=Path, default=DEFAULT_KEYS_FILE, help="hashes file")
    add.add_argument("--model", action="append", help="limit the key to a model (repeatable)")
    add.add_argument(
        "--labels", action="store_true", help="allow the key to post late labels (/labels)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        if args.command == "start":
            state = start(args)
            print(json.dumps({key: state.get(key) for key in _STATUS_KEYS}, indent=2))
            return 0
        if args.command == "stop":
            stopped = background(args.run_dir).stop()
            print("stopped the gateway" if stopped else f"no gateway ran from {args.run_dir}")
            return 0
        if args.command == "status":
            code, summary = status(args.run_dir)
            print(json.dumps(summary, indent=2))
            if code == 3:
                return fail(f"no gateway runs from {args.run_dir}", "make serve", code=3)
            if code == 1:
                hint = "make serve-status, and read the Triton log it names"
                return fail("the gateway is live but Triton behind it is not ready", hint, code=1)
            return 0
        if args.command == "keys":
            key = add_key(args.keys_file, args.name, args.model, labels=args.labels)
            print(key)
            print(f"# stored the hash for '{args.name}' in {args.keys_file}; the key is shown "
                  "only now", file=sys.stderr)  # fmt: skip
            return 0
        serve(args)
    except (GatewayError, KeysFileError) as exc:
        return fail(exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
