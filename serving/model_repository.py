"""Triton model repository: config.pbtxt derived from the ONNX graph, atomic version writes.

Layout written here (Triton's own)::

    repo/<name>/config.pbtxt
    repo/<name>/<version>/model.onnx
    repo/<name>/<version>/model.py      # python backend only: serving/triton/model.py

Writes are atomic as a polling Triton sees them:
- a new version is built under a hidden name inside `repo/<name>/` (same filesystem) and
  renamed into place; Triton skips version directories whose names are not integers (it logs
  a warning), so it never loads a half-written version;
- a new model is staged whole beside the repository (`.<repo>.staging/`) and renamed in,
  because Triton takes every directory directly under the repository for a model, hidden or
  not; when the repository is a mount point, the model directory gets its config.pbtxt last
  (Triton ignores a model directory without one when auto-complete is off, as
  `serving.launcher` starts it);
- config.pbtxt is replaced with write-temp + os.replace, and only when its text changed.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from serving.processes import fsync_dir

MODEL_FILENAME = "model.onnx"
PYTHON_MODEL_FILENAME = "model.py"
CONFIG_FILENAME = "config.pbtxt"
BACKENDS = ("python", "onnxruntime")
KINDS = ("KIND_CPU", "KIND_GPU")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_STAGING_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"

# ONNX TensorProto element types -> Triton data types.
_ONNX_TO_TRITON = {
    1: "TYPE_FP32",  # FLOAT
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    8: "TYPE_STRING",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",  # DOUBLE
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
}


def python_model_source() -> Path:
    """The Python-backend model file copied into every python-backend version."""
    return Path(__file__).resolve().parent / "triton" / PYTHON_MODEL_FILENAME


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(
            f"invalid model name {name!r}: use letters, digits, '_', '-', '.', "
            "not starting with '.' or '-'"
        )


def _check_version(version: int) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")


def _load_onnx(onnx_model_bytes: bytes):
    """Parse and check the ONNX bytes; ValueError with the reason when they are not a model."""
    import onnx  # local: keep `import serving.model_repository` cheap

    if not onnx_model_bytes:
        raise ValueError("empty ONNX model bytes")
    try:
        model = onnx.load_model_from_string(bytes(onnx_model_bytes))
        onnx.checker.check_model(model)
    except Exception as exc:  # DecodeError, ValidationError, ...
        raise ValueError(f"invalid ONNX model: {exc}") from exc
    return model


def _tensor_spec(value_info, *, batched: bool) -> tuple[str, list[int], bool]:
    """(Triton data type, dims without the batch dim, graph has only the batch dim)."""
    tensor_type = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type"):
        raise ValueError(f"tensor {value_info.name!r}: only plain tensors are supported")
    dtype = _ONNX_TO_TRITON.get(tensor_type.elem_type)
    if dtype is None:
        raise ValueError(
            f"tensor {value_info.name!r}: ONNX element type {tensor_type.elem_type} "
            "has no Triton equivalent"
        )
    if not tensor_type.HasField("shape"):
        raise ValueError(f"tensor {value_info.name!r}: the graph does not declare its shape")
    dims = [
        d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1
        for d in tensor_type.shape.dim
    ]
    if not batched:
        return dtype, dims or [1], not dims
    if not dims:
        raise ValueError(f"tensor {value_info.name!r} is a scalar; it has no batch dimension")
    if dims[0] != -1:
        raise ValueError(
            f"tensor {value_info.name!r}: first dimension is fixed ({dims[0]}), "
            "so it cannot be batched (export with a dynamic batch dimension or max_batch_size=0)"
        )
    rest = dims[1:]
    return dtype, rest or [1], not rest


def graph_inputs(onnx_model_bytes: bytes) -> list[tuple[str, str, list[int]]]:
    """(name, Triton data type, dims after the batch dimension) of each input of the graph."""
    graph = _load_onnx(onnx_model_bytes).graph
    initializers = {init.name for init in graph.initializer}
    return [
        (tensor.name, *_tensor_spec(tensor, batched=True)[:2])
        for tensor in graph.input
        if tensor.name not in initializers
    ]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dims(dims: Sequence[int]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def triton_config(
    name: str,
    onnx_model_bytes: bytes,
    *,
    max_batch_size: int = 1024,
    preferred_batch_sizes: Sequence[int] = (64, 256),
    max_queue_delay_us: int = 200,
    instances: int = 1,
    kind: str = "KIND_CPU",
    backend: str = "python",
    parameters: Mapping[str, str] | None = None,
) -> str:
    """config.pbtxt text for an ONNX model, derived from the graph's inputs and outputs.

    Args:
        name: Triton model name (the directory under the repository).
        onnx_model_bytes: the serialized ONNX model.
        max_batch_size: largest batch Triton forms; 0 disables batching (dims are then full).
        preferred_batch_sizes: batch sizes the dynamic batcher aims for (each <= max_batch_size).
        max_queue_delay_us: how long a request may wait for others to join its batch.
        instances: model instances (onnxruntime sessions) per device.
        kind: "KIND_CPU", or "KIND_GPU" with backend "onnxruntime" (the cluster variant).
        backend: "python" (local: serving/triton/model.py runs onnxruntime) or "onnxruntime"
            (Triton's ONNX Runtime backend, platform "onnxruntime_onnx").
        parameters: string key/values clients read from the model config (e.g. the decision
            threshold and the registry version).

    Returns:
        The protobuf text of the model configuration.

    Raises:
        ValueError: invalid arguments or an ONNX graph Triton cannot serve as configured.
    """
    _check_name(name)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if backend == "python" and kind == "KIND_GPU":
        raise ValueError("the python backend model runs onnxruntime on CPU; use KIND_CPU there")
    if max_batch_size < 0 or instances < 1 or max_queue_delay_us < 0:
        raise ValueError("max_batch_size >= 0, instances >= 1 and max_queue_delay_us >= 0")
    bad = [size for size in preferred_batch_sizes if not 0 < size <= max_batch_size]
    if bad and max_batch_size > 0:  # without batching there is no dynamic batcher to configure
        raise ValueError(f"preferred batch sizes {bad} are not within 1..{max_batch_size}")

    model = _load_onnx(onnx_model_bytes)
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    batched = max_batch_size > 0

    lines = [f"name: {_quote(name)}"]
    warmup: list[str] = []
    if backend == "python":
        lines.append('backend: "python"')
    else:
        lines += ['platform: "onnxruntime_onnx"', 'backend: "onnxruntime"']
    lines.append(f"max_batch_size: {max_batch_size}")

    for section, tensors in (
        ("input", [t for t in graph.input if t.name not in initializers]),
        ("output", list(graph.output)),
    ):
        if not tensors:
            raise ValueError(f"the ONNX graph has no {section}s")
        entries = []
        for tensor in tensors:
            dtype, dims, batch_only = _tensor_spec(tensor, batched=batched)
            if section == "input":
                one = [1 if d < 0 else d for d in dims]  # (without batching: N is one row)
                warmup.append(f"    inputs {{ key: {_quote(tensor.name)} value: {{ data_type: "
                              f"{dtype} dims: {_dims(one)} zero_data: true }} }}")  # fmt: skip
            entry = f"  {{\n    name: {_quote(tensor.name)}\n    data_type: {dtype}\n"
            entry += f"    dims: {_dims(dims)}\n"
            if batch_only and backend == "onnxruntime":
                # The graph has shape [N]; clients see [N, 1]. The python model reshapes itself.
                entry += "    reshape: { shape: [ ] }\n"
            entries.append(entry + "  }")
        lines.append(f"{section} [\n" + ",\n".join(entries) + "\n]")

    if batched:
        batching = "dynamic_batching {\n"
        if preferred_batch_sizes:
            batching += f"  preferred_batch_size: {_dims(preferred_batch_sizes)}\n"
        batching += f"  max_queue_delay_microseconds: {max_queue_delay_us}\n}}"
        lines.append(batching)
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    lines.append("version_policy: { latest: { num_versions: 1 } }")
    # One all-zero row sent before the version is reported ready: its first caller does not
    # pay for the session's lazy initialisation (about 150 ms on the python backend).
    # (batch_size 1 is what Triton requires of a model without batching, too)
    lines.append('model_warmup [\n  {\n    name: "zeros"\n    batch_size: 1\n'
                 + "\n".join(warmup) + "\n  }\n]")  # fmt: skip
    for key, value in (parameters or {}).items():
        lines.append(
            f"parameters {{ key: {_quote(key)} value: {{ string_value: {_quote(str(value))} }} }}"
        )
    return "\n".join(lines) + "\n"


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _replace_file(path: Path, data: bytes) -> None:
    """Write `path` atomically: a temporary sibling, fsync, os.replace."""
    tmp = path.with_name(f"{_STAGING_PREFIX}{path.name}-{uuid.uuid4().hex}")
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fill_version(version_dir: Path, onnx_bytes: bytes, backend: str) -> None:
    version_dir.mkdir()
    _write_file(version_dir / MODEL_FILENAME, onnx_bytes)
    if backend == "python":
        _write_file(version_dir / PYTHON_MODEL_FILENAME, python_model_source().read_bytes())
    fsync_dir(version_dir)


def write_version(
    repo: Path,
    name: str,
    version: int,
    onnx_bytes: bytes,
    config_text: str,
    *,
    backend: str = "python",
) -> Path:
    """Add `version` of model `name` to the repository, atomically.

    The version directory is built under a hidden staging name and renamed into place;
    config.pbtxt is replaced atomically (and left alone when unchanged, so a polling Triton
    does not reload for nothing). Nothing is left behind when anything fails.

    Args:
        repo: the model repository root (created if missing).
        name: model name.
        version: positive version number; an existing version is never overwritten.
        onnx_bytes: the serialized ONNX model (checked with onnx.checker first).
        config_text: config.pbtxt text, usually from `triton_config`.
        backend: "python" also copies serving/triton/model.py into the version.

    Returns:
        The new version directory.

    Raises:
        FileExistsError: the version already exists.
        ValueError: bad name, version, backend, or ONNX bytes.
    """
    _check_name(name)
    _check_version(version)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    _load_onnx(onnx_bytes)
    if not config_text.strip():
        raise ValueError("empty config text")

    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    model_dir = repo / name
    final = model_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} already exists; versions are never overwritten")
    config_bytes = config_text.encode()

    if not model_dir.exists():
        _create_model(repo, name, version, onnx_bytes, config_bytes, backend)
        return final

    staging = model_dir / f"{_STAGING_PREFIX}{version}-{uuid.uuid4().hex}"
    try:
        _fill_version(staging, onnx_bytes, backend)
        os.rename(staging, final)  # raises when another writer created it meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # The version first, the config last: a poll in between loads the new version with the old
    # config, which fails (and keeps the old version serving) only when the schema changed.
    config_path = model_dir / CONFIG_FILENAME
    try:
        if not config_path.is_file() or config_path.read_bytes() != config_bytes:
            _replace_file(config_path, config_bytes)
        fsync_dir(model_dir)
    except BaseException:
        trash = model_dir / f"{_TRASH_PREFIX}{version}-{uuid.uuid4().hex}"
        os.rename(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
        raise
    return final


def write_config(repo: Path, name: str, config_text: str) -> bool:
    """Replace an existing model's config.pbtxt atomically, only when its text changed (a
    polling Triton reloads the model on a change); returns whether it was written.

    Raises:
        FileNotFoundError: The model is not in the repository.
    """
    _check_name(name)
    model_dir = Path(repo) / name
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir} does not exist")
    config_path, config_bytes = model_dir / CONFIG_FILENAME, config_text.encode()
    if config_path.is_file() and config_path.read_bytes() == config_bytes:
        return False
    _replace_file(config_path, config_bytes)
    fsync_dir(model_dir)
    return True


def _outside_staging_root(repo: Path) -> Path | None:
    """A directory beside the repository on the same filesystem, or None when there is none.

    Every directory directly under the repository is a model to Triton (hidden ones too), so a
    whole new model can only be staged outside it; os.rename needs the same filesystem.
    """
    parent = repo.resolve().parent
    try:
        same_device = os.stat(parent).st_dev == os.stat(repo).st_dev
    except OSError:
        return None
    if not same_device or not os.access(parent, os.W_OK):
        return None  # e.g. the repository is a mount point (a Kubernetes volume)
    return parent / f".{repo.resolve().name}.staging"


def _create_model(
    repo: Path, name: str, version: int, onnx_bytes: bytes, config_bytes: bytes, backend: str
) -> None:
    """A new model appears whole: staged beside the repository and renamed into it.

    Without a same-filesystem place beside the repository, the version is renamed into a new
    model directory first and config.pbtxt is written last: Triton ignores a model directory
    without config.pbtxt when auto-complete is disabled (as serving.launcher starts it).
    """
    model_dir = repo / name
    staging_root = _outside_staging_root(repo)
    if staging_root is None:
        model_dir.mkdir()
        staging = model_dir / f"{_STAGING_PREFIX}{version}-{uuid.uuid4().hex}"
        try:
            _fill_version(staging, onnx_bytes, backend)
            os.rename(staging, model_dir / str(version))
            _replace_file(model_dir / CONFIG_FILENAME, config_bytes)
        except BaseException:
            shutil.rmtree(model_dir, ignore_errors=True)
            raise
        fsync_dir(repo)
        return

    staging_root.mkdir(exist_ok=True)
    staging = staging_root / f"{name}-{uuid.uuid4().hex}"
    try:
        staging.mkdir()
        _write_file(staging / CONFIG_FILENAME, config_bytes)
        _fill_version(staging / str(version), onnx_bytes, backend)
        fsync_dir(staging)
        os.rename(staging, model_dir)  # fails if another writer filled it meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _remove_if_empty(staging_root)
    fsync_dir(repo)


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()  # only when empty: other writers may be staging there too


def list_versions(repo: Path, name: str) -> list[int]:
    """Versions of `name` in the repository (directories with a model.onnx), ascending."""
    model_dir = Path(repo) / name
    if not model_dir.is_dir():
        return []
    return sorted(
        int(entry.name)
        for entry in model_dir.iterdir()
        if entry.name.isdigit() and (entry / MODEL_FILENAME).is_file()
    )


def remove_version(repo: Path, name: str, version: int) -> None:
    """Remove one version atomically (renamed away first, then deleted).

    Removing the last version removes the whole model directory, so a polling Triton unloads
    the model instead of failing on a model without versions.

    Raises:
        FileNotFoundError: the version does not exist.
    """
    _check_name(name)
    _check_version(version)
    repo = Path(repo)
    model_dir = repo / name
    target = model_dir / str(version)
    if not target.is_dir():
        raise FileNotFoundError(f"{target} does not exist")
    if list_versions(repo, name) == [version]:
        _remove_model(repo, name)
        return
    trash = model_dir / f"{_TRASH_PREFIX}{version}-{uuid.uuid4().hex}"
    os.rename(target, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_model(repo: Path, name: str) -> None:
    model_dir = repo / name
    trash_root = _outside_staging_root(repo)
    if trash_root is None:
        # Config first: Triton then stops considering the directory, whatever is left in it.
        (model_dir / CONFIG_FILENAME).unlink(missing_ok=True)
        shutil.rmtree(model_dir)
        return
    trash_root.mkdir(exist_ok=True)
    trash = trash_root / f"{_TRASH_PREFIX}{name}-{uuid.uuid4().hex}"
    try:
        os.rename(model_dir, trash)
        shutil.rmtree(trash, ignore_errors=True)
    finally:
        _remove_if_empty(trash_root)
