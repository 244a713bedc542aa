"""The gateway's view of Triton: which models and versions are ready, and the forwarded call.

A poll (every `poll_s`) asks Triton for its readiness and repository index and rebuilds the
contracts of models whose versions or config changed; `refresh()` runs the same poll on
demand (single-flight, at most every `min_refresh_s`) when a request meets a model, version
or threshold the gateway has not seen yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import orjson

from serving.decision import PROBABILITIES_OUTPUT
from serving.gateway.contract import ModelContract, Rejected
from serving.gateway.http1 import ConnectionPool, UpstreamError

log = logging.getLogger(__name__)


class UpstreamUnavailable(Exception):  # noqa: N818 - a state of Triton, answered 503
    """Triton does not answer (refused, reset, timed out)."""


@dataclass(frozen=True)
class UpstreamAnswer:
    """Triton's status and body for one forwarded request."""

    status: int
    body: bytes
    seconds: float
    header_length: int | None = None  # binary outputs: the JSON header's length


class Upstream:
    """One Triton HTTP endpoint behind the gateway (a keep-alive connection pool)."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        poll_s: float = 1.0,
        min_refresh_s: float = 0.2,
        connections: int = 64,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s, self.poll_s, self.min_refresh_s = timeout_s, poll_s, min_refresh_s
        self.connections = connections
        self.contracts: dict[str, ModelContract] = {}
        self.unusable: dict[str, str] = {}  # model -> why the gateway cannot serve it
        # models in Triton's repository without a ready version -> state and reason
        self.not_ready: dict[str, str] = {}
        self.ready = False
        self._pool: ConnectionPool | None = None
        self._configs: dict[str, tuple[tuple[str, ...], bytes]] = {}
        self._refresh_lock = asyncio.Lock()
        self._last_refresh = 0.0
        self._poller: asyncio.Task | None = None

    async def start(self) -> None:
        """Open the connection pool, poll once, then keep polling in the background."""
        parts = urlsplit(self.base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://host:port, got {self.base_url!r}")
        self._pool = ConnectionPool(
            parts.hostname, parts.port or 80, size=self.connections, timeout_s=self.timeout_s
        )
        await self.refresh(force=True)
        self._poller = asyncio.create_task(self._poll_forever(), name="triton-poll")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self._pool is not None:
            self._pool.close()

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError("Upstream.start() was not awaited")
        return self._pool

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            await self.refresh(force=True)

    async def refresh(self, *, force: bool = False, newer_than: float | None = None) -> None:
        """Re-read liveness and contracts.

        On demand (default) at most every `min_refresh_s`; `force` always; `newer_than` (a
        `time.monotonic()` reading) unless a refresh begun after that moment has completed,
        so requests that met the same new version share one refresh.
        """
        if self._fresh(force, newer_than):
            return
        async with self._refresh_lock:
            if self._fresh(force, newer_than):
                return  # another request refreshed while this one waited
            started = time.monotonic()
            try:
                await self._refresh()
            except (UpstreamError, ValueError, KeyError) as exc:
                if self.ready:
                    log.warning("Triton at %s is not answering: %s", self.base_url, exc)
                self.ready = False
            self._last_refresh = started

    def _fresh(self, force: bool, newer_than: float | None) -> bool:
        if newer_than is not None:
            return self._last_refresh > newer_than
        return not force and time.monotonic() - self._last_refresh < self.min_refresh_s

    async def _refresh(self) -> None:
        # Triton's own readiness is false while any model loads (strict readiness), which would
        # take the whole endpoint out of a load balancer during every version swap: the
        # gateway is ready when Triton is live and serves at least one model.
        live = await self._get_status("/v2/health/live") == 200
        index = await self._post_json("/v2/repository/index", {})
        versions: dict[str, list[str]] = {}
        reasons: dict[str, str] = {}
        for item in index:
            if item.get("state") == "READY":
                versions.setdefault(item["name"], []).append(str(item.get("version", "")))
            else:
                reasons.setdefault(item["name"], f"{item.get('state')}: {item.get('reason', '')}")
        self.not_ready = {name: why for name, why in reasons.items() if name not in versions}
        contracts, unusable = {}, {}
        for name, ready_versions in versions.items():
            metadata = await self._get_json(f"/v2/models/{name}")
            config_raw = await self._get_bytes(f"/v2/models/{name}/config")
            key = (tuple(sorted(ready_versions)), config_raw)
            previous = self.contracts.get(name)
            if previous is not None and self._configs.get(name) == key:
                contracts[name] = previous
                continue
            try:
                contracts[name] = ModelContract.from_triton(
                    metadata, orjson.loads(config_raw), ready_versions
                )
            except (ValueError, KeyError) as exc:
                if name not in self.unusable:
                    log.error("model %s cannot be served through the gateway: %s", name, exc)
                unusable[name] = str(exc)
                continue
            self._configs[name] = key
        self.contracts, self.unusable = contracts, unusable
        self.ready = live and bool(contracts)

    async def _get_status(self, path: str) -> int:
        return (await self.pool.request("GET", path)).status

    async def _get_bytes(self, path: str) -> bytes:
        response = await self.pool.request("GET", path)
        if response.status != 200:
            raise ValueError(f"GET {path}: HTTP {response.status}")
        return response.body

    async def _get_json(self, path: str):
        return orjson.loads(await self._get_bytes(path))

    async def _post_json(self, path: str, payload: object):
        response = await self.pool.request("POST", path, orjson.dumps(payload))
        if response.status != 200:
            raise ValueError(f"POST {path}: HTTP {response.status}")
        return orjson.loads(response.body)

    async def infer(
        self, model: str, version: str | None, body: bytes, header_length: int
    ) -> UpstreamAnswer:
        """Forward a canonical request; UpstreamUnavailable when Triton does not answer."""
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        headers = {
            "Inference-Header-Content-Length": str(header_length),
            "Content-Type": "application/octet-stream",
        }
        started = time.perf_counter()
        try:
            response = await self.pool.request("POST", path, body, headers)
        except UpstreamError as exc:
            self.ready = False
            raise UpstreamUnavailable(str(exc)) from None
        length = response.headers.get("inference-header-content-length")
        seconds = time.perf_counter() - started
        return UpstreamAnswer(
            response.status, response.body, seconds, int(length) if length else None
        )


def read_answer(body: bytes, header_length: int | None, rows: int) -> tuple[str, list[float]]:
    """The version that answered and its [n, 2] probabilities, flat (row-major).

    Triton answers with binary outputs (no JSON float formatting, and NaN survives); a
    non-finite probability is the model's failure, not the client's: 502.
    """
    try:
        header = orjson.loads(body[:header_length] if header_length else body)
        version = str(header["model_version"])
        output = next(o for o in header["outputs"] if o["name"] == PROBABILITIES_OUTPUT)
        if header_length:
            offset = header_length
            for item in header["outputs"]:
                size = int(item["parameters"]["binary_data_size"])
                if item is output:
                    data = np.frombuffer(body[offset : offset + size], dtype="<f4")
                    break
                offset += size
        else:
            data = np.asarray(output["data"], dtype=np.float32)
    except (orjson.JSONDecodeError, KeyError, StopIteration, TypeError, ValueError) as exc:
        raise Rejected(502, "upstream_answer", f"Triton's answer is unreadable: {exc}") from None
    if data.size != 2 * rows:
        raise Rejected(
            502, "upstream_answer", f"Triton returned {data.size} probabilities for {rows} rows"
        )
    if not np.isfinite(data).all():
        row = int(np.flatnonzero(~np.isfinite(data))[0]) // 2
        raise Rejected(
            502, "upstream_answer", f"the model returned a non-finite probability for row {row}"
        )
    return version, data.astype(float).tolist()
