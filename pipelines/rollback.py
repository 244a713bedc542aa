"""Move a project's `champion` alias back to the previous champion (history is kept), with the
Triton serving repository brought in line first, so Triton serves it before the alias names it.

python -m pipelines.rollback --project fraud              # undo the latest promotion
python -m pipelines.rollback --project fraud --to 3       # back to a version that was champion
python -m pipelines.rollback --project fraud --history    # list the champion moves
python -m pipelines.rollback --project fraud --repair     # record where the alias really is

Idempotent: a second rollback after a completed one moves nothing and only brings the
repository in line; after an interrupted one it finishes the same move. It refuses when the
champion history and the alias disagree, and says how to repair.
"""

from __future__ import annotations

import sys
from pathlib import Path

from configs import ConfigError, load_config
from configs.cli import cli_parser, fail, setup_logging
from models.registry import (
    RegistryError,
    champion_history,
    configure_tracking,
    plan_rollback,
    promotion_lock,
    repair_history,
)
from serving.deploy import SERVING_REPOSITORY, DeployError, local_triton_url, switch_champion


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        __doc__, prog="python -m pipelines.rollback", make="make rollback [PROJECT=...]"
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument(
        "--repo",
        type=Path,
        default=SERVING_REPOSITORY,
        help="Triton repository to bring in line (default: what make serve serves)",
    )
    parser.add_argument("--to", metavar="VERSION", help="a version that was champion before")
    parser.add_argument(
        "--triton-url",
        help="Triton HTTP address polling --repo: the alias moves once it serves the version "
        "(default: the Triton make serve started, if it polls --repo)",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--history", action="store_true", help="list the champion moves")
    action.add_argument(
        "--repair",
        action="store_true",
        help="when history and alias disagree: record the alias's version as champion",
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        configure_tracking(Path.cwd())
        name = config.model_name
        if args.history:
            for entry in champion_history(name):
                print(f"{entry['seq']:>4} {entry['at']} v{entry['version']} (from "
                      f"v{entry['from']}) {entry['state']}: {entry['event']}")  # fmt: skip
            return 0
        if args.repair:
            version, repaired = repair_history(name)
            state = "repaired" if repaired else "already agrees with the alias"
            print(f"{name}: champion history {state}; champion is version {version}")
            return 0
        with promotion_lock(name):
            plan = plan_rollback(name, args.to)
            switch_champion(
                name, plan.target, expected=plan.current,
                event=f"rollback from version {plan.current}", repo=args.repo,
                keep=config.serving.keep_versions,
                triton_url=args.triton_url or local_triton_url(args.repo),
            )  # fmt: skip
    except (ConfigError, RegistryError, DeployError) as exc:
        # no champion, or none before it: a (second) promoted run gives one to return to
        return fail(exc, f"make pipeline PROJECT={args.project}")
    moved = "is now" if plan.moves else "was already"
    print(f"{name}: champion {moved} version {plan.target}, served from {args.repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
