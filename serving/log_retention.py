"""Delete the inference log's day partitions older than a number of days (every model, every kind).

A day is the partition's `date=` folder: the event time a client stated, else the arrival
time (`serving.inference_log`). Predictions, labels, shadow rows and files set aside as
unreadable expire alike; a label's day is never earlier than its prediction's. Each day is
renamed out of readers' sight before it is removed, so the gateway, the monitor and the canary
controller may run meanwhile; a run cut short is finished by the next.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from configs.cli import cli_parser, fail, setup_logging
from serving.inference_log import delete_day, expired_days, unfinished_deletions


def apply_retention(
    root: Path, keep_days: int, today: pd.Timestamp, *, dry_run: bool = False
) -> list[Path]:
    """Delete (or with `dry_run`, only list) the expired days under `root`; returns them.

    Leftovers of a cut-short run (already out of readers' sight) are removed first, not listed.
    """
    if not dry_run:
        for leftover in unfinished_deletions(root):
            shutil.rmtree(leftover)
    days = expired_days(root, keep_days, today)
    if not dry_run:
        for day in days:
            delete_day(day)
    return days


def _parser() -> argparse.ArgumentParser:
    parser = cli_parser(
        __doc__,
        prog="python -m serving.log_retention",
        make="make log-retention [KEEP_DAYS=90]",
        epilog="""
            python -m serving.log_retention --log-root DIR --keep-days 90 [--dry-run]

            Keeps the last --keep-days days up to today (UTC; --today to state another day).
            On the cluster the CronJob inference-log-retention runs it daily
            (infra/k8s/base/inference-log.yaml).
        """,
    )
    parser.add_argument(
        "--log-root", type=Path, required=True, help="the gateways' --log-root (the log's root)"
    )
    parser.add_argument(
        "--keep-days", type=int, required=True, help="days kept, today included (at least 1)"
    )
    parser.add_argument(
        "--today", type=pd.Timestamp, help="the day retention counts back from (default: today)"
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.keep_days < 1:
        return fail(f"--keep-days must be at least 1, got {args.keep_days}")
    if not args.log_root.is_dir():
        return fail(f"no inference log at {args.log_root} (--log-root)", code=1)
    today = args.today if args.today is not None else pd.Timestamp.now(tz="UTC")
    try:
        days = apply_retention(args.log_root, args.keep_days, today, dry_run=args.dry_run)
    except OSError as exc:
        return fail(f"retention stopped at {exc.filename or args.log_root}: {exc}", code=1)
    verb = "would delete" if args.dry_run else "deleted"
    for day in days:
        print(f"{verb} {day.relative_to(args.log_root)}")
    print(
        f"{verb} {len(days)} day partition(s) under {args.log_root}, keeping "
        f"{args.keep_days} day(s) up to {pd.Timestamp(today).strftime('%Y-%m-%d')}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
