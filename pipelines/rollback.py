"""Move a project's `champion` alias back to the previous champion (history is kept), and
bring the Triton serving repository in line so Triton serves it again.

python -m pipelines.rollback --project fraud
"""

from __future__ import annotations

import sys
from pathlib import Path

from configs import ConfigError, load_config
from configs.console import cli_parser, fail, setup_logging
from models.registry import RegistryError, configure_tracking, rollback
from serving.deploy import SERVING_REPOSITORY, DeployError, deploy_champion


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
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        configure_tracking(Path.cwd())
        version = rollback(config.model_name)
        deploy_champion(config.model_name, args.repo)
    except (ConfigError, RegistryError, DeployError) as exc:
        # no champion, or none before it: a (second) promoted run gives one to return to
        return fail(exc, f"make pipeline PROJECT={args.project}")
    print(f"{config.model_name}: champion is now version {version}, served from {args.repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
