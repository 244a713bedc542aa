"""Move a project's `champion` alias back to the previous champion (history is kept).

python -m pipelines.rollback --project fraud
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from configs import ConfigError, load_config
from models.registry import RegistryError, configure_tracking, rollback


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", default="fraud")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.project)
        configure_tracking(Path.cwd())
        version = rollback(config.model_name)
    except (ConfigError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{config.model_name}: champion is now version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
