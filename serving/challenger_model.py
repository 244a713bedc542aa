"""Challenger slots in the Triton model repository: a model of its own beside the champion.

A challenger held back from promotion is published as the Triton model `<model>__<role>`:
- `shadow` (`gate.shadow_before_promotion`): the gateway mirrors a share of answered requests
  to it, off the request path, and never routes a caller to it;
- `canary` (`gate.canary_before_promotion`): the gateway answers the share of unversioned
  requests named by the config parameter `canary_share` from it, moved step by step by
  `monitoring.canary`.

One version, its registry version, with the config parameters the gateway reads:
`threshold.v<N>` (its decision threshold), `registry_version`, `challenger_of` (the public model)
and, for a canary, `canary_share`. A model of its own, not a second version of the champion's
model, because Triton answers an unversioned request with the latest version it holds: a newer
challenger loaded beside the champion would take all of the callers' traffic.

Publishing verifies the ONNX bytes against the version's registered `onnx_sha256` (as
`serving.deploy` does for a champion); withdrawing removes the whole challenger model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

Role = Literal["shadow", "canary"]
SHADOW: Role = "shadow"
CANARY: Role = "canary"
ROLES: tuple[Role, ...] = (SHADOW, CANARY)
CHALLENGER_OF = "challenger_of"  # config parameter: the public model a challenger stands beside
CANARY_SHARE = "canary_share"  # config parameter: the share of callers a canary answers


def challenger_model_name(model: str, role: Role) -> str:
    """The Triton model that serves `model`'s challenger in `role`."""
    return f"{model}__{role}"


def is_challenger_model(name: str, role: Role | None = None) -> bool:
    """Is `name` a challenger model (of `role`, or of any role)? Never addressed by callers."""
    return any(name.endswith(f"__{r}") for r in ((role,) if role else ROLES))


def publish_challenger(
    repo: Path,
    model: str,
    version: str,
    role: Role,
    *,
    share: float | None = None,
    backend: str = "python",
    kind: str = "KIND_CPU",
    triton_url: str | None = None,
    ready_timeout_s: float = 120.0,
) -> Path:
    """Serve registry `version` of `model` as its `role` challenger from `repo` (replacing any
    earlier version there; a canary with `share`, by default its `canary.share` version tag);
    waits for Triton at `triton_url` to report it ready. Only the config changes when the
    version is already there (a new share), and only when its text does.

    Raises:
        ArtifactIntegrityError: The registry's bytes are not the registered ones.
        DeployError: No `threshold` tag, or Triton did not load it in time.
        ValueError: A canary without a share within [0, 1].
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
    if role == "canary" and share is None:
        share = float(tags.get(f"{CANARY}.share", "nan"))
    if role == "canary" and (share is None or not 0.0 <= share <= 1.0):
        raise ValueError(f"a canary needs a share within [0, 1], got {share}")
    if "threshold" not in tags:
        raise DeployError(f"version {version} of '{model}' has no `threshold` tag")
    name, target = challenger_model_name(model, role), int(version)
    parameters = {"registry_version": version, CHALLENGER_OF: model}
    if role == "canary":
        parameters[CANARY_SHARE] = f"{share:g}"
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
        write_version(repo, name, target, onnx_bytes, config, backend=backend)
    for other in (v for v in present if v != target):
        remove_version(repo, name, other)
    if triton_url:
        wait_ready(triton_url, name, target, ready_timeout_s)
    return Path(repo) / name / str(target)


def withdraw_challenger(repo: Path, model: str, role: Role) -> bool:
    """Remove `model`'s `role` challenger from `repo` (Triton unloads it); whether one was
    there."""
    from serving.model_repository import list_versions, remove_version

    name = challenger_model_name(model, role)
    versions = list_versions(repo, name)
    for version in versions:
        remove_version(repo, name, version)
    return bool(versions)


def promote_challenger(
    model: str,
    role: Role,
    version: str,
    *,
    expected: str | None,
    event: str,
    outcome: str,
    repo: Path | None,
    keep: int = 2,
    triton_url: str | None = None,
) -> None:
    """Make the `role` challenger `version` champion: publish it and move `champion` from
    `expected` (compare-and-swap, `serving.deploy.switch_champion`, history `event`), then
    release its alias (tag `<role>.outcome`) and withdraw its challenger model. Call it under
    the promotion lock, once the alias is known to still name `version`.

    Raises:
        ChampionMovedError: The champion is no longer `expected` (nothing moved).
        ArtifactIntegrityError, DeployError: Publishing failed (nothing moved).
    """
    from models.registry import release_challenger
    from serving.deploy import switch_champion

    switch_champion(model, version, expected=expected, event=event, repo=repo, keep=keep,
                    triton_url=triton_url)  # fmt: skip
    release_challenger(model, role, version, outcome)
    if repo is not None:
        withdraw_challenger(repo, model, role)


def retire_challenger(
    model: str, role: Role, version: str | None, outcome: str, *, repo: Path | None
) -> None:
    """Take the `role` challenger out: its model from `repo` first (callers of a canary are
    back on the champion at once), then its alias, tagged `<role>.outcome` (when `version`
    holds it). Call it under the promotion lock."""
    from models.registry import release_challenger

    if repo is not None:
        withdraw_challenger(repo, model, role)
    if version is not None:
        release_challenger(model, role, version, outcome)


def sync_challengers(
    model: str,
    repo: Path,
    *,
    backend: str = "python",
    kind: str = "KIND_CPU",
    triton_url: str | None = None,
) -> dict[str, str | None]:
    """Make `repo`'s challenger models follow the registry (the cluster's sync sidecar, after
    the champion): each role's alias version is published (a canary at its `canary.share`
    tag), a role without an alias is withdrawn. Returns {role: version or None}.

    Raises:
        RegistryError, ArtifactIntegrityError, DeployError: as `publish_challenger`; roles
            already synced stay.
    """
    from models.registry import challenger_version

    synced: dict[str, str | None] = {}
    for role in ROLES:
        version = challenger_version(model, role)
        if version is None:
            withdraw_challenger(repo, model, role)
        else:
            publish_challenger(repo, model, version, role, backend=backend, kind=kind,
                               triton_url=triton_url)  # fmt: skip
        synced[role] = version
    return synced
