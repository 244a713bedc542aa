"""The gateway's ASGI application: the public KServe v2 HTTP endpoint in front of Triton.

Every request is authenticated (when keys are configured), validated against the served
model's contract, forwarded to Triton as a canonical binary request, decided at the threshold
of the version that answered, logged and counted. Answers:

- 2xx: Triton's outputs plus `probability` and `decision`, `parameters.request_id` and
  `parameters.threshold`, headers `X-Request-ID` and `X-Model-Version`;
- 4xx: the client's mistake, `{"error": "...", "rule": "..."}` naming the input and the rule;
- 502/503/504: a failure behind the gateway (Triton down, erroring or slow), with an error body.

Routes: `GET /v2/health/live|ready` (no auth), `GET /v2`, `GET /v2/models/{m}[/versions/{v}]`,
`GET .../ready`, `POST .../infer`, `POST .../explain` (the infer body; per row the score, the
decision and the top-k SHAP attributions of the version that answered: `explain.py`),
`POST .../labels` (late labels for answered rows, keyed by their log ids: `labels.py`; only for
keys granted labels, written to the inference log beside the predictions). Triton's
repository and admin APIs are not exposed, nor are challengers (`serving.challenger_model`):
- a shadow (`<model>__shadow`): with a shadow share set, answered requests are mirrored to it
  after the caller's answer is computed (`shadow.py`), and its scores are logged as shadow rows;
- a canary (`<model>__canary`): the share of a model's unversioned requests its config names
  (`canary_share`, picked by a hash of the request id) is answered by it, decided at its own
  threshold and logged under its version (header `X-Canary: 1`); when it cannot answer, the
  champion does (a `fallback`). Each arm is counted in `gateway_canary_*`; `monitoring.canary`
  moves the share.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from serving.challenger_model import challenger_model_name, is_challenger_model
from serving.decision import PROBABILITIES_OUTPUT
from serving.gateway.auth import ANONYMOUS, KeysFileError, KeyStore
from serving.gateway.contract import (
    Limits,
    ModelContract,
    ParsedRequest,
    Rejected,
    encode_for_triton,
    in_share,
    parse_infer_request,
    takes_inputs_of,
)
from serving.gateway.edge_log import EdgeLog, LogRecord
from serving.gateway.explain import Explainers, explanations, parse_top_k
from serving.gateway.labels import parse_labels_request
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.shadow import ShadowJob, ShadowMirror
from serving.gateway.upstream import Upstream, UpstreamUnavailable, read_answer
from serving.inference_log import CALLER, label_frame, write_labels

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SERVER_NAME = "tabular-mlops-gateway"
KEYS_RELOAD_S = 1.0
CANARY_SALT = "canary"  # the canary's requests are picked independently of the shadow's
SWAP_GRACE_S = 3.0  # default: > Triton's repository poll interval (1 s locally)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
# curl -d sends form-urlencoded by default; the body is still parsed as JSON.
_JSON_TYPES = ("", "application/json", "application/x-www-form-urlencoded")
_BINARY_TYPE = "application/octet-stream"
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class _Call:
    """What one request carries through the handler."""

    method: str
    path: str
    headers: dict[str, str]
    request_id: str
    started: float
    model_label: str = ""
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class _Prediction:
    """A validated request, answered by Triton and decided."""

    parsed: ParsedRequest
    arrived: float
    served: str
    pairs: list[float]  # [n, 2] probabilities, flat
    probabilities: list[float]
    threshold: float
    decisions: list[int]


class Gateway:
    """The ASGI app (uvicorn runs it); `upstream`, `keys` and `edge_log` are its edges."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        keys: KeyStore | None,
        edge_log: EdgeLog | None,
        metrics: GatewayMetrics,
        limits: Limits = Limits(),  # noqa: B008 - frozen, immutable default
        swap_grace_s: float = SWAP_GRACE_S,
        explainers: Explainers | None = None,
        shadow: ShadowMirror | None = None,
    ) -> None:
        self.upstream, self.keys, self.edge_log = upstream, keys, edge_log
        self.shadow = shadow
        self.explainers = explainers if explainers is not None else Explainers()
        self.metrics, self.limits = metrics, limits
        self._keys_checked = time.monotonic()
        self._versions_seen: dict[tuple[str, str], float] = {}
        self.swap_grace_s = swap_grace_s
        metrics.upstream_up.set_function(lambda: float(self.upstream.ready))

    # -- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        call = _Call(scope["method"], scope["path"], headers, "", time.perf_counter())
        try:
            call.request_id = _request_id(headers)
            status, payload = await self._route(call, receive)
        except Rejected as exc:
            status, payload = exc.status, {"error": exc.message, "rule": exc.rule}
            self.metrics.rejections.labels(call.model_label, exc.rule).inc()
            log.info("rejected %s %s (%s, %s): %s", call.method, call.path, exc.status, exc.rule,
                     exc.message)  # fmt: skip
        except Exception as exc:
            log.exception("gateway error on %s %s", call.method, call.path)
            status, payload = 500, {"error": f"gateway error: {type(exc).__name__}"}
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        headers_out = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
        headers_out += call.extra_headers
        if call.request_id:
            headers_out.append((b"x-request-id", call.request_id.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": body})
        if not call.path.startswith("/v2/health"):
            self.metrics.answered(call.model_label, status, time.perf_counter() - call.started)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.upstream.start()
                    if self.edge_log is not None:
                        self.edge_log.start()
                    if self.shadow is not None:
                        self.shadow.start()
                except Exception as exc:  # noqa: BLE001 - reported to uvicorn, which exits
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.shadow is not None:
                    await self.shadow.close()
                await self.upstream.close()
                self.explainers.close()
                if self.edge_log is not None:
                    self.edge_log.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- routing ------------------------------------------------------------------------------

    async def _route(self, call: _Call, receive: Receive) -> tuple[int, Any]:
        parts = call.path.strip("/").split("/")
        if parts[:2] == ["v2", "health"] and len(parts) == 3 and parts[2] in ("live", "ready"):
            _allow(call, "GET")
            return self._health(parts[2])
        if parts[0] != "v2":
            raise Rejected(404, "route", f"no route {call.path}; the API is KServe v2 under /v2")
        if len(parts) == 1:
            _allow(call, "GET")
            self._authenticate(call, "")
            return 200, {"name": SERVER_NAME, "extensions": ["binary_tensor_data"]}
        if parts[1] != "models" or len(parts) < 3:
            raise Rejected(404, "route", f"no route {call.path}")
        model, rest = parts[2], parts[3:]
        version = None
        if rest[:1] == ["versions"]:
            if len(rest) < 2 or not rest[1].isdigit():
                raise Rejected(404, "route", f"no route {call.path}: versions are integers")
            version, rest = rest[1], rest[2:]
        if len(rest) > 1 or (rest and rest[0] not in ("ready", "infer", "explain", "labels")):
            raise Rejected(404, "route", f"no route {call.path}")
        action = rest[0] if rest else "metadata"
        _allow(call, "POST" if action in ("infer", "explain", "labels") else "GET")
        if action == "labels":
            if version is not None:
                raise Rejected(404, "route", f"no route {call.path}: labels are per model")
            return await self._labels(call, receive, model)
        caller = self._authenticate(call, model)
        contract = await self._contract(call, model, version)
        if action == "metadata":
            return 200, {**contract.metadata, "versions": list(contract.versions)}
        if action == "ready":
            return 200, {"name": model, "ready": True}
        explain = action == "explain"
        return await self._answer(call, receive, contract, version, caller, explain=explain)

    def _health(self, which: str) -> tuple[int, Any]:
        if which == "live":
            return 200, {"live": True}
        if self.upstream.ready:
            return 200, {"ready": True}
        return 503, {"error": "Triton behind the gateway is not ready", "ready": False}

    def _authenticate(self, call: _Call, model: str, *, labels: bool = False) -> str:
        if self.keys is None:
            return ANONYMOUS
        if time.monotonic() - self._keys_checked > KEYS_RELOAD_S:  # rotation without restart
            self._keys_checked = time.monotonic()
            try:
                self.keys.reload_if_changed()
            except KeysFileError as exc:
                log.error("keeping the previous API keys: %s", exc)
        return self.keys.authenticate(
            call.headers.get("authorization"), call.headers.get("x-api-key"), model, labels=labels
        )

    async def _contract(self, call: _Call, model: str, version: str | None) -> ModelContract:
        """The served model's contract; an unknown model or version is a 404."""
        if not _MODEL_RE.match(model):
            raise Rejected(404, "unknown_model", f"'{model[:64]}' is not a valid model name")
        if is_challenger_model(model):
            raise Rejected(
                404, "unknown_model", f"'{model}' is a challenger, not addressed by callers"
            )
        contract = self.upstream.contracts.get(model)
        if contract is None or (version is not None and version not in contract.versions):
            await self.upstream.refresh()  # a model or version loaded since the last poll
            contract = self.upstream.contracts.get(model)
        if contract is None:
            if model in self.upstream.unusable:
                reason = self.upstream.unusable[model]
                raise _unavailable(f"model '{model}' cannot be served: {reason}")
            if not self.upstream.ready:
                raise _unavailable("Triton behind the gateway is not ready")
            served = sorted(m for m in self.upstream.contracts if not is_challenger_model(m))
            raise Rejected(404, "unknown_model", f"unknown model '{model}'; served: {served}")
        call.model_label = model
        if self.metrics.serving(model):
            self.metrics.canary_share.labels(model).set_function(lambda: self.canary_share(model))
        if version is not None and version not in contract.versions:
            raise Rejected(
                404,
                "unknown_version",
                f"model '{model}' has no ready version {version}; ready: {list(contract.versions)}",
            )
        return contract

    # -- late labels --------------------------------------------------------------------------

    async def _labels(self, call: _Call, receive: Receive, model: str) -> tuple[int, Any]:
        """Write the late labels of `model`'s answered rows to the inference log, with the
        writer the simulator uses; each row records the caller that posted it."""
        caller = self._authenticate(call, model, labels=True)
        if self.edge_log is None:
            raise Rejected(
                409, "log_disabled", "this gateway runs without the inference log (--no-log): "
                "there are no predictions to label",
            )  # fmt: skip
        await self._contract(call, model, None)
        _require_content_type(call, _JSON_TYPES, "application/json")
        body = await _read_body(call, receive, self.limits.max_body_bytes)
        ids, values = parse_labels_request(body)
        rows = label_frame(ids, values).assign(**{CALLER: caller})
        try:
            await asyncio.to_thread(write_labels, self.edge_log.root, model, rows)
        except OSError as exc:
            log.error("labels of %s from %s not written under %s: %s", model, caller,
                      self.edge_log.root, exc)  # fmt: skip
            raise _unavailable(
                "the inference log cannot take labels now; none were written, retry"
            ) from None
        self.metrics.labels_written.labels(model).inc(len(ids))
        log.info("labels: %d row(s) of %s from %s", len(ids), model, caller)
        return 200, {"model_name": model, "written": len(ids)}

    # -- inference ----------------------------------------------------------------------------

    async def _answer(
        self,
        call: _Call,
        receive: Receive,
        contract: ModelContract,
        version: str | None,
        caller: str,
        *,
        explain: bool,
    ) -> tuple[int, Any]:
        """`infer`, or `explain`: the same, plus per row the top-k attributions of the version
        that answered. Logged only once answered in full."""
        prediction = await self._predict(call, receive, contract, version)
        response = _response(call, contract, prediction)
        if explain:
            parameters, response["explanations"] = await self._explanations(contract, prediction)
            response["parameters"] |= parameters
        self._log(call, contract, prediction, caller)
        if self.shadow is not None:  # after the answer is computed; sent by a worker task
            self.shadow.offer(
                ShadowJob(
                    contract.name, contract, prediction.parsed, call.request_id,
                    prediction.served, _event_time(prediction), prediction.arrived, caller,
                )
            )  # fmt: skip
        return 200, response

    async def _explanations(
        self, contract: ModelContract, prediction: _Prediction
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        parsed = prediction.parsed
        top_k = parse_top_k(parsed.parameters, len(parsed.columns))
        explainer = await self.explainers.get(contract.name, prediction.served)
        values, base, features = await self.explainers.explain(
            explainer, parsed.columns, contract.text_inputs
        )
        rows = explanations(
            values,
            base,
            features,
            parsed.columns,
            prediction.probabilities,
            prediction.decisions,
            space=explainer.space,
            top_k=top_k,
            version=prediction.served,
        )
        kind = explainer.explainer.kind
        return {"explainer": kind, "space": explainer.space, "top_k": top_k}, rows

    async def _predict(
        self, call: _Call, receive: Receive, contract: ModelContract, version: str | None
    ) -> _Prediction:
        """Validate, forward to Triton, decide at the threshold of the version that answered."""
        header_length = call.headers.get("inference-header-content-length")
        allowed = (_BINARY_TYPE, *_JSON_TYPES) if header_length is not None else _JSON_TYPES
        _require_content_type(call, allowed, "application/json (or application/octet-stream "
                              "with Inference-Header-Content-Length)")  # fmt: skip
        body = await _read_body(call, receive, self.limits.max_body_bytes)
        parsed = parse_infer_request(
            body, contract, header_length=header_length, limits=self.limits
        )
        arrived = time.time()
        canary = self._canary(contract) if version is None else None
        routed = canary is not None and in_share(call.request_id, canary.canary_share, CANARY_SALT)
        answer = (
            await self._ask_canary(call, parsed, contract, canary) if canary and routed else None
        )
        if answer is None:  # the champion's arm, or a canary's fallback (counted there)
            arm = "champion" if canary is not None and not routed else ""
            answer = await self._ask(parsed, contract, version, model=contract.name, arm=arm)
        served, pairs, threshold = answer
        probabilities = pairs[1::2]
        decisions = [int(p >= threshold) for p in probabilities]
        for decision in (0, 1):
            count = decisions.count(decision)
            if count:
                self.metrics.decisions.labels(contract.name, served, str(decision)).inc(count)
        call.extra_headers.append((b"x-model-version", served.encode()))
        return _Prediction(parsed, arrived, served, pairs, probabilities, threshold, decisions)

    async def _ask(
        self, parsed: ParsedRequest, target: ModelContract, version: str | None, *, model: str,
        arm: str = "",
    ) -> tuple[str, list[float], float]:  # fmt: skip
        """Forward `parsed` to Triton's `target` model (the public `model`, or its canary): the
        version that answered, the [n, 2] probabilities (flat) and its decision threshold.
        While `model` has a canary, `arm` (champion|canary) counts the outcome and latency in
        its canary metrics; a canary's failure is counted by the caller, as a fallback."""
        try:
            canonical, length = encode_for_triton(parsed, target, [PROBABILITIES_OUTPUT])
            try:
                answer = await self.upstream.infer(target.name, version, canonical, length)
                answered = time.monotonic()
            except UpstreamUnavailable as exc:
                raise _unavailable(f"Triton behind the gateway does not answer: {exc}") from None
            if arm != "canary":
                self.metrics.upstream_seconds.labels(model).observe(answer.seconds)
            if arm:
                self.metrics.canary_upstream_seconds.labels(model, arm).observe(answer.seconds)
            if answer.status != 200:
                raise _upstream_error(answer.status, answer.body)
            served, pairs = read_answer(answer.body, answer.header_length, parsed.rows)
            threshold = await self._threshold(target.name, served, answered)
        except Rejected as exc:
            if arm == "champion":
                outcome = "error" if exc.status >= 500 else "ok"
                self.metrics.canary_requests.labels(model, arm, outcome).inc()
            raise
        if arm:
            self.metrics.canary_requests.labels(model, arm, "ok").inc()
        return served, pairs, threshold

    async def _ask_canary(
        self, call: _Call, parsed: ParsedRequest, champion: ModelContract, canary: ModelContract
    ) -> tuple[str, list[float], float] | None:
        """The canary's answer, or None when it cannot give one: counted as a fallback, and
        the champion answers the caller instead. A failure first refreshes the gateway's view
        of Triton (at most every `min_refresh_s`): when the canary there is another one (a
        successor published since the last poll), it is asked instead, so a stale view never
        counts as the new canary's failure."""
        try:
            answer = await self._try_canary(parsed, champion, canary)
        except Rejected as first:
            failed: Rejected | None = first
            await self.upstream.refresh()
            fresh = self._canary(champion)
            if fresh is not None and fresh is not canary:
                try:
                    answer, failed = await self._try_canary(parsed, champion, fresh), None
                except Rejected as again:
                    failed = again
            if failed is not None:
                log.warning("canary %s did not answer request %s (%s): %s; the champion answers",
                            canary.name, call.request_id, failed.rule, failed.message)  # fmt: skip
                self.metrics.canary_requests.labels(champion.name, "canary", "fallback").inc()
                return None
        call.extra_headers.append((b"x-canary", b"1"))
        return answer

    async def _try_canary(
        self, parsed: ParsedRequest, champion: ModelContract, canary: ModelContract
    ) -> tuple[str, list[float], float]:
        differs = takes_inputs_of(canary, champion)
        too_many = bool(canary.max_batch_size) and parsed.rows > canary.max_batch_size
        if differs is not None or too_many:
            why = f"its input {differs} differs" if differs else "the batch is too large"
            raise Rejected(400, "canary_contract", f"the canary cannot take it: {why}")
        return await self._ask(parsed, canary, None, model=champion.name, arm="canary")

    def _canary(self, contract: ModelContract) -> ModelContract | None:
        """`contract`'s ready canary challenger answering a share > 0 of its callers, if any."""
        canary = self.upstream.contracts.get(challenger_model_name(contract.name, "canary"))
        return canary if canary is not None and canary.canary_share > 0.0 else None

    def canary_share(self, model: str) -> float:
        """The share of `model`'s unversioned requests its canary answers now (0 without one)."""
        contract = self.upstream.contracts.get(model)
        canary = self._canary(contract) if contract is not None else None
        return canary.canary_share if canary is not None else 0.0

    def _log(
        self, call: _Call, contract: ModelContract, prediction: _Prediction, caller: str
    ) -> None:
        if self.edge_log is None:
            return
        parsed = prediction.parsed
        self.edge_log.offer(
            LogRecord(
                request_id=call.request_id,
                timestamp=_event_time(prediction),
                received=prediction.arrived,
                model=contract.name,
                version=prediction.served,
                columns=parsed.columns,
                text_inputs=contract.text_inputs,
                scores=prediction.probabilities,
                decisions=prediction.decisions,
                latency_ms=(time.perf_counter() - call.started) * 1000.0,
                caller=caller,
            )
        )

    async def _threshold(self, model: str, version: str, answered: float) -> float:
        """The decision threshold of the version that answered; 503 when it has none.

        During a swap Triton may serve a new version one repository poll before the config
        that carries its threshold:
        a request waits (at most `swap_grace_s` after the gateway first met the version) for a
        config read after its answer, then fails closed.
        """
        first_seen = self._versions_seen.setdefault((model, version), answered)
        while True:
            contract = self.upstream.contracts.get(model)
            if contract is not None and int(version) in contract.thresholds:
                return contract.thresholds[int(version)]
            if time.monotonic() - first_seen > self.swap_grace_s:
                break
            await self.upstream.refresh(newer_than=answered)
            answered = time.monotonic()
            await asyncio.sleep(0.05)
        raise _unavailable(
            f"version {version} of {model} has no decision threshold (config parameter "
            f"threshold.v{version}); not deciding without one"
        )


def _event_time(prediction: _Prediction) -> float:
    """The log's timestamp: the event time the client stated, else the arrival."""
    stated = prediction.parsed.event_time
    return stated.timestamp() if stated else prediction.arrived


def _allow(call: _Call, method: str) -> None:
    if call.method != method:
        raise Rejected(405, "method", f"{call.path} takes {method}, not {call.method}")


def _require_content_type(call: _Call, allowed: tuple[str, ...], accepts: str) -> None:
    """415 unless the Content-Type is one of `allowed`; `accepts` says what to send."""
    content_type = call.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in allowed:
        raise Rejected(
            415, "content_type", f"Content-Type {content_type!r} is not accepted; send {accepts}"
        )


def _request_id(headers: dict[str, str]) -> str:
    given = headers.get("x-request-id")
    if given is None:
        return uuid.uuid4().hex
    if not _REQUEST_ID_RE.match(given):
        raise Rejected(
            400, "request_id", "X-Request-ID must be 1-128 letters, digits, '.', '_', ':', '-'"
        )
    return given


async def _read_body(call: _Call, receive: Receive, limit: int) -> bytes:
    declared = call.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, "body_size", f"body of {declared} bytes exceeds {limit}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Rejected(400, "body", "the client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "body_size", f"body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _unavailable(message: str) -> Rejected:
    # Not the client's fault: 503 with the same error body shape.
    return Rejected(503, "upstream_unavailable", message)


def _response(call: _Call, contract: ModelContract, prediction: _Prediction) -> dict[str, Any]:
    rows = prediction.parsed.rows
    return {
        "model_name": contract.name,
        "model_version": prediction.served,
        "id": prediction.parsed.client_id or call.request_id,
        "parameters": {"request_id": call.request_id, "threshold": prediction.threshold},
        "outputs": [
            {
                "name": PROBABILITIES_OUTPUT,
                "datatype": "FP32",
                "shape": [rows, 2],
                "data": prediction.pairs,
            },
            {
                "name": "probability",
                "datatype": "FP32",
                "shape": [rows],
                "data": prediction.probabilities,
            },
            {
                "name": "decision",
                "datatype": "INT32",
                "shape": [rows],
                "data": prediction.decisions,
            },
        ],
    }


def _upstream_error(status: int, body: bytes) -> Rejected:
    """Triton refused or failed a request the gateway had validated."""
    try:
        message = str(orjson.loads(body).get("error", ""))
    except (orjson.JSONDecodeError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    if 400 <= status < 500:
        # A rule the gateway does not know yet (e.g. a value the graph cannot take).
        return Rejected(400, "model", f"the model refused the request: {message}")
    return Rejected(502, "upstream_error", f"Triton failed the request (HTTP {status}): {message}")
