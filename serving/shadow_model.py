"""The shadow challenger in the Triton model repository: a model of its own beside the champion.

A challenger held for shadow traffic (`gate.shadow_before_promotion`) is published as the Triton
model `<model>__shadow` with one version, its registry version, and the config parameters the
gateway reads: `threshold.v<N>` (its decision threshold), `registry_version` and `shadow_of`
(the public model it shadows). A model of its own, not a second version of the champion's
model, because Triton answers an unversioned request with the latest version it holds: a newer
challenger loaded beside the champion would take the callers' traffic. So the champion's model,
its version policy and every caller's answer stay exactly as they are; the gateway mirrors a
share of requests to `<model>__shadow` and never routes a caller to it.

Publishing verifies the ONNX bytes against the version's registered `onnx_sha256` (as
`serving.deploy` does for a champion); withdrawing removes the whole shadow model.
"""

from __future__ import annotations

from pathlib import Path

SHADOW_SUFFIX = "__shadow"
SHADOW_OF = "shadow_of"  # config parameter: the public model a shadow model mirrors


def shadow_model_name(model: str) -> str:
    """The Triton model that serves `model`'s shadow challenger."""
    return f"{model}{SHADOW_SUFFIX}"


def is_shadow_model(name: str) -> bool:
    """Is `name` a shadow model (never served to callers)?"""
    return name.endswith(SHADOW_SUFFIX)


def publish_shadow(
    repo: Path,
    model: str,
    version: str,
    *,
    backend: str = "python",
    kind: str = "KIND_CPU",
    triton_url: str | None = None,
    ready_timeout_s: float = 120.0,
) -> Path:
    """Serve registry `version` of `model` as its shadow model from `repo` (replacing any
    earlier shadow version); waits for Triton at `triton_url` to report it ready.

    Raises:
        ArtifactIntegrityError: The registry's bytes are not the registered ones.
        DeployError: No `threshold` tag, or Triton did not load it in time.
    """
    from serving.decision import threshold_parameters
    from serving.deploy import DeployError, registry_onnx, wait_ready
    from serving.model_repository import (
        list_versions,
        remove_version,
        triton_config,
        write_config,
        write_version,
    )

    onnx_bytes, tags = registry_onnx(model, version)
    if "threshold" not in tags:
        raise DeployError(f"version {version} of '{model}' has no `threshold` tag")
    name, target = shadow_model_name(model), int(version)
    parameters = {"registry_version": version, SHADOW_OF: model}
    config = triton_config(
        name,
        onnx_bytes,
        parameters=parameters | threshold_parameters({target: float(tags["threshold"])}),
        backend=backend,
        kind=kind,
    )
    present = list_versions(repo, name)
    if target in present:
        write_config(repo, name, config)
    else:
        path = write_version(repo, name, target, onnx_bytes, config, backend=backend)
    for other in (v for v in present if v != target):
        remove_version(repo, name, other)
    if triton_url:
        wait_ready(triton_url, name, target, ready_timeout_s)
    return Path(repo) / name / str(target) if target in present else path


def withdraw_shadow(repo: Path, model: str) -> bool:
    """Remove `model`'s shadow model from `repo` (Triton unloads it); whether one was there."""
    from serving.model_repository import list_versions, remove_version

    name = shadow_model_name(model)
    versions = list_versions(repo, name)
    for version in versions:
        remove_version(repo, name, version)
    return bool(versions)
