"""Put a project's champion into the Triton model repository (one Triton version per
registry version), from the parity-checked ONNX the pipeline logged with it.

    python -m serving.deploy --project fraud --repo local_outputs/triton_repository
    python -m serving.deploy --project fraud --repo /models --backend onnxruntime --kind KIND_GPU
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from configs import ConfigError, load_config
from configs.console import cli_parser, fail, setup_logging
from models.registry import RegistryError, champion_version, configure_tracking
from serving.model_repository import (
    BACKENDS,
    KINDS,
    list_versions,
    remove_version,
    triton_config,
    write_version,
)

ONNX_ARTIFACT = "onnx/model.onnx"  # where the pipeline's export step logs the ONNX in the run
SERVING_REPOSITORY = Path("local_outputs/triton_repository")  # what `make serve` serves


class DeployError(RuntimeError):
    """The champion cannot be deployed; the message says why."""


def champion_onnx(model_name: str) -> tuple[str, bytes, dict[str, str]]:
    """The champion's version, the ONNX bytes its pipeline run logged, and its version tags."""
    import mlflow

    version = champion_version(model_name)
    if version is None:
        raise DeployError(
            f"model '{model_name}' has no champion yet (no version has passed the gate and "
            "infra validation)"
        )
    info = mlflow.MlflowClient().get_model_version(model_name, version)
    run_id = info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=ONNX_ARTIFACT, dst_path=tmp
            )
        except mlflow.exceptions.MlflowException as exc:
            raise DeployError(f"version {version} has no {ONNX_ARTIFACT} in run {run_id}") from exc
        return version, Path(path).read_bytes(), dict(info.tags)


def deploy_champion(
    model_name: str, repo: Path, *, backend: str = "python", kind: str = "KIND_CPU"
) -> tuple[str, bool]:
    """Make the champion the version Triton serves; returns (version, written).

    The champion is written unless present, and newer versions (left by a champion that was
    rolled back) are removed, since Triton serves the latest version in the repository.
    `backend` and `kind` choose the variant (see `triton_config`): the local Triton runs the
    python backend on CPU; the cluster's Triton image runs "onnxruntime", on KIND_GPU or
    KIND_CPU.
    """
    version, onnx_bytes, tags = champion_onnx(model_name)
    for newer in [v for v in list_versions(repo, model_name) if v > int(version)]:
        remove_version(repo, model_name, newer)
    if int(version) in list_versions(repo, model_name):
        return version, False
    parameters = {"threshold": tags["threshold"], "registry_version": version}
    config = triton_config(
        model_name, onnx_bytes, parameters=parameters, backend=backend, kind=kind
    )
    write_version(repo, model_name, int(version), onnx_bytes, config, backend=backend)
    return version, True


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(
        __doc__,
        prog="python -m serving.deploy",
        make="make serve [PROJECT=...] (then starts Triton)",
    )
    parser.add_argument("--project", default="fraud", help="config name or YAML path")
    parser.add_argument(
        "--repo",
        type=Path,
        default=SERVING_REPOSITORY,
        help=f"Triton model repository to write (default: {SERVING_REPOSITORY}, what make serve "
        "serves)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="python",
        help="python: the local Triton (make serve); onnxruntime: Triton's own ONNX Runtime "
        "backend, as the cluster's official Triton image runs it",
    )
    parser.add_argument(
        "--kind", choices=KINDS, default="KIND_CPU", help="KIND_GPU needs --backend onnxruntime"
    )
    args = parser.parse_args(argv)
    if args.backend == "python" and args.kind == "KIND_GPU":
        parser.error("--kind KIND_GPU needs --backend onnxruntime")
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        configure_tracking(Path.cwd())
        version, written = deploy_champion(
            config.model_name, args.repo, backend=args.backend, kind=args.kind
        )
    except (ConfigError, RegistryError, DeployError) as exc:
        return fail(exc, f"make pipeline PROJECT={args.project}")
    state = "written to" if written else "already in"
    print(f"{config.model_name} version {version} (champion) {state} {args.repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
