"""`/explain`: per-row attributions for the version that answered, from its registered model.

For each (model, version) Triton answers with, the explainer is loaded once from the model
registry (`MLFLOW_TRACKING_URI`, else the embedded store `mlruns/mlflow.db` under the working
directory): the version's skops file only after it matches the version's `skops_sha256` tag,
then the background, kind and seed the training run's offline explanation logged
(`reports/shap/background.parquet`, `explainer.json`), so served attributions are the offline
ones (`models.explain.RowExplainer`). Loading and explaining run in worker threads, off the
event loop: `infer` never waits for them.

Fails closed, saying why: 503 when the registry, the verified model or the background cannot
be had (retried after `retry_s`); 409 when the version that answered is not the one the
explainer can speak for (not in the registry, other inputs, or its model does not reproduce
the served score).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sys
import tempfile
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.decision import MISSING_CATEGORY
from serving.gateway.contract import Rejected

log = logging.getLogger(__name__)

TOP_K = 5  # attributions per row unless `parameters.top_k` says otherwise
RETRY_S = 30.0  # a failed load is answered from memory this long, then tried again
CACHED_VERSIONS = 4
SCORE_TOLERANCE = 1e-3  # |explainer's score - served score|: beyond it, another model answered
SHAP_ARTIFACTS = "reports/shap"  # where the training run's explain step logs its files


def registry_uri() -> str:
    """The model registry the explainers load from: the same one `serving.deploy` reads."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{(Path.cwd() / 'mlruns' / 'mlflow.db').resolve()}"


@dataclass(frozen=True)
class VersionExplainer:
    """The explainer of one registered version (a `models.explain.RowExplainer`)."""

    model: str
    version: str
    explainer: Any

    @property
    def space(self) -> str:
        return str(self.explainer.space)


def load_version_explainer(model: str, version: str, uri: str) -> VersionExplainer:
    """Load, verify and warm the explainer of `model` version `version` (blocking).

    Raises:
        Rejected: 503 (registry, model or background unavailable or not verified), 409 (the
            registry has no such version).
    """
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise _unavailable(f"no model registry at {uri}: set MLFLOW_TRACKING_URI for the gateway")
    import mlflow

    from models.explain import BACKGROUND_FILE, SETTINGS_FILE, build_row_explainer, read_rows
    from models.families import family_of
    from models.registry import RegistryError, load_version

    mlflow.set_tracking_uri(uri)  # this process reads one registry
    client = mlflow.MlflowClient(uri)
    try:
        registered = client.get_model_version(model, version)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise _mismatch(
                f"version {version} of '{model}' answered, but the registry at {uri} has no such "
                "version; no explanation is given for another model"
            ) from None
        raise _unavailable(f"the model registry does not answer: {exc.message}") from None
    try:
        pipeline = load_version(model, version, registered.tags)  # hash first, then skops
    except RegistryError as exc:
        raise _unavailable(f"{exc} ({exc.hint})") from None
    except Exception as exc:  # noqa: BLE001 - a store error of any kind: fail closed
        raise _unavailable(f"cannot load version {version} of '{model}': {exc}") from None
    family = family_of(pipeline.named_steps["model"])
    if family is None:
        raise _unavailable(f"version {version} of '{model}' is of no known model family")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            files = {
                name: Path(
                    mlflow.artifacts.download_artifacts(
                        run_id=registered.run_id,
                        artifact_path=f"{SHAP_ARTIFACTS}/{name}",
                        dst_path=tmp,
                    )
                )
                for name in (BACKGROUND_FILE, SETTINGS_FILE)
            }
            background = read_rows(files[BACKGROUND_FILE])
            settings = json.loads(files[SETTINGS_FILE].read_text())
        except Exception as exc:  # noqa: BLE001 - missing or unreadable: fail closed
            raise _unavailable(
                f"version {version} of '{model}' has no explanation background "
                f"({SHAP_ARTIFACTS}/{BACKGROUND_FILE}, {SETTINGS_FILE}) in run "
                f"{registered.run_id}: retrain it with this platform ({type(exc).__name__})"
            ) from None
    explainer = build_row_explainer(pipeline, family.name, background, int(settings["seed"]))
    single_threaded()
    explainer.explain(background.head(1))  # warm: the first request pays no set-up
    log.info("explainer for %s v%s: %s SHAP (%s)", model, version, explainer.kind,
             explainer.space)  # fmt: skip
    return VersionExplainer(model, version, explainer)


def single_threaded() -> None:
    """One torch thread for the calling thread (the setting is per thread): beside Triton and
    the event loop, spinning intra-op threads made one MLP explanation take 0.3 s, not 20 ms."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


class Explainers:
    """Explainers per (model, version): loaded once each, in a worker thread; LRU of a few."""

    def __init__(self, uri: str | None = None, *, retry_s: float = RETRY_S) -> None:
        self.uri, self.retry_s = uri, retry_s
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="explainer-load")
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="explain")
        self._ready: OrderedDict[tuple[str, str], VersionExplainer] = OrderedDict()
        self._failed: dict[tuple[str, str], tuple[float, Rejected]] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[VersionExplainer]] = {}

    async def get(self, model: str, version: str) -> VersionExplainer:
        """The explainer of `version`; Rejected (503/409) when it cannot be had."""
        key = (model, version)
        if key in self._ready:
            self._ready.move_to_end(key)
            return self._ready[key]
        failed = self._failed.get(key)
        if failed is not None and time.monotonic() - failed[0] < self.retry_s:
            raise failed[1]
        future = self._loading.get(key)
        if future is None:
            uri = self.uri or registry_uri()
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._loader, load_version_explainer, model, version, uri)
            self._loading[key] = future
        try:
            explainer = await asyncio.shield(future)
        except Rejected as exc:
            self._failed[key] = (time.monotonic(), exc)
            raise
        except Exception as exc:  # a loader bug must not become a 500 on every call
            log.exception("explainer for %s v%s failed to load", model, version)
            rejected = _unavailable(f"the explainer failed to load: {type(exc).__name__}: {exc}")
            self._failed[key] = (time.monotonic(), rejected)
            raise rejected from None
        finally:
            self._loading.pop(key, None)
        self._failed.pop(key, None)
        self._ready[key] = explainer
        while len(self._ready) > CACHED_VERSIONS:
            self._ready.popitem(last=False)
        return explainer

    async def explain(
        self, explainer: VersionExplainer, columns: dict[str, list[Any]], text: frozenset[str]
    ) -> tuple[list[list[float]], list[float], list[str]]:
        """Attributions (row x feature), base values and feature names, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, _explain_rows, explainer, columns, text)

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)
        self._worker.shutdown(wait=False, cancel_futures=True)


def _explain_rows(
    explainer: VersionExplainer, columns: dict[str, list[Any]], text: frozenset[str]
) -> tuple[list[list[float]], list[float], list[str]]:
    import numpy as np
    import pandas as pd

    features = list(explainer.explainer.features)
    absent = [f for f in features if f not in columns]
    if absent:
        raise _mismatch(
            f"version {explainer.version} of '{explainer.model}' was explained on features the "
            f"served model does not take: {absent}"
        )
    frame = pd.DataFrame(
        {
            f: [math.nan if v == MISSING_CATEGORY else v for v in columns[f]]  # as trained
            if f in text
            else np.asarray(columns[f], dtype=np.float32).astype(float)  # as Triton read them
            for f in features
        }
    )
    single_threaded()
    try:
        values, base = explainer.explainer.explain(frame)
    except (ValueError, TypeError) as exc:  # a value the model scored but shap cannot take
        raise Rejected(400, "explain_input", f"the rows cannot be explained: {exc}") from None
    return values.to_numpy().tolist(), [float(b) for b in base], features


def parse_top_k(parameters: object, features: int) -> int:
    """`parameters.top_k`: 1..features attributions per row (default `TOP_K`)."""
    value = parameters.get("top_k", TOP_K) if isinstance(parameters, dict) else TOP_K
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Rejected(400, "top_k", "parameters.top_k must be a positive integer")
    return min(value, features)


def explanations(
    values: list[list[float]],
    base: list[float],
    features: list[str],
    columns: dict[str, list[Any]],
    probabilities: list[float],
    decisions: list[int],
    *,
    space: str,
    top_k: int,
    version: str,
) -> list[dict[str, Any]]:
    """Per row: score, decision, base value and the `top_k` largest |attributions|.

    Raises:
        Rejected: 409 when base + attributions do not give the served score: the explainer's
            model is not the one that answered.
    """
    rows = []
    for i, (row, probability) in enumerate(zip(values, probabilities, strict=True)):
        total = base[i] + sum(row)
        implied = _sigmoid(total) if space == "log_odds" else total
        if abs(implied - probability) > SCORE_TOLERANCE:
            raise _mismatch(
                f"the explainer of version {version} scores row {i} {implied:.6f}, the served "
                f"model {probability:.6f}: it is not the model that answered"
            )
        order = sorted(range(len(row)), key=lambda j: -abs(row[j]))[:top_k]
        rows.append(
            {
                "row": i,
                "probability": probability,
                "decision": decisions[i],
                "base_value": base[i],
                "attributions": [
                    {
                        "feature": features[j],
                        "value": _plain(columns[features[j]][i]),
                        "shap": row[j],
                    }
                    for j in order
                ],
            }
        )
    return rows


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    return math.exp(z) / (1.0 + math.exp(z))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return None if value == MISSING_CATEGORY else value


def _unavailable(message: str) -> Rejected:
    return Rejected(503, "explainer_unavailable", message)


def _mismatch(message: str) -> Rejected:
    return Rejected(409, "explainer_version", message)
