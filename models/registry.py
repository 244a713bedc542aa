"""MLflow edge: tracking store, safe model persistence, registration, aliases and rollback.

Models are stored with skops, never pickle, and loaded against the allow-list below, which
lives in this code and not in the model files (a model cannot vouch for itself).

Promotion integrity: "no champion" means only that the alias does not exist (any other store
failure raises); every `champion` move is a compare-and-swap under a per-model lock, written
to the history (as "pending") before the alias moves; registered artifacts carry their
SHA-256 as version tags and are verified before they are published.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from configs.cli import UserError
from models.families import FAMILIES

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# Challenger aliases: `shadow` (gate.shadow_before_promotion) and `canary`
# (gate.canary_before_promotion), set by the deploy step once the challenger is infra-validated
# and published beside the champion, removed when it is promoted, rolled back or withdrawn.
SHADOW, CANARY = "shadow", "canary"
HISTORY_TAG = "champion_history"
ARCHIVE_PREFIX = "champion_history.archive."  # + 1, 2, ...: older entries, oldest first
HISTORY_ENTRIES = 50  # newest entries kept in HISTORY_TAG
TAG_CHARS = 4500  # below MLflow's 5,000-character limit on registered-model tag values
REASON_CHARS = 300  # of a history entry's event text
ONNX_SHA256_TAG = "onnx_sha256"
SKOPS_SHA256_TAG = "skops_sha256"
LOCK_ENV = "MLOPS_PROMOTION_LOCK"  # lock for an http(s) tracking server: postgresql:// URL or dir
LOCK_TIMEOUT_S = 600.0  # a promotion holds it through publishing (Triton load included)
LOCK_POLL_S = 0.2
SKOPS_FILE = "model.skops"
# Every non-builtin type the platform's models contain (each family declares its own);
# saving anything else fails early.
TRUSTED_TYPES = tuple(
    dict.fromkeys(["numpy.dtype", *(t for f in FAMILIES.values() for t in f.trusted_types)])
)


class RegistryError(UserError, RuntimeError):
    """The tracking store is unreachable or the registry is not in the expected state."""


def default_tracking_uri(root: Path) -> str:
    """The embedded SQLite store under the project directory."""
    return f"sqlite:///{(root / 'mlruns' / 'mlflow.db').resolve()}"


def configure_tracking(root: Path) -> str:
    """Use `MLFLOW_TRACKING_URI` if set, else the embedded store; check that it answers."""
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(root)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    check_tracking(uri)
    os.environ["MLFLOW_TRACKING_URI"] = uri  # inherited by the pipeline's components
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # clean CLI output
    mlflow.set_tracking_uri(uri)
    return uri


def check_tracking(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the URI, when an MLflow tracking server does not answer."""
    if urlparse(uri).scheme not in {"http", "https"}:
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout_s).raise_for_status()
    except requests.RequestException as exc:
        raise RegistryError(
            f"MLflow tracking server unreachable at MLFLOW_TRACKING_URI={uri} "
            f"({exc.__class__.__name__})",
            hint="start that server, or `unset MLFLOW_TRACKING_URI` to use the embedded store "
            "(mlruns/)",
        ) from None


def experiment_id(project: str, artifact_root: Path | None = None) -> str:
    """The project's experiment, created on first use with artifacts beside the store."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(project)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root is not None:
        location = (artifact_root / project).resolve().as_uri()
    return mlflow.create_experiment(project, artifact_location=location)


def save_model(model: Any, path: Path) -> None:
    """Write a model with skops, refusing types outside `TRUSTED_TYPES`."""
    import skops.io as sio

    data = sio.dumps(model)
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise RegistryError(f"model holds types not in the trusted list: {untrusted}")
    path.write_bytes(data)


def load_model(path: Path) -> Any:
    """Read a skops model file against the platform's allow-list."""
    import skops.io as sio

    return sio.load(path, trusted=list(TRUSTED_TYPES))


def log_model(model: Any, example: pd.DataFrame, name: str = "model") -> str:
    """Log a fitted pipeline to the active run (skops, signature, input example); its URI."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict_proba(example)[:, 1])
    info = mlflow.sklearn.log_model(
        model,
        name=name,
        serialization_format="skops",
        skops_trusted_types=list(TRUSTED_TYPES),
        signature=signature,
        input_example=example.head(5),
        pip_requirements=_requirements(model),
    )
    return info.model_uri


def _requirements(model: Any) -> list[str]:
    """Pinned runtime requirements (stated, so MLflow need not import-trace the model)."""
    from importlib.metadata import version

    packages = ["scikit-learn", "skops", "numpy", "pandas", "tabular-mlops"]
    if "TorchMLPClassifier" in repr(model):
        packages.append("torch")
    return [f"{p}=={version(p)}" for p in packages]


@dataclass(frozen=True)
class Version:
    """A registered model version."""

    name: str
    version: str
    run_id: str | None


def register(model_uri: str, name: str, run_id: str, tags: dict[str, str]) -> Version:
    """Register a logged model as a new version and point the `challenger` alias at it."""
    import mlflow

    client = mlflow.MlflowClient()
    version = mlflow.register_model(model_uri, name, tags=tags)
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return Version(name, str(version.version), run_id)


def champion_version(name: str) -> str | None:
    """The version behind the `champion` alias; None only when the alias (or the model) does
    not exist.

    Raises:
        RegistryError: Any other failure to read it (store down, permissions): a champion may
            exist, so nothing may be decided as if there were none.
    """
    return _alias_version(name, CHAMPION, "the champion")


def challenger_version(name: str, role: str) -> str | None:
    """The version behind the `role` alias (`shadow` or `canary`); None only when the alias (or
    the model) does not exist.

    Raises:
        RegistryError: Any other failure to read it (fail closed, as for the champion).
    """
    return _alias_version(name, role, f"the {role} challenger")


def _alias_version(name: str, alias: str, what: str) -> str | None:
    """The version behind `alias`; None only when the alias (or the model) does not exist."""
    import mlflow

    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException as exc:
        # MLflow's stores answer a missing model with RESOURCE_DOES_NOT_EXIST and a missing
        # alias with INVALID_PARAMETER_VALUE "Registered model alias <alias> not found."
        missing_alias = f"alias {alias} not found" in str(exc)
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or (
            exc.error_code == "INVALID_PARAMETER_VALUE" and missing_alias
        ):
            return None
        raise _store_error(f"cannot read {what} of '{name}'", exc) from exc


def hold_challenger(
    name: str, role: str, version: str, *, champion: str | None, tags: dict[str, str] | None = None
) -> None:
    """Mark `version` as the `role` challenger (alias `shadow` or `canary`), under the promotion
    lock, if the champion is still `champion` (the one the gate compared it with); tagged on
    the version `<role>.since`, `<role>.champion` and `<role>.<key>` for each of `tags`.

    Raises:
        ChampionMovedError: The champion moved since the gate (nothing marked).
    """
    import mlflow

    with promotion_lock(name):
        current = champion_version(name)
        if current != champion:
            raise ChampionMovedError(name, current, champion, version)
        client = mlflow.MlflowClient()
        for key, value in {"since": _now(), "champion": str(champion), **(tags or {})}.items():
            client.set_model_version_tag(name, version, f"{role}.{key}", value)
        client.set_registered_model_alias(name, role, version)


def tag_challenger(name: str, role: str, version: str, tags: dict[str, str]) -> bool:
    """Tag the `role` challenger `<role>.<key>` if the alias still names `version`
    (compare-and-swap, under the lock); returns whether it did."""
    import mlflow

    with promotion_lock(name):
        if challenger_version(name, role) != version:
            return False
        client = mlflow.MlflowClient()
        for key, value in tags.items():
            client.set_model_version_tag(name, version, f"{role}.{key}", value)
        return True


def release_challenger(name: str, role: str, version: str, outcome: str) -> bool:
    """Remove the `role` alias if it still names `version` (compare-and-swap, under the lock)
    and tag the version `<role>.outcome`; returns whether the alias was removed."""
    import mlflow

    with promotion_lock(name):
        if challenger_version(name, role) != version:
            return False
        client = mlflow.MlflowClient()
        client.set_model_version_tag(name, version, f"{role}.outcome", outcome[:4900])
        client.delete_registered_model_alias(name, role)
        return True


def _store_error(what: str, exc: Exception) -> RegistryError:
    import mlflow

    uri = mlflow.get_tracking_uri()
    return RegistryError(
        f"{what} from MLFLOW_TRACKING_URI={uri}: {str(exc)[:500]}",
        hint="check that the tracking store answers, then rerun; nothing was moved",
    )


# --- verified bytes ---------------------------------------------------------------------------


class ArtifactIntegrityError(RegistryError):
    """An artifact's bytes differ from the SHA-256 recorded when its version was registered."""

    def __init__(self, message: str, *, model_name: str, version: str, hint: str) -> None:
        super().__init__(message, hint=hint)
        self.model_name, self.version = model_name, version


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data`, as recorded in the version tags."""
    return hashlib.sha256(data).hexdigest()


def verify_sha256(
    data: bytes, tags: Mapping[str, str], tag: str, *, name: str, version: str
) -> str:
    """Check `data` against the version tag `tag`; returns the hash.

    Raises:
        ArtifactIntegrityError: The tag is missing, or the bytes hash to something else.
    """
    expected = tags.get(tag)
    if not expected:
        raise ArtifactIntegrityError(
            f"version {version} of '{name}' has no {tag} tag, so its artifact cannot be "
            "verified (registered before artifacts were hashed)",
            model_name=name,
            version=version,
            hint="register a verified version: make pipeline",
        )
    actual = sha256_hex(data)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"artifact of version {version} of '{name}' does not match its {tag} tag: "
            f"expected sha256 {expected}, got {actual}; it changed after registration and is "
            "refused",
            model_name=name,
            version=version,
            hint="restore the artifact from the pipeline run, or register a fresh version "
            "(make pipeline); never re-tag a changed artifact",
        )
    return actual


def load_registered(model_uri: str) -> Any:
    """Load a logged or registered model (`models:/name@alias`) without unpickling."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        return load_model(local / SKOPS_FILE)


def load_version(name: str, version: str, tags: Mapping[str, str]) -> Any:
    """Load a registered version's model once its skops file matches the `skops_sha256` tag.

    Raises:
        ArtifactIntegrityError: The tag is missing or the file changed since registration.
    """
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=tmp
            )
        )
        verify_sha256((local / SKOPS_FILE).read_bytes(), tags, SKOPS_SHA256_TAG, name=name,
                      version=version)  # fmt: skip
        return load_model(local / SKOPS_FILE)


def logged_skops_sha256(model_uri: str) -> str:
    """The SHA-256 of the skops file of a logged model, as the registry stores it."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        return sha256_hex((local / SKOPS_FILE).read_bytes())


# --- the per-model promotion lock -------------------------------------------------------------

_held = threading.local()


@contextmanager
def promotion_lock(name: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[str]:
    """Hold the per-model lock that serialises every `champion` move; yields what it locks.

    The lock follows the tracking store: a PostgreSQL advisory lock (on a hash of the model
    name) when `MLFLOW_TRACKING_URI` is a PostgreSQL database, a file lock beside the store
    for SQLite and file stores. An http(s) tracking server offers no lock: then
    `MLOPS_PROMOTION_LOCK` names one shared by every promoter (the server's PostgreSQL URL,
    or a directory on a shared volume); without it the lock is a file lock on this host
    only (logged as a warning). Re-entrant within a thread.

    Raises:
        RegistryError: Another holder kept the lock for `timeout_s`.
    """
    import mlflow

    target = lock_target(mlflow.get_tracking_uri())
    held: dict[tuple[str, str], int] = _held.__dict__.setdefault("locks", {})
    key = (target, name)
    if key in held:
        held[key] += 1
        try:
            yield target
        finally:
            held[key] -= 1
        return
    locker = _advisory_lock if target.startswith("postgresql") else _file_lock
    with locker(target, name, timeout_s):
        held[key] = 1
        try:
            yield target
        finally:
            del held[key]


def lock_target(tracking_uri: str) -> str:
    """Where the promotion lock lives for a tracking URI: a PostgreSQL URL or a directory."""
    explicit = os.environ.get(LOCK_ENV)
    if explicit:
        return explicit
    parsed = urlparse(tracking_uri)
    if parsed.scheme.startswith("postgresql"):
        return tracking_uri
    if parsed.scheme == "sqlite":
        return str(Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "locks")
    if parsed.scheme in {"", "file"}:
        return str(Path(parsed.path or tracking_uri).resolve() / "locks")
    logger.warning(
        "MLFLOW_TRACKING_URI=%s has no lock of its own: promotions are serialised on this host "
        "only; set %s to the tracking database's postgresql:// URL (or a shared directory) to "
        "serialise them everywhere",
        tracking_uri,
        LOCK_ENV,
    )
    return str(Path(tempfile.gettempdir()) / "mlops-promotion-locks")


def _lock_busy(name: str, target: str, timeout_s: float) -> RegistryError:
    return RegistryError(
        f"another promotion or rollback of '{name}' held the lock ({_redact(target)}) for "
        f"{timeout_s:g} s",
        hint="wait for it to finish (its pipeline or `make rollback`), then rerun",
    )


def _redact(target: str) -> str:
    parsed = urlparse(target)
    if parsed.password:
        return target.replace(f":{parsed.password}@", ":***@")
    return target


@contextmanager
def _file_lock(folder: str, name: str, timeout_s: float) -> Iterator[None]:
    import fcntl

    path = Path(folder) / f"{name}.promotion.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    with open(path, "a+") as handle:  # never deleted: a new inode would split the lock
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _lock_busy(name, str(path), timeout_s) from None
                time.sleep(LOCK_POLL_S)
        try:
            handle.truncate(0)
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {_now()}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(url: str, name: str, timeout_s: float) -> Iterator[None]:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    if url.startswith("postgresql://"):  # the driver the project installs (psycopg 3)
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    key = int.from_bytes(hashlib.sha256(f"mlops-promotion:{name}".encode()).digest()[:8], "big",
                         signed=True)  # fmt: skip
    engine = sa.create_engine(url, poolclass=NullPool)
    deadline = time.monotonic() + timeout_s
    try:
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except sa.exc.OperationalError as exc:
            raise _store_error(f"cannot take the promotion lock of '{name}'", exc) from exc
        with conn:  # the session holds the lock; closing it would release it too
            try_lock = sa.text("SELECT pg_try_advisory_lock(:key)")
            while not conn.execute(try_lock, {"key": key}).scalar():
                if time.monotonic() > deadline:
                    raise _lock_busy(name, url, timeout_s)
                time.sleep(LOCK_POLL_S)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    finally:
        engine.dispose()


# --- champion history and alias moves ---------------------------------------------------------


class ChampionMovedError(RegistryError):
    """The champion is no longer the version a promotion or rollback was decided against."""

    def __init__(self, name: str, current: str | None, expected: str | None, version: str) -> None:
        super().__init__(
            f"champion of '{name}' is version {current}, not version {expected} as when moving "
            f"version {version} in was decided; nothing was moved",
            hint="rerun the pipeline (it gates against the current champion)",
        )
        self.current, self.expected = current, expected


class HistoryMismatchError(RegistryError):
    """The champion history and the `champion` alias disagree."""


def champion_history(name: str) -> list[dict[str, Any]]:
    """Every alias move, oldest first (promotions, rollbacks, repairs), archived ones included.

    Each entry: `seq`, `version`, `from` (the champion it replaced), `event`, `at` and
    `state`: "pending" (written, alias not yet confirmed), "done", or "aborted" (the alias
    never moved).
    """
    import mlflow

    try:
        tags = mlflow.MlflowClient().get_registered_model(name).tags
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise _store_error(f"cannot read the champion history of '{name}'", exc) from exc
    return _parse_history(tags)


def _parse_history(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """Archive tags then the recent tag, deduplicated by `seq` (a crash while archiving leaves
    an entry in both); entries written before `seq`/`state` existed are completed."""
    raw = [entry for _, chunk in _archive_chunks(tags) for entry in chunk]
    raw += json.loads(tags.get(HISTORY_TAG, "[]"))
    entries: dict[int, dict[str, Any]] = {}
    previous: str | None = None
    for index, entry in enumerate(raw, start=1):
        entry = {"seq": index, "from": previous, "state": "done"} | entry
        entries[int(entry["seq"])] = entry
        if entry["state"] == "done":
            previous = entry["version"]
    return [entries[seq] for seq in sorted(entries)]


def _archive_chunks(tags: Mapping[str, str]) -> list[tuple[int, list[dict[str, Any]]]]:
    """The archive tags' entry lists, oldest chunk first."""
    return sorted(
        (int(key.removeprefix(ARCHIVE_PREFIX)), json.loads(value))
        for key, value in tags.items()
        if key.startswith(ARCHIVE_PREFIX) and key.removeprefix(ARCHIVE_PREFIX).isdigit()
    )


def _write_history(name: str, history: list[dict[str, Any]], tags: Mapping[str, str]) -> None:
    """Keep the newest entries (at most HISTORY_ENTRIES, within the tag size limit) in
    HISTORY_TAG; older ones go to archive tags first, so a crash in between loses nothing."""
    import mlflow

    client = mlflow.MlflowClient()
    recent: list[dict[str, Any]] = []
    for entry in reversed(history):
        if len(recent) == HISTORY_ENTRIES or len(json.dumps([entry, *recent])) > TAG_CHARS:
            break
        recent.insert(0, entry)
    older = history[: len(history) - len(recent)]
    chunks = _archive_chunks(tags)
    archived = {entry["seq"] for _, chunk in chunks for entry in chunk}
    number, chunk = chunks[-1] if chunks else (1, [])
    pending = [entry for entry in older if entry["seq"] not in archived]
    for entry in pending:
        if chunk and len(json.dumps([*chunk, entry])) > TAG_CHARS:
            client.set_registered_model_tag(name, f"{ARCHIVE_PREFIX}{number}", json.dumps(chunk))
            number, chunk = number + 1, []
        chunk.append(entry)
    if pending:
        client.set_registered_model_tag(name, f"{ARCHIVE_PREFIX}{number}", json.dumps(chunk))
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(recent))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ChampionState:
    """The champion as alias and history agree on it (read under the lock)."""

    name: str
    version: str | None
    history: list[dict[str, Any]]
    tags: dict[str, str]


def _settled_state(name: str) -> ChampionState:
    """Read alias and history, settle a pending entry left by a crash, and check they agree.

    A pending entry is resolved by the alias: alias at its version means the move happened
    (done), alias still at its `from` means it never did (aborted).

    Raises:
        HistoryMismatchError: The alias is where no history entry put it.
    """
    import mlflow

    current = champion_version(name)
    try:
        model = mlflow.MlflowClient().get_registered_model(name)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return ChampionState(name, None, [], {})
        raise _store_error(f"cannot read model '{name}'", exc) from exc
    tags = dict(model.tags)
    history = _parse_history(tags)
    changed = False
    for entry in history:
        if entry["state"] != "pending":
            continue
        if current == entry["version"]:
            entry["state"] = "done"
        elif current == entry["from"]:
            entry["state"] = "aborted"
        else:
            break
        entry["settled_at"] = _now()
        changed = True
    effective = [e for e in history if e["state"] == "done"]
    recorded = effective[-1]["version"] if effective else None
    if recorded != current or any(e["state"] == "pending" for e in history):
        raise HistoryMismatchError(
            f"the champion history of '{name}' says version {recorded} but the champion alias "
            f"is at version {current}: the alias was moved outside the platform, or a move "
            "failed halfway",
            hint="check which version should serve, then record it: python -m "
            "pipelines.rollback --project PROJECT --repair (adopts the alias), or --to "
            "VERSION to move both",
        )
    if changed:
        _write_history(name, history, tags)
        tags = _registered_tags(name)
    return ChampionState(name, current, history, tags)


def move_champion(name: str, version: str, *, expected: str | None, event: str) -> None:
    """Compare-and-swap the `champion` alias: from `expected` to `version`, history first.

    Under the promotion lock: the champion is re-read and must still be `expected`; a
    "pending" history entry is written, then the alias moves, then the entry is marked done.
    A crash in between leaves a pending entry that the next move or rollback settles.

    Raises:
        ChampionMovedError: The champion is no longer `expected` (nothing written).
        HistoryMismatchError: History and alias disagreed before the move.
    """
    import mlflow

    with promotion_lock(name):
        state = _settled_state(name)
        if state.version != expected:
            raise ChampionMovedError(name, state.version, expected, version)
        entry = {"seq": (state.history[-1]["seq"] + 1) if state.history else 1,
                 "version": version, "from": expected, "event": event[:REASON_CHARS],
                 "at": _now(), "state": "pending"}  # fmt: skip
        history = [*state.history, entry]
        _write_history(name, history, state.tags)
        mlflow.MlflowClient().set_registered_model_alias(name, CHAMPION, version)
        entry["state"] = "done"
        _write_history(name, history, _registered_tags(name))


def _registered_tags(name: str) -> dict[str, str]:
    import mlflow

    return dict(mlflow.MlflowClient().get_registered_model(name).tags)


def promote(version: Version, reason: str, *, expected: str | None) -> None:
    """Make `version` champion if the champion is still `expected` (what the gate compared)."""
    move_champion(version.name, version.version, expected=expected, event=f"promoted: {reason}")


@dataclass(frozen=True)
class RollbackPlan:
    """Where a rollback takes the champion; `moves` is False when it is already there."""

    name: str
    current: str
    target: str
    moves: bool


def plan_rollback(name: str, to: str | None = None) -> RollbackPlan:
    """The rollback target: `to`, or the version the latest promotion replaced.

    Idempotent: after a rollback, rolling back again targets the same version (nothing moves);
    use `to` to go further back.

    Raises:
        RegistryError: No champion, no earlier champion, or `to` was never champion.
        HistoryMismatchError: History and alias disagree.
    """
    state = _settled_state(name)
    if state.version is None:
        raise RegistryError(f"model '{name}' has no champion to roll back")
    effective = [e for e in state.history if e["state"] == "done"]
    if to is not None:
        if to not in {e["version"] for e in effective}:
            raise RegistryError(
                f"version {to} of '{name}' was never champion; roll back only to a version "
                "that passed the gate and served",
                hint="python -m pipelines.rollback --history lists them",
            )
        return RollbackPlan(name, state.version, to, to != state.version)
    last = effective[-1]
    if last["event"].startswith("rollback"):
        return RollbackPlan(name, state.version, state.version, False)
    if last["from"] is None:
        raise RegistryError(f"model '{name}' has no earlier champion than version {state.version}")
    return RollbackPlan(name, state.version, str(last["from"]), True)


def rollback(name: str, to: str | None = None) -> str:
    """Move `champion` back (see `plan_rollback`); returns the version now behind it."""
    with promotion_lock(name):
        plan = plan_rollback(name, to)
        if plan.moves:
            move_champion(name, plan.target, expected=plan.current,
                          event=f"rollback from version {plan.current}")  # fmt: skip
        return plan.target


def repair_history(name: str) -> tuple[str | None, bool]:
    """Record the alias's current version as champion when history says otherwise (adopting
    the alias, which is what deploys read); returns it and whether an entry was added.
    Settles pending entries first."""
    with promotion_lock(name):
        try:
            return _settled_state(name).version, False
        except HistoryMismatchError:
            pass
        current = champion_version(name)
        tags = _registered_tags(name)
        history = _parse_history(tags)
        effective = [e for e in history if e["state"] == "done"]
        for entry in history:
            if entry["state"] == "pending":
                entry["state"], entry["settled_at"] = "aborted", _now()
        recorded = effective[-1]["version"] if effective else None
        history.append({"seq": (history[-1]["seq"] + 1) if history else 1, "version": current,
                        "from": recorded, "at": _now(), "state": "done",
                        "event": f"repaired: alias found at version {current}, history said "
                                 f"version {recorded}"})  # fmt: skip
        _write_history(name, history, tags)
        return current, True


def record_decision(version: Version, decision: dict[str, Any]) -> None:
    """Tag the version with the gate's decision (the JSON record goes to the run)."""
    import mlflow

    client = mlflow.MlflowClient()
    tags = {
        "gate.promoted": str(decision["promote"]).lower(),
        "gate.reasons": " | ".join(decision["reasons"])[:4900],
        "gate.metric": str(decision["metric"]),
    }
    for key, value in tags.items():
        client.set_model_version_tag(version.name, version.version, key, value)
