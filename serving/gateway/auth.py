"""API keys for the gateway: stored as SHA-256 hashes, never in the clear.

The keys file (a Kubernetes Secret on the cluster, `local_outputs/gateway/keys.json` locally)::

    {"keys": [{"name": "app-a", "sha256": "<hex>", "models": ["fraud-classifier"]},
              {"name": "labeller", "sha256": "<hex>", "labels": true}]}

`models` is optional (absent: every model). `labels` is optional (absent: false): only a key
that says `true` may post late labels (`POST /v2/models/{m}/labels`), which feed retraining and
promotion; every key may infer, explain and read metadata. A caller sends
`Authorization: Bearer <key>` or `X-API-Key: <key>`. Keys are random 256-bit tokens, so one
SHA-256 is enough (no password stretching needed) and the hash lookup reveals nothing useful
about a key.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from serving.gateway.contract import Rejected
from serving.processes import write_atomic

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
ANONYMOUS = "anonymous"  # the caller when the gateway runs on loopback without keys


class KeysFileError(ValueError):
    """The keys file is missing or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class ApiKey:
    """A key's owner, the models it may call (None: all), and whether it may post labels."""

    name: str
    models: frozenset[str] | None
    labels: bool = False


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """The keys a gateway accepts, reloaded when the file changes (rotation without restart)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, ApiKey] = {}
        self.reload_if_changed()
        if not self._keys:
            raise KeysFileError(f"{self.path} holds no keys")

    def __len__(self) -> int:
        return len(self._keys)

    def reload_if_changed(self) -> bool:
        """Re-read the file when its size or mtime changed.

        Raises:
            KeysFileError: the file is unreadable or malformed; the keys loaded before stay.
        """
        try:
            stat = self.path.stat()
        except OSError as exc:
            if self._stamp is None:
                raise KeysFileError(f"cannot read keys file {self.path}: {exc}") from None
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return False
        keys = read_keys(self.path)
        self._keys, self._stamp = keys, stamp
        return True

    def authenticate(
        self, authorization: str | None, api_key: str | None, model: str, *, labels: bool = False
    ) -> str:
        """The caller's name, or `Rejected` (401 without a valid key, 403 for another model, or
        for `labels` with a key not granted them)."""
        presented = api_key
        if presented is None and authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Rejected(401, "auth", "Authorization must be 'Bearer <key>'")
            presented = token.strip()
        if not presented:
            raise Rejected(
                401,
                "auth",
                "missing credentials: send 'Authorization: Bearer <key>' or 'X-API-Key'",
            )
        key = self._keys.get(hash_key(presented))
        if key is None:
            raise Rejected(401, "auth", "unknown API key")
        if key.models is not None and model and model not in key.models:
            raise Rejected(403, "forbidden", f"key '{key.name}' may not call model '{model}'")
        if labels and not key.labels:
            raise Rejected(
                403,
                "forbidden",
                f"key '{key.name}' may not post labels (its entry lacks \"labels\": true)",
            )
        return key.name


def read_keys(path: Path) -> dict[str, ApiKey]:
    """Parse a keys file into {sha256: ApiKey}; KeysFileError names the entry at fault."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise KeysFileError(f"cannot read keys file {path}: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeysFileError(f"{path}: expected {{'keys': [...]}}")
    keys: dict[str, ApiKey] = {}
    for index, entry in enumerate(entries):
        where = f"{path}: keys[{index}]"
        if not isinstance(entry, dict):
            raise KeysFileError(f"{where} must be an object")
        name, digest, models = entry.get("name"), entry.get("sha256"), entry.get("models")
        labels = entry.get("labels", False)
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise KeysFileError(f"{where}.name must be 1-64 letters, digits, '_', '.', '-'")
        if not isinstance(digest, str) or not _HEX_RE.match(digest):
            raise KeysFileError(f"{where}.sha256 must be 64 lowercase hex digits")
        if models is not None and (
            not isinstance(models, list) or not all(isinstance(m, str) for m in models)
        ):
            raise KeysFileError(f"{where}.models must be a list of model names")
        if not isinstance(labels, bool):
            raise KeysFileError(f"{where}.labels must be true or false")
        if digest in keys:
            raise KeysFileError(f"{where} repeats the hash of key '{keys[digest].name}'")
        keys[digest] = ApiKey(name, frozenset(models) if models is not None else None, labels)
    return keys


def add_key(path: Path, name: str, models: list[str] | None = None, *, labels: bool = False) -> str:
    """Create a key for `name` (allowed to post labels when `labels`), store its hash in
    `path`, return the key.

    The plaintext exists only in the return value: show it once, it cannot be recovered.
    """
    path = Path(path)
    document: dict = {"keys": []}
    if path.exists():
        read_keys(path)  # refuse to extend a malformed file
        document = json.loads(path.read_text())
    if any(entry.get("name") == name for entry in document["keys"]):
        raise KeysFileError(f"{path} already has a key named '{name}'")
    key = "gw_" + secrets.token_urlsafe(32)
    entry: dict = {"name": name, "sha256": hash_key(key)}
    if models:
        entry["models"] = sorted(models)
    if labels:
        entry["labels"] = True
    document["keys"].append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(document, indent=2) + "\n")
    return key
