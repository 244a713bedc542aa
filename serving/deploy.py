"""Put a project's champion into the Triton model repository (one Triton version per
registry version), from the parity-checked ONNX the pipeline logged with it.

    python -m serving.deploy --project fraud --repo local_outputs/triton_repository
    python -m serving.deploy --project fraud --repo /models --backend onnxruntime --kind KIND_GPU
    python -m serving.deploy --project fraud --triton-url 127.0.0.1:8010 --pushgateway URL

Then the challengers follow the registry (`serving.challenger_model.sync_challengers`): the
versions behind the `shadow` and `canary` aliases are published as `<model>__shadow` and
`<model>__canary` (the canary at its `canary.share` tag), and withdrawn without an alias.

The ONNX bytes are verified against the version's `onnx_sha256` tag before anything is
written: a changed artifact is refused (exit 1) and, with `--pushgateway`, reported as
`mlops_artifact_verification_failed` = 1 (alert ArtifactVerificationFailed). Order: the target
version is written first, newer versions are removed (Triton serves the latest version
present), Triton is waited for (with `--triton-url`), and only then are older versions
pruned to `serving.keep_versions`; a rollback on an empty repository leaves the target.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from configs import ConfigError, load_config
from configs.cli import UserError, cli_parser, fail, setup_logging
from models.registry import (
    ONNX_SHA256_TAG,
    ArtifactIntegrityError,
    ChampionMovedError,
    RegistryError,
    champion_version,
    configure_tracking,
    move_champion,
    promotion_lock,
    verify_sha256,
)
from serving.challenger_model import sync_challengers
from serving.decision import threshold_parameters
from serving.model_repository import (
    BACKENDS,
    KINDS,
    MODEL_FILENAME,
    list_versions,
    remove_version,
    triton_config,
    write_config,
    write_version,
)

logger = logging.getLogger(__name__)

# name -> labels besides the grouping label `project`, pushed under job `deploy` by
# `serving.deploy --pushgateway` (1: an artifact whose bytes changed was refused); part of the
# metric contract (`monitoring.contract`).
DEPLOY_JOB = "deploy"
ARTIFACT_VERIFICATION_FAILED = "mlops_artifact_verification_failed"
DEPLOY_METRICS: dict[str, tuple[str, ...]] = {ARTIFACT_VERIFICATION_FAILED: ("model", "version")}

ONNX_ARTIFACT = "onnx/model.onnx"  # where the pipeline's export step logs the ONNX in the run
SERVING_REPOSITORY = Path("local_outputs/triton_repository")  # what `make serve` serves
READY_TIMEOUT_S = 120.0


class DeployError(UserError, RuntimeError):
    """The champion cannot be deployed; the message says why."""


def registry_onnx(model_name: str, version: str) -> tuple[bytes, dict[str, str]]:
    """A version's ONNX bytes (from its pipeline run), verified against its `onnx_sha256`
    tag, and its version tags.

    Raises:
        DeployError: The run holds no ONNX artifact.
        ArtifactIntegrityError: The bytes are not the ones registered.
    """
    import mlflow

    info = mlflow.MlflowClient().get_model_version(model_name, version)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=info.run_id, artifact_path=ONNX_ARTIFACT, dst_path=tmp
            )
        except (mlflow.exceptions.MlflowException, OSError) as exc:
            raise DeployError(
                f"version {version} of '{model_name}' has no {ONNX_ARTIFACT} in run {info.run_id}",
                hint="register a complete version: make pipeline",
            ) from exc
        onnx_bytes = Path(path).read_bytes()
    tags = dict(info.tags)
    verify_sha256(onnx_bytes, tags, ONNX_SHA256_TAG, name=model_name, version=version)
    return onnx_bytes, tags


def champion_onnx(model_name: str) -> tuple[str, bytes, dict[str, str]]:
    """The champion's version, its verified ONNX bytes and its version tags."""
    version = champion_version(model_name)
    if version is None:
        raise DeployError(
            f"model '{model_name}' has no champion yet (no version has passed the gate and "
            "infra validation)"
        )
    return (version, *registry_onnx(model_name, version))


def _thresholds(model_name: str, versions: list[int], required: set[int]) -> dict[int, float]:
    """Each version's registry `threshold` tag; a version in `required` must have one (the
    others are about to be removed, and are left out when the registry lacks them)."""
    import mlflow

    client, thresholds = mlflow.MlflowClient(), {}
    for version in versions:
        try:
            value = client.get_model_version(model_name, str(version)).tags.get("threshold")
        except mlflow.exceptions.MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST" or version in required:
                raise DeployError(
                    f"cannot read version {version} of '{model_name}': {exc}"
                ) from exc
            continue
        if value is None and version in required:
            raise DeployError(
                f"version {version} of '{model_name}' has no `threshold` tag, so the gateway "
                "could not decide with it",
                hint="register a complete version: make pipeline",
            )
        if value is not None:
            thresholds[version] = float(value)
    return thresholds


def deploy_version(
    model_name: str,
    version: str,
    repo: Path,
    *,
    backend: str = "python",
    kind: str = "KIND_CPU",
    keep: int = 2,
    triton_url: str | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> bool:
    """Make `version` the one Triton serves from `repo`; returns whether it was written.

    Order, so that Triton always has a version: write the target (verified bytes) unless
    present, remove newer versions (Triton serves the latest one), wait until Triton at
    `triton_url` reports the target ready, then prune older versions to `keep` in all. The
    model config carries `threshold.v<N>` for every version present (serving.decision).
    `backend` and `kind` choose the variant (see `triton_config`): the local Triton runs the
    python backend on CPU; the cluster's Triton image runs "onnxruntime" on KIND_GPU or CPU.

    Raises:
        ArtifactIntegrityError: The registry's or the repository's bytes are not the
            registered ones.
        DeployError: A threshold is missing, or Triton did not load the target in time.
    """
    onnx_bytes, tags = registry_onnx(model_name, version)
    target, present = int(version), list_versions(repo, model_name)
    older = [v for v in present if v < target]
    kept = [*older[len(older) - (keep - 1) :], target] if keep > 1 else [target]
    thresholds = _thresholds(model_name, sorted({*present, target}), set(kept))
    parameters = {"threshold": tags["threshold"], "registry_version": version}
    config = triton_config(
        model_name,
        onnx_bytes,
        parameters=parameters | threshold_parameters(thresholds),
        backend=backend,
        kind=kind,
    )
    written = target not in present
    if written:
        write_version(repo, model_name, target, onnx_bytes, config, backend=backend)
    else:
        served = (Path(repo) / model_name / str(target) / MODEL_FILENAME).read_bytes()
        verify_sha256(served, tags, ONNX_SHA256_TAG, name=model_name, version=version)
        write_config(repo, model_name, config)
    for newer in (v for v in present if v > target):
        remove_version(repo, model_name, newer)
    if triton_url:
        wait_ready(triton_url, model_name, target, ready_timeout_s)
    for old in (v for v in older if v not in kept):
        remove_version(repo, model_name, old)
    return written


def deploy_champion(
    model_name: str,
    repo: Path,
    *,
    backend: str = "python",
    kind: str = "KIND_CPU",
    keep: int = 2,
    triton_url: str | None = None,
) -> tuple[str, bool]:
    """Make the champion the version Triton serves; returns (version, written)."""
    version = champion_version(model_name)
    if version is None:
        raise DeployError(
            f"model '{model_name}' has no champion yet (no version has passed the gate and "
            "infra validation)"
        )
    written = deploy_version(
        model_name, version, repo, backend=backend, kind=kind, keep=keep, triton_url=triton_url
    )
    return version, written


def switch_champion(
    model_name: str,
    target: str,
    *,
    expected: str | None,
    event: str,
    repo: Path | None,
    keep: int = 2,
    backend: str = "python",
    kind: str = "KIND_CPU",
    triton_url: str | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> None:
    """Publish `target` to `repo`, then move `champion` from `expected` to it, under the
    model's promotion lock; the repository is put back when the move fails.

    Promotions and rollbacks both come here: the repository serves the version before the
    alias names it, and the alias only moves if it still names `expected` (compare-and-swap).

    Raises:
        ChampionMovedError: The champion is no longer `expected` (the repository is unchanged).
        ArtifactIntegrityError, DeployError: Publishing failed (alias unchanged).
    """
    with promotion_lock(model_name):
        current = champion_version(model_name)
        if current != expected:
            raise ChampionMovedError(model_name, current, expected, target)
        publish = partial(deploy_version, backend=backend, kind=kind, keep=keep,
                          triton_url=triton_url, ready_timeout_s=ready_timeout_s)  # fmt: skip
        try:
            if repo is not None:
                publish(model_name, target, repo)
            if target != expected:
                move_champion(model_name, target, expected=expected, event=event)
        except BaseException:
            if repo is not None:
                _restore(model_name, expected, target, repo, publish)
            raise


def _restore(
    model_name: str,
    previous: str | None,
    target: str,
    repo: Path,
    publish: Callable[[str, str, Path], bool],
) -> None:
    """Put the repository back to serving `previous` after a failed switch (best effort: the
    original failure is what the caller reports)."""
    try:
        if previous is not None:
            publish(model_name, previous, repo)
        elif int(target) in list_versions(repo, model_name):
            remove_version(repo, model_name, int(target))
    except Exception as exc:  # noqa: BLE001 - logged; the switch's own error is raised
        logger.error(
            "could not put %s back to version %s after a failed switch: %s; run "
            "`python -m serving.deploy` to bring it in line",
            repo,
            previous,
            exc,
        )


def local_triton_url(repo: Path) -> str | None:
    """The HTTP URL of the Triton `make serve` started, when it runs and polls `repo`."""
    from serving.launcher import TritonServer

    server = TritonServer()
    state = server.state()
    if state is None or server.running_pid() is None or state["model_control"] != "poll":
        return None
    return str(state["http_url"]) if Path(state["repo"]).resolve() == repo.resolve() else None


def wait_ready(url: str, model_name: str, version: int, timeout_s: float) -> None:
    """Wait until Triton at `url` reports `version` of the model ready.

    Raises:
        DeployError: Not ready within `timeout_s`.
    """
    import requests

    base = url if "://" in url else f"http://{url}"
    ready = f"{base.rstrip('/')}/v2/models/{model_name}/versions/{version}/ready"
    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        try:
            answer = requests.get(ready, timeout=5)
            if answer.status_code == 200:
                return
            last = f"HTTP {answer.status_code}"
        except requests.RequestException as exc:
            last = exc.__class__.__name__
        time.sleep(1.0)
    raise DeployError(
        f"Triton at {base} did not report version {version} of '{model_name}' ready within "
        f"{timeout_s:g} s ({last})",
        hint="make serve-status (the server log names the load error)",
    )


def push_verification(url: str, project: str, model_name: str, version: str, failed: bool) -> None:
    """Set `mlops_artifact_verification_failed{project, model, version}` on the Pushgateway."""
    from serving.pushgateway import Sample, push

    sample = Sample(ARTIFACT_VERIFICATION_FAILED, float(failed), {"model": model_name,
                                                                  "version": version})  # fmt: skip
    push(url, DEPLOY_JOB, [sample], {"project": project}, DEPLOY_METRICS)


def _push_quietly(url: str, project: str, model_name: str, version: str, failed: bool) -> None:
    from serving.pushgateway import PushError

    try:
        push_verification(url, project, model_name, version, failed)
    except PushError as exc:
        logger.error("%s", exc)


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
    parser.add_argument(
        "--triton-url",
        help="Triton HTTP address polling --repo: older versions are pruned only once it "
        "reports the champion ready (default: the Triton make serve started, if it polls --repo)",
    )
    parser.add_argument(
        "--pushgateway",
        help="Pushgateway URL: push mlops_artifact_verification_failed (1 when the artifact "
        "does not match its registered SHA-256)",
    )
    args = parser.parse_args(argv)
    if args.backend == "python" and args.kind == "KIND_GPU":
        parser.error("--kind KIND_GPU needs --backend onnxruntime")
    setup_logging(args.log_level)
    try:
        config = load_config(args.project)
        configure_tracking(Path.cwd())
        triton_url = args.triton_url or local_triton_url(args.repo)
        version, written = deploy_champion(
            config.model_name,
            args.repo,
            backend=args.backend,
            kind=args.kind,
            keep=config.serving.keep_versions,
            triton_url=triton_url,
        )
        challengers = sync_challengers(config.model_name, args.repo, backend=args.backend,
                                       kind=args.kind, triton_url=triton_url)  # fmt: skip
    except ArtifactIntegrityError as exc:
        if args.pushgateway:
            _push_quietly(args.pushgateway, config.name, exc.model_name, exc.version, True)
        return fail(exc, code=1)
    except (ConfigError, RegistryError, DeployError) as exc:
        return fail(exc, f"make pipeline PROJECT={args.project}")
    if args.pushgateway:
        _push_quietly(args.pushgateway, config.name, config.model_name, version, False)
    state = "written to" if written else "already in"
    print(f"{config.model_name} version {version} (champion) {state} {args.repo}")
    for role, held in challengers.items():
        print(f"{config.model_name} {role}: " + (f"version {held}" if held else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
