"""Shadow traffic: a share of answered requests mirrored to the model's shadow challenger.

The caller's answer never waits for the shadow: `ShadowMirror.offer` runs on the request path
after the answer is computed and only decides (a hash of the request id against the share,
so the same ids are mirrored on every replay) and puts a job on a bounded queue; a few worker
tasks send the jobs to the Triton model `<model>__shadow` (`serving.challenger_model`), decide at
the challenger's own threshold and log its scores as shadow rows under the caller's request
id (`EdgeLog`, folder `shadow/`). Whatever goes wrong on the way (no shadow version loaded, a
contract the challenger does not share, a full queue, Triton failing or slow) is counted in
`gateway_shadow_failures_total{reason}` and logged at debug level; the caller never sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from serving.challenger_model import challenger_model_name
from serving.decision import PROBABILITIES_OUTPUT
from serving.gateway.contract import (
    ModelContract,
    ParsedRequest,
    Rejected,
    encode_for_triton,
    in_share,
    takes_inputs_of,
)
from serving.gateway.edge_log import EdgeLog, LogRecord
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.upstream import Upstream, UpstreamUnavailable, read_answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowJob:
    """One answered request to mirror."""

    model: str  # the public model the caller called
    contract: ModelContract  # the champion's, which the request was validated against
    parsed: ParsedRequest
    request_id: str
    served: str  # the version that answered the caller
    timestamp: float
    received: float
    caller: str


class ShadowFailed(Exception):  # noqa: N818 - a counted outcome, not an error of the gateway
    """A mirrored request the shadow did not answer; `reason` labels the failure metric."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ShadowMirror:
    """Bounded, off-path mirroring of answered requests to `<model>__shadow`."""

    def __init__(
        self,
        upstream: Upstream,
        edge_log: EdgeLog | None,
        metrics: GatewayMetrics,
        *,
        share: float,
        queue_size: int = 1000,
        concurrency: int = 4,
        timeout_s: float = 5.0,
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"shadow share must be within [0, 1], got {share}")
        if queue_size < 1 or concurrency < 1:
            raise ValueError("shadow queue size and concurrency must be >= 1")
        self.upstream, self.edge_log, self.metrics = upstream, edge_log, metrics
        self.share, self.queue_size, self.concurrency = share, queue_size, concurrency
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue[ShadowJob] | None = None
        self._workers: list[asyncio.Task] = []

    @property
    def enabled(self) -> bool:
        return self.share > 0.0 and self.edge_log is not None

    def start(self) -> None:
        """Start the worker tasks (in the gateway's event loop, at lifespan startup)."""
        if not self.enabled:
            return
        self._queue = asyncio.Queue(self.queue_size)
        self.metrics.shadow_queue_depth.set_function(
            lambda: float(self._queue.qsize()) if self._queue is not None else 0.0
        )
        self._workers = [
            asyncio.create_task(self._work(), name=f"shadow-{i}") for i in range(self.concurrency)
        ]

    async def close(self) -> None:
        """Stop the workers; jobs still queued are not sent (counted as `shutdown`)."""
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._queue is not None:
            while not self._queue.empty():
                job = self._queue.get_nowait()
                self.metrics.shadow_failures.labels(job.model, "shutdown").inc()

    def offer(self, job: ShadowJob) -> bool:
        """Queue `job` when its model has a shadow and its id is in the share; never blocks or
        raises. Returns whether it was queued."""
        if self._queue is None or not in_share(job.request_id, self.share):
            return False
        target = challenger_model_name(job.model, "shadow")
        if target not in self.upstream.contracts:
            if target in self.upstream.not_ready or target in self.upstream.unusable:
                self.metrics.shadow_failures.labels(job.model, "not_loaded").inc()
            return False  # no shadow challenger for this model: nothing to mirror
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.metrics.shadow_failures.labels(job.model, "queue_full").inc()
            return False
        return True

    async def _work(self) -> None:
        queue = self._queue
        if queue is None:
            return
        while True:
            job = await queue.get()
            try:
                await self._mirror(job)
            except ShadowFailed as exc:
                self.metrics.shadow_failures.labels(job.model, exc.reason).inc()
                log.debug("shadow of %s for %s: %s", job.model, job.request_id, exc)
            except Exception:  # the shadow must never take the gateway down: counted, logged
                self.metrics.shadow_failures.labels(job.model, "error").inc()
                log.exception("shadow of %s for %s failed", job.model, job.request_id)
            finally:
                queue.task_done()

    async def _mirror(self, job: ShadowJob) -> None:
        target = challenger_model_name(job.model, "shadow")
        contract = self.upstream.contracts.get(target)
        if contract is None:
            raise ShadowFailed("not_loaded", f"{target} is not ready in Triton")
        differs = takes_inputs_of(contract, job.contract)
        if differs is not None:
            raise ShadowFailed(
                "contract", f"input {differs} of the shadow differs from the champion's"
            )
        if contract.max_batch_size and job.parsed.rows > contract.max_batch_size:
            raise ShadowFailed("contract", f"{job.parsed.rows} rows > {target}'s batch size")
        canonical, length = encode_for_triton(job.parsed, contract, [PROBABILITIES_OUTPUT])
        started = time.perf_counter()
        try:
            answer = await asyncio.wait_for(
                self.upstream.infer(target, None, canonical, length), self.timeout_s
            )
        except TimeoutError:
            raise ShadowFailed("timeout", f"no answer in {self.timeout_s:g} s") from None
        except UpstreamUnavailable as exc:
            raise ShadowFailed("upstream_unavailable", str(exc)) from None
        seconds = time.perf_counter() - started
        self.metrics.shadow_seconds.labels(job.model).observe(seconds)
        if answer.status != 200:
            raise ShadowFailed("upstream_error", f"HTTP {answer.status}: {answer.body[:200]!r}")
        try:
            version, pairs = read_answer(answer.body, answer.header_length, job.parsed.rows)
        except Rejected as exc:
            raise ShadowFailed("answer", exc.message) from None
        threshold = contract.thresholds.get(int(version))
        if threshold is None:
            raise ShadowFailed("threshold", f"{target} v{version} has no threshold")
        scores = pairs[1::2]
        if self.edge_log is None or not self.edge_log.offer(
            LogRecord(
                request_id=job.request_id,
                timestamp=job.timestamp,
                received=job.received,
                model=job.model,
                version=version,
                columns={},
                text_inputs=frozenset(),
                scores=scores,
                decisions=[int(p >= threshold) for p in scores],
                latency_ms=seconds * 1000.0,
                caller=job.caller,
                shadow_of=job.served,
            )
        ):
            raise ShadowFailed("log_full", "the inference log buffer is full")
        self.metrics.shadow_mirrored.labels(job.model).inc()
