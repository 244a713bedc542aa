"""Replay production-like traffic through the public endpoint, with labels arriving late.

    python -m monitoring.simulate --project fraud [--rows 5000 --rate 500 --label-delay 2]

The fraud project replays its later, drifted period (the generator's `drifted=True`); any
other project replays its holdout (the test split). Rows pass the data contract first, as
production traffic would upstream of the model. Every batch goes through `serving.client` to
the gateway, which logs it (as it logs any caller); each row's label is posted to the gateway
(`POST /v2/models/{m}/labels`, as an application's labeller would, with a key granted labels
when the gateway checks keys) `label_delay_s` after its prediction, under the row id the
gateway logged; the gateway writes it beside the prediction in the inference log. A batch's event
time (its first row's own time or, without a time column, a time spread evenly over the
simulated days) is sent with it, so a replay of a week fills a week of day partitions in a
few seconds.
"""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from configs import ConfigError, load_config
from configs.cli import cli_parser, fail, progress, setup_logging
from configs.schema import ProjectConfig
from features.timestamps import utc_times
from models.reference import TARGET_COLUMN
from serving.client import ClientError, ModelClient
from serving.gateway.edge_log import row_ids

MAX_CONSECUTIVE_ERRORS = 3
SIMULATED_START = pd.Timestamp("2026-07-01", tz="UTC")  # first day after the training period


@dataclass
class Replay:
    """What one simulation sent and logged."""

    rows_sent: int = 0
    requests: int = 0
    errors: int = 0
    labels_written: int = 0
    seconds: float = 0.0
    versions: tuple[str, ...] = ()
    first_timestamp: str = ""
    last_timestamp: str = ""


def traffic(config: ProjectConfig, rows: int, days: int, seed_offset: int = 1) -> pd.DataFrame:
    """The rows to replay: `request_id`, `timestamp`, the raw features and the 0/1 label."""
    from features.contract import clean_rows
    from features.split import features_and_target, split_data

    if config.data.source == "generator":
        from features.fraud_data import generate_transactions

        months = 6  # the generator's default period length
        n = max(100, rows * months * 31 * 5 // (4 * days))  # `rows` in `days`, 25% to spare
        seed = config.data.seed + seed_offset - 1
        raw = generate_transactions(n, seed=seed, months=months, drifted=True)
        clean = clean_rows(raw, config).clean
    else:
        from features.sources import load_raw

        clean = split_data(clean_rows(load_raw(config.data), config).clean, config)[2]
    if config.time_column:
        stamps = utc_times(clean[config.time_column], config.time_column, config.time_unit)
        clean = clean[(stamps < stamps.min() + pd.Timedelta(days=days)).to_numpy()]
    clean = clean.head(rows).reset_index(drop=True)
    X, y = features_and_target(clean, config)
    if config.time_column:
        stamps = utc_times(clean[config.time_column], config.time_column, config.time_unit)
    else:
        offsets = np.linspace(0, days * 86_400, len(clean), endpoint=False)
        stamps = pd.Series(SIMULATED_START + pd.to_timedelta(offsets, unit="s"))
    ids = (
        clean[config.id_column].astype(str)
        if config.id_column
        else pd.Series([f"{config.name}-{i}" for i in range(len(clean))])
    )
    if seed_offset != 1:  # another replay: other rows, ids that cannot collide
        ids = f"r{seed_offset}-" + ids
    meta = pd.DataFrame({"request_id": ids.to_numpy(), "timestamp": stamps.to_numpy()})
    return pd.concat([meta, X, y.rename(TARGET_COLUMN)], axis=1)


def replay(
    rows: pd.DataFrame,
    client: ModelClient,
    *,
    rate_per_s: float,
    batch_rows: int,
    label_delay_s: float,
) -> Replay:
    """Send `rows` (from `traffic`) at `rate_per_s`; post each batch's labels after the delay."""
    result, versions = Replay(), set()
    pending: deque[tuple[float, pd.DataFrame]] = deque()
    features = [c for c in rows.columns if c not in ("request_id", "timestamp", TARGET_COLUMN)]
    started = time.monotonic()
    consecutive_errors = 0
    with progress(total=len(rows), desc="replay", unit="rows") as sent:
        for begin in range(0, len(rows), batch_rows):
            batch = rows.iloc[begin : begin + batch_rows]
            _sleep_until(started + begin / rate_per_s)
            request_id = _request_id(batch["request_id"].iloc[0])
            try:
                client.predict(batch[features], request_id, batch["timestamp"].iloc[0])
            except ClientError:
                result.errors += 1
                consecutive_errors += 1
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                    raise
                continue
            consecutive_errors = 0
            result.requests += 1
            result.rows_sent += len(batch)
            sent.update(len(batch))
            versions.add(client.last_version)
            labels = batch[[TARGET_COLUMN]].assign(request_id=row_ids(request_id, len(batch)))
            pending.append((time.monotonic() + label_delay_s, labels))
            result.labels_written += _send_due_labels(pending, client)
    while pending:
        _sleep_until(pending[0][0])
        result.labels_written += _send_due_labels(pending, client)
    result.seconds = round(time.monotonic() - started, 2)
    result.versions = tuple(sorted(versions))
    if len(rows):
        result.first_timestamp = str(rows["timestamp"].iloc[0])
        result.last_timestamp = str(rows["timestamp"].iloc[-1])
    return result


def _send_due_labels(pending: deque, client: ModelClient) -> int:
    due = []
    while pending and pending[0][0] <= time.monotonic():
        due.append(pending.popleft()[1])
    if not due:
        return 0
    labelled = pd.concat(due)
    return client.send_labels(labelled["request_id"].tolist(), labelled[TARGET_COLUMN].tolist())


def _request_id(row_id: object) -> str:
    """A batch's request id from its first row's id, in the characters X-Request-ID allows."""
    return re.sub(r"[^A-Za-z0-9._:\-]", "_", str(row_id))[:100]


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli_parser(
        __doc__, prog="python -m monitoring.simulate", make="make simulate [PROJECT=...]"
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument("--url", default="127.0.0.1:8000", help="the gateway's host:port")
    parser.add_argument(
        "--api-key", help="API key, when the gateway checks keys (one granted labels)"
    )
    parser.add_argument("--rows", type=int, help="rows to replay (config: simulation.rows)")
    parser.add_argument("--rate", type=float, help="rows per second (simulation.rate_per_s)")
    parser.add_argument("--label-delay", type=float, help="seconds (simulation.label_delay_s)")
    parser.add_argument("--days", type=int, help="simulated days (simulation.days)")
    parser.add_argument("--seed-offset", type=int, default=1, help="another replay: 2, 3, ...")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        sim = config.monitoring.simulation
        rows = traffic(config, args.rows or sim.rows, args.days or sim.days, args.seed_offset)
        client = ModelClient(config.model_name, args.url, api_key=args.api_key)
        result = replay(
            rows,
            client,
            rate_per_s=args.rate or sim.rate_per_s,
            batch_rows=sim.batch_rows,
            label_delay_s=sim.label_delay_s if args.label_delay is None else args.label_delay,
        )
        client.close()
    except (ConfigError, ClientError) as exc:
        return fail(exc, f"make serve PROJECT={args.project}, then make serve-status")
    print(" ".join(f"{k}={v}" for k, v in asdict(result).items()))
    print("the gateway wrote the predictions and labels to its inference log (--log-root)")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
