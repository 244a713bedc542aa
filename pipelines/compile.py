"""Compile the training pipeline to the YAML that the Kubeflow UI uploads.

python -m pipelines.compile --output pipelines/compiled/training_pipeline.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

from configs import ConfigError
from configs.cli import cli_parser, fail, setup_logging

DEFAULT_OUTPUT = Path("pipelines/compiled/training_pipeline.yaml")


def compile_pipeline(output: Path = DEFAULT_OUTPUT, project: str = "fraud") -> Path:
    """Write the compiled pipeline, with the project's config as the default parameter."""
    from kfp import compiler

    from configs import load_config, run_parameters
    from pipelines.training import config_parameter, training_pipeline

    config = load_config(project)  # fail on a bad config before writing anything
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(
        training_pipeline,
        str(output),
        # On a cluster a winner is validated in the production Triton image.
        pipeline_parameters={
            "config_yaml": config_parameter(config),
            **run_parameters(config),  # shown beside the config in the Kubeflow UI
            "triton_validation": "production",
        },
    )
    return output


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        __doc__, prog="python -m pipelines.compile", make="make compile [PROJECT=...] [IMAGE=...]"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}"
    )
    parser.add_argument(
        "--project", default="fraud", help="config baked in as the default parameter"
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        output = compile_pipeline(args.output, args.project)
    except ConfigError as exc:
        return fail(exc)
    print(f"compiled {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
