"""Canary rollout for real: a real Triton serving a champion and a canary challenger published
from a real MLflow registry, a real gateway routing between them, a real Prometheus scraping
the gateway (1 s), late labels, and the controller (`monitoring.canary`) deciding on them.

Shows: the canary answers exactly its share of unversioned callers (the same ones on a replay)
and never a versioned request; callers cannot address it; a good canary steps up (the gateway
follows the new share) and is promoted by compare-and-swap; a canary that cannot answer is a
fallback the caller never sees, and is rolled back on its error rate; a canary worse on
labelled live rows is rolled back on quality; unreadable evidence moves nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import onnx
import pytest
import requests

from configs import load_config
from models import registry
from monitoring import canary
from monitoring.stack import PrometheusStack, wait_for_query, wait_for_targets
from serving import deploy
from serving.challenger_model import challenger_model_name, publish_challenger, withdraw_challenger
from serving.gateway import cli
from serving.gateway.contract import in_share
from serving.inference_log import read_log
from serving.model_repository import list_versions
from serving.processes import free_ports
from tests.conftest import write_config as write_project
from tests.integration.test_gateway import start_gateway, start_triton
from tests.integration.test_shadow import _body, _metric, register, weighted_onnx
from tests.integration.test_triton_server import wait_for

pytestmark = pytest.mark.integration

PROJECT = "canarytest"
MODEL = f"{PROJECT}-classifier"
SALT = "canary"


def _register(onnx_bytes: bytes, threshold: float) -> str:
    return register(onnx_bytes, threshold, None, model=MODEL)


def _renamed_input_version() -> str:
    """A registered version that takes input `x2`, not the callers' `x` (renamed in training)."""
    graph = onnx.load_from_string(weighted_onnx(1.0))
    graph.graph.input[0].name = "x2"
    for node in graph.graph.node:
        node.input[:] = ["x2" if name == "x" else name for name in node.input]
    return _register(graph.SerializeToString(), 0.5)


def _hold(version: str, champion: str, share: float) -> None:
    registry.hold_challenger(MODEL, "canary", version, champion=champion,
                             tags={"share": f"{share:g}", "step": "0"})  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tracking):
    """Champion v1 (weight +1) and canary v2 (weight +1.2) at share 0.3 in one Triton; a
    gateway; Prometheus scraping the gateway and Triton every second."""
    root = tmp_path_factory.mktemp("canary")
    champion = _register(weighted_onnx(1.0), 0.5)
    challenger = _register(weighted_onnx(1.2), 0.5)
    registry.promote(registry.Version(MODEL, champion, None), "first", expected=None)
    repo = root / "repo"
    deploy.deploy_version(MODEL, champion, repo)
    publish_challenger(repo, MODEL, challenger, "canary", share=0.3)
    _hold(challenger, champion, 0.3)
    ports = tuple(free_ports(3))
    triton = start_triton(repo, root / "triton", ports)
    upstream = f"http://127.0.0.1:{ports[0]}"
    gateway = start_gateway(root / "gw", upstream, root / "log")
    prometheus = PrometheusStack(root / "prometheus")
    try:
        prometheus.start(prometheus_port=0, pushgateway_port=0,
                         triton_metrics=f"127.0.0.1:{ports[2]}",
                         gateway_metrics=gateway.metrics.split("//")[1].split("/")[0],
                         scrape_interval="1s", timeout_s=20)  # fmt: skip
        wait_for(lambda: _version(gateway, "warm-up") is not None, 60, "the gateway")
        wait_for_targets(prometheus.prometheus_url, ("gateway",), timeout_s=20)
        project = write_project(
            root / "project.yaml", name=PROJECT,
            gate={"canary_before_promotion": True},
            evaluation={"bootstrap_samples": 200},
            # latency_floor_ms: here a step's p99 is one of ~70 requests on CPUs shared with the
            # rest of the suite, so one hiccup would judge it; the rule is unit-tested
            # (tests/unit/monitoring/test_canary.py) and measured by Prometheus as in production.
            canary={"steps": [0.3, 0.6], "step_min_minutes": 0, "step_min_requests": 20,
                    "min_labelled_rows": 50, "min_positives": 5, "max_error_rate": 0.05,
                    "latency_floor_ms": 500},
            monitoring={"log_path": str(gateway.log_root)},
        )  # fmt: skip
        yield SimpleNamespace(root=root, repo=repo, gateway=gateway, triton_url=upstream,
                              prometheus=prometheus.prometheus_url, champion=champion,
                              challenger=challenger, config=load_config(str(project)))  # fmt: skip
    finally:
        cli.main(["stop", "--run-dir", str(gateway.run_dir)])
        prometheus.stop()
        triton.stop()


def _post(gateway, rid: str, x: float, *, version: str | None = None) -> requests.Response:
    where = f"/versions/{version}" if version else ""
    url = f"{gateway.url}/v2/models/{MODEL}{where}/infer"
    headers = {"Content-Type": "application/json", "X-Request-ID": rid}
    body = _body(np.array([x]), ["yes" if x > 0 else "no"])
    return requests.post(url, data=body, timeout=10, headers=headers)


def _version(gateway, rid: str) -> str | None:
    try:
        answer = _post(gateway, rid, 0.1)
    except requests.RequestException:
        return None
    return answer.headers.get("x-model-version") if answer.status_code == 200 else None


def _traffic(stack, prefix: str, n: int, seed: int) -> dict[str, str]:
    """`n` one-row requests; {row id: version that answered}. Labels follow +x."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).round(3)
    answered = {}
    for i in range(n):
        answer = _post(stack.gateway, f"{prefix}-{i}", float(x[i]))
        assert answer.status_code == 200, answer.text
        answered[f"{prefix}-{i}"] = answer.headers["x-model-version"]  # a one-row request's row id
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-3.0 * x))).astype(int)
    labels = [{"id": i, "label": int(v)} for i, v in zip(answered, y, strict=True)]
    url = f"{stack.gateway.url}/v2/models/{MODEL}/labels"  # as the application's labeller posts
    posted = requests.post(url, json={"labels": labels}, timeout=30)
    assert posted.json() == {"model_name": MODEL, "written": n}, posted.text
    return answered


def _logged(stack, ids: set[str]) -> None:
    def all_there() -> bool:
        rows = read_log(stack.gateway.log_root, MODEL)
        return not rows.empty and ids <= set(rows["request_id"])

    wait_for(all_there, 20, "the gateway's log")


def _tick(stack, tmp_path: Path, prometheus: str | None = None) -> dict:
    entry = canary.tick(stack.config, prometheus=prometheus or stack.prometheus,
                        log_root=stack.gateway.log_root, repo=stack.repo,
                        triton_url=stack.triton_url, out=tmp_path)  # fmt: skip
    assert entry is not None
    assert json.loads(Path(entry["path"]).read_text())["decision"] == entry["decision"]
    return entry


def _counted(stack, arm: str, outcome: str) -> float:
    labels = f'arm="{arm}",model="{MODEL}",outcome="{outcome}"'
    return _metric(stack.gateway, f"gateway_canary_requests_total{{{labels}}}")


def test_the_canary_answers_its_share_of_callers_and_nothing_else(stack):
    before = _counted(stack, "champion", "ok")  # the warm-up request
    answered = _traffic(stack, "share", 200, seed=1)
    routed = {rid for rid in answered if in_share(rid, 0.3, SALT)}
    assert {r for r, v in answered.items() if v == stack.challenger} == routed
    assert 40 <= len(routed) <= 80
    assert _counted(stack, "canary", "ok") == len(routed)
    assert _counted(stack, "champion", "ok") - before == 200 - len(routed)
    gauge = _metric(stack.gateway, f'gateway_canary_share{{model="{MODEL}"}}')
    assert gauge == pytest.approx(0.3)
    # a replay is routed the same way; a versioned request never goes to the canary
    rid = next(iter(routed))
    assert _post(stack.gateway, rid, 0.5).headers["x-model-version"] == stack.challenger
    pinned = _post(stack.gateway, rid, 0.5, version=stack.champion)
    assert pinned.headers["x-model-version"] == stack.champion
    refused = requests.post(f"{stack.gateway.url}/v2/models/{MODEL}__canary/infer",
                            data=_body(np.array([0.1]), ["no"]), timeout=10)  # fmt: skip
    assert refused.status_code == 404 and "is a challenger" in refused.json()["error"]
    _logged(stack, set(answered))


def test_unreadable_evidence_moves_nothing(stack, tmp_path):
    (dead,) = free_ports(1)
    entry = _tick(stack, tmp_path, prometheus=f"http://127.0.0.1:{dead}")
    assert entry["decision"] == "hold" and entry["share_after"] == 0.3
    assert entry["reasons"][0].startswith("evidence unreadable, nothing moves: Prometheus")
    assert registry.challenger_version(MODEL, "canary") == stack.challenger


def test_a_good_canary_steps_up_and_is_promoted(stack, tmp_path):
    wait_for_query(stack.prometheus, f'gateway_canary_requests_total{{model="{MODEL}",'
                   'arm="canary",outcome="ok"} > 20', timeout_s=20)  # fmt: skip
    step = _tick(stack, tmp_path)
    assert step["decision"] == "step" and step["share_after"] == 0.6, step["reasons"]
    tags = mlflow.MlflowClient().get_model_version(MODEL, stack.challenger).tags
    assert tags["canary.share"] == "0.6" and tags["canary.step"] == "1"
    wait_for(lambda: _metric(stack.gateway, f'gateway_canary_share{{model="{MODEL}"}}') == 0.6,
             20, "the gateway to route 0.6")  # fmt: skip
    before = _counted(stack, "canary", "ok")
    answered = _traffic(stack, "step2", 120, seed=2)
    routed = {rid for rid in answered if in_share(rid, 0.6, SALT)}
    assert {r for r, v in answered.items() if v == stack.challenger} == routed
    _logged(stack, set(answered))
    # the controller reads the step's requests from Prometheus: wait for the scrape that has them
    # (on a loaded CI machine the last 1 s scrape can lag the traffic by seconds)
    scraped = before + len(routed)
    wait_for_query(stack.prometheus, f'gateway_canary_requests_total{{model="{MODEL}",'
                   f'arm="canary",outcome="ok"}} >= {scraped}', timeout_s=20)  # fmt: skip
    promoted = _tick(stack, tmp_path)
    assert promoted["decision"] == "promote", promoted["reasons"]
    quality = promoted["checks"]["quality"]
    assert quality["rows"]["canary"] >= 50 and quality["rows"]["champion"] >= 50
    assert registry.champion_version(MODEL) == stack.challenger
    assert registry.challenger_version(MODEL, "canary") is None
    assert registry.champion_history(MODEL)[-1]["event"].startswith("promoted by canary")
    assert list_versions(stack.repo, challenger_model_name(MODEL, "canary")) == []
    wait_for(lambda: _version(stack.gateway, "after-promotion") == stack.challenger, 30,
             "the new champion to answer every caller")  # fmt: skip


def test_a_canary_that_cannot_answer_falls_back_and_is_rolled_back(stack, tmp_path):
    """It takes an input the callers do not send (a feature renamed in training): every routed
    request falls back to the champion (callers see 200s), and its failures roll it back."""
    champion = registry.champion_version(MODEL)
    bad = _renamed_input_version()
    publish_challenger(stack.repo, MODEL, bad, "canary", share=0.5)
    name = challenger_model_name(MODEL, "canary")
    _hold(bad, champion, 0.5)
    wait_for(lambda: _metric(stack.gateway, f'gateway_canary_share{{model="{MODEL}"}}') == 0.5,
             30, "the gateway to route to the broken canary")  # fmt: skip
    before = {
        arm: _counted(stack, arm, o) for arm, o in (("canary", "fallback"), ("champion", "ok"))
    }
    answered = _traffic(stack, "broken", 60, seed=3)
    assert set(answered.values()) == {champion}  # every caller answered by the champion
    routed = {rid for rid in answered if in_share(rid, 0.5, SALT)}
    assert _counted(stack, "canary", "fallback") - before["canary"] == len(routed) > 15
    assert _counted(stack, "champion", "ok") - before["champion"] == 60 - len(routed)
    scraped = before["canary"] + len(routed)
    wait_for_query(stack.prometheus, f'gateway_canary_requests_total{{model="{MODEL}",'
                   f'arm="canary",outcome="fallback"}} >= {scraped}', timeout_s=20)  # fmt: skip
    entry = _tick(stack, tmp_path)
    assert entry["decision"] == "rollback" and "canary requests failed" in entry["reasons"][0]
    assert registry.challenger_version(MODEL, "canary") is None
    assert registry.champion_version(MODEL) == champion
    tags = mlflow.MlflowClient().get_model_version(MODEL, bad).tags
    assert tags["canary.outcome"].startswith("rolled back: ")
    assert list_versions(stack.repo, name) == []


def test_a_canary_worse_on_live_rows_is_rolled_back(stack, tmp_path):
    champion = registry.champion_version(MODEL)
    worse = _register(weighted_onnx(-1.0), 0.5)  # ranks the labels backwards
    publish_challenger(stack.repo, MODEL, worse, "canary", share=0.5, triton_url=stack.triton_url)
    _hold(worse, champion, 0.5)
    routed = next(f"probe-{i}" for i in range(100) if in_share(f"probe-{i}", 0.5, SALT))
    wait_for(lambda: _version(stack.gateway, routed) == worse, 30,
             "the gateway to route to the worse canary")  # fmt: skip
    answered = _traffic(stack, "worse", 200, seed=4)
    assert worse in set(answered.values())
    _logged(stack, set(answered))
    entry = _tick(stack, tmp_path)
    assert entry["decision"] == "rollback", entry["reasons"]
    assert entry["reasons"][0].startswith("worse than the champion on live rows")
    assert registry.challenger_version(MODEL, "canary") is None
    wait_for(lambda: _metric(stack.gateway, f'gateway_canary_share{{model="{MODEL}"}}') == 0.0,
             30, "the gateway to stop routing")  # fmt: skip
    assert _version(stack.gateway, "after-rollback") == champion


def test_a_gateway_that_has_not_seen_the_new_canary_asks_it_not_the_old_one(stack, tmp_path):
    """A gateway polling Triton rarely still holds the previous canary (one that cannot take
    the callers' inputs) when its successor is published: the failed request re-reads Triton
    and is answered by the successor, not counted as its fallback."""
    champion = registry.champion_version(MODEL)
    old = _renamed_input_version()
    publish_challenger(stack.repo, MODEL, old, "canary", share=1.0, triton_url=stack.triton_url)
    slow = start_gateway(tmp_path / "gw", stack.triton_url, tmp_path / "log", "--poll-s", "3600")
    try:
        successor = _register(weighted_onnx(1.2), 0.5)
        publish_challenger(stack.repo, MODEL, successor, "canary", share=1.0,
                           triton_url=stack.triton_url)  # fmt: skip
        answer = _post(slow, "after-the-swap", 0.5)
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model-version"] == successor != champion
        assert answer.headers.get("x-canary") == "1"
        counted = {o: _metric(slow, f'gateway_canary_requests_total{{arm="canary",model="{MODEL}",'
                                    f'outcome="{o}"}}') for o in ("ok", "fallback")}  # fmt: skip
        assert counted == {"ok": 1, "fallback": 0}
    finally:
        cli.main(["stop", "--run-dir", str(slow.run_dir)])
        withdraw_challenger(stack.repo, MODEL, "canary")
