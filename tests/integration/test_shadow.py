"""Shadow traffic for real: a real Triton serving a champion and its shadow challenger (both
published from a real MLflow registry), two real gateways in front of it (shadow share 1 and
0), late labels, and the shadow comparison and promotion CLI on that log.

Shows: the caller's answer is byte-identical with shadow on and off; the challenger's scores
are logged as shadow rows under the caller's row ids (never among served rows); a shadow that
Triton cannot load leaves every caller's 200 untouched and is counted; the comparison pairs
labelled live rows; the decision record names the evidence that decided; a promotion moves
`champion` by compare-and-swap and withdraws the shadow.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import orjson
import pandas as pd
import pytest
import requests
from onnx import TensorProto, checker, helper, numpy_helper

from configs import load_config
from models import registry
from monitoring import shadow as shadow_cli
from serving import deploy
from serving.challenger_model import challenger_model_name, publish_challenger
from serving.decision import threshold_parameters
from serving.gateway import cli
from serving.inference_log import label_frame, read_log, read_shadow, write_labels
from serving.model_repository import (
    CONFIG_FILENAME,
    list_versions,
    python_model_source,
    triton_config,
    write_version,
)
from serving.processes import free_ports
from tests.conftest import write_config
from tests.integration.test_gateway import start_gateway, start_triton
from tests.integration.test_triton_server import wait_for

pytestmark = pytest.mark.integration

PROJECT = "shadowtest"
MODEL = f"{PROJECT}-classifier"
REQUESTS, ROWS = 30, 10  # 300 live rows
CHAMPION_THRESHOLD, CHALLENGER_THRESHOLD = 0.6, 0.5


def weighted_onnx(weight: float) -> bytes:
    """x FP32 [N,1], c STRING [N,1] -> [1-p, p]; p = sigmoid(weight * x + (c == "yes"))."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    c = helper.make_tensor_value_info("c", TensorProto.STRING, ["N", 1])
    probabilities = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
    label = helper.make_tensor_value_info("label", TensorProto.INT64, ["N"])
    initializers = [
        numpy_helper.from_array(np.array(["yes"], dtype=object), "yes"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([weight], dtype=np.float32), "weight"),
    ]
    nodes = [
        helper.make_node("Equal", ["c", "yes"], ["is_yes"]),
        helper.make_node("Cast", ["is_yes"], ["bonus"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x", "weight"], ["wx"]),
        helper.make_node("Add", ["wx", "bonus"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(nodes, "weighted", [x, c], [probabilities, label], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    checker.check_model(model)
    return model.SerializeToString()


def probability(weight: float, x: np.ndarray, c: list[str]) -> np.ndarray:
    z = weight * x + np.array([v == "yes" for v in c], dtype=float)
    return 1.0 / (1.0 + np.exp(-z))


def register(onnx_bytes: bytes, threshold: float, decision: dict | None, model: str = MODEL) -> str:
    """A registered version as the pipeline leaves it for serving: ONNX in its run (hash and
    threshold as tags) and, for a challenger, the gate's decision record."""
    client = mlflow.MlflowClient()
    with mlflow.start_run(experiment_id=registry.experiment_id(model)) as run:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "model.onnx").write_bytes(onnx_bytes)
            mlflow.log_artifact(str(Path(tmp) / "model.onnx"), "onnx")
        if decision is not None:
            mlflow.log_dict(decision, "reports/decision.json")
    if not client.search_registered_models(f"name = '{model}'"):
        client.create_registered_model(model)
    version = client.create_model_version(
        model, source=f"{run.info.artifact_uri}/onnx", run_id=run.info.run_id,
        tags={"threshold": repr(threshold),
              registry.ONNX_SHA256_TAG: registry.sha256_hex(onnx_bytes)},
    )  # fmt: skip
    return str(version.version)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tracking):
    """Champion v1 (weight +1) and shadow challenger v2 (weight -1) published from the registry
    into one Triton; gateway `on` mirrors every request, gateway `off` none."""
    root = tmp_path_factory.mktemp("shadow")
    champion = register(weighted_onnx(1.0), CHAMPION_THRESHOLD, None)
    offline = {"promote": True, "previous_champion": champion, "test_sha256": "t",
               "reasons": ["challenger beats champion on the test set"]}  # fmt: skip
    challenger = register(weighted_onnx(-1.0), CHALLENGER_THRESHOLD, offline)
    registry.promote(registry.Version(MODEL, champion, None), "first", expected=None)
    repo = root / "repo"
    deploy.deploy_version(MODEL, champion, repo)
    publish_challenger(repo, MODEL, challenger, "shadow")
    registry.hold_challenger(MODEL, "shadow", challenger, champion=champion)
    ports = tuple(free_ports(3))
    triton = start_triton(repo, root / "triton", ports)
    upstream = f"http://127.0.0.1:{ports[0]}"
    on = start_gateway(root / "on", upstream, root / "log-on", "--shadow-share", "1")
    off = start_gateway(root / "off", upstream, root / "log-off")
    try:
        wait_for(lambda: _ready(on, MODEL), 60, "the champion behind the gateway")
        yield SimpleNamespace(root=root, repo=repo, on=on, off=off, triton_url=upstream,
                              champion=champion, challenger=challenger)  # fmt: skip
    finally:
        for gateway in (on, off):
            cli.main(["stop", "--run-dir", str(gateway.run_dir)])
        triton.stop()


def _ready(gateway, model: str) -> bool:
    url = f"{gateway.url}/v2/models/{model}/ready"
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _body(x: np.ndarray, c: list[str]) -> bytes:
    n = len(x)
    return orjson.dumps({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [n, 1], "data": x.tolist()},
        {"name": "c", "datatype": "BYTES", "shape": [n, 1], "data": c}]})  # fmt: skip


def _post(gateway, model: str, body: bytes, rid: str) -> requests.Response:
    headers = {"Content-Type": "application/json", "X-Request-ID": rid}
    url = f"{gateway.url}/v2/models/{model}/infer"
    return requests.post(url, data=body, timeout=10, headers=headers)


def _metric(gateway, name: str) -> float:
    text = requests.get(gateway.metrics, timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))  # fmt: skip


@pytest.fixture(scope="module")
def traffic(stack):
    """The same requests through both gateways: (ids, x, c) of every row."""
    rng = np.random.default_rng(11)
    ids, xs, cs = [], [], []
    for i in range(REQUESTS):
        x = rng.normal(size=ROWS).round(3)
        c = [str(v) for v in rng.choice(["yes", "no"], ROWS)]
        body, rid = _body(x, c), f"live-{i}"
        answers = [_post(gateway, MODEL, body, rid) for gateway in (stack.on, stack.off)]
        stack.answers = getattr(stack, "answers", []) + [answers]
        ids += [f"{rid}.{j}" for j in range(ROWS)]
        xs.append(x)
        cs += c
    return ids, np.concatenate(xs), cs


def _shadow_rows(log_root: Path, want: int, timeout_s: float = 15.0) -> pd.DataFrame:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = read_shadow(log_root, MODEL)
        if len(rows) >= want or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_the_callers_answer_is_identical_with_shadow_on_and_off(stack, traffic):
    for on, off in stack.answers:
        assert on.status_code == off.status_code == 200, on.text
        assert on.content == off.content  # the same bytes: scores, decisions, version, ids
        assert on.headers["x-model-version"] == off.headers["x-model-version"] == stack.champion


def test_both_scores_are_logged_under_the_request_id_and_shadow_rows_are_not_served(stack, traffic):
    ids, x, c = traffic
    shadow = _shadow_rows(stack.on.log_root, len(ids)).set_index("request_id").loc[ids]
    assert set(shadow["model_version"]) == {stack.challenger}
    assert set(shadow["shadow_of"]) == {stack.champion} and set(shadow["traffic"]) == {"shadow"}
    np.testing.assert_allclose(shadow["score"], probability(-1.0, x, c), rtol=1e-5)
    assert shadow["decision"].tolist() == [
        int(p >= CHALLENGER_THRESHOLD) for p in probability(-1.0, x, c)
    ]
    wait_for(lambda: len(read_log(stack.on.log_root, MODEL)) >= len(ids), 15, "served rows")
    served = read_log(stack.on.log_root, MODEL).set_index("request_id").loc[ids]
    assert set(served["model_version"]) == {stack.champion}  # only the champion's rows
    np.testing.assert_allclose(served["score"], probability(1.0, x, c), rtol=1e-5)
    assert read_shadow(stack.off.log_root, MODEL).empty  # share 0: nothing mirrored
    assert _metric(stack.on, "gateway_shadow_mirrored_total") == REQUESTS
    assert _metric(stack.on, "gateway_shadow_failures_total") == 0


def test_the_shadow_model_is_not_served_to_callers(stack, traffic):
    shadow = challenger_model_name(MODEL, "shadow")
    refused = _post(stack.on, shadow, _body(np.array([0.1]), ["yes"]), "s")
    assert refused.status_code == 404 and "is a challenger" in refused.json()["error"]


def test_a_shadow_triton_cannot_load_leaves_callers_untouched_and_is_counted(stack, traffic):
    name, onnx_bytes = "other-classifier", weighted_onnx(1.0)
    write_version(stack.repo, name, 1, onnx_bytes, triton_config(
        name, onnx_bytes, parameters=threshold_parameters({1: 0.5})))  # fmt: skip
    shadow = challenger_model_name(name, "shadow")
    staged = stack.root / "staged" / shadow  # a version that cannot load
    (staged / "1").mkdir(parents=True)
    (staged / "1" / "model.onnx").write_bytes(b"not an onnx graph")
    shutil.copy(python_model_source(), staged / "1" / "model.py")
    config = triton_config(challenger_model_name(name, "shadow"), onnx_bytes,
                           parameters=threshold_parameters({1: 0.5}))  # fmt: skip
    (staged / CONFIG_FILENAME).write_text(config)
    os.rename(staged, stack.repo / challenger_model_name(name, "shadow"))

    def shadow_failed_to_load() -> bool:
        index = requests.post(f"{stack.triton_url}/v2/repository/index", json={}, timeout=5)
        states = {i["name"]: i.get("state") for i in index.json()}
        return states.get(shadow) == "UNAVAILABLE" and _ready(stack.on, name)

    wait_for(shadow_failed_to_load, 60, "Triton to fail loading the broken shadow")
    time.sleep(1.5)  # one gateway poll of the repository index
    body = _body(np.array([0.2, -0.4]), ["yes", "no"])
    for i in range(10):
        on, off = (_post(g, name, body, f"broken-{i}") for g in (stack.on, stack.off))
        assert on.status_code == off.status_code == 200 and on.content == off.content
    failures = 'gateway_shadow_failures_total{model="other-classifier",reason="not_loaded"}'
    assert _metric(stack.on, failures) == 10
    assert read_shadow(stack.on.log_root, name).empty


def _label(stack, traffic, path: Path, **gate) -> Path:
    """Late labels for every live row (y follows -x: the challenger ranks better)."""
    ids, x, _ = traffic
    rng = np.random.default_rng(3)
    y = (rng.random(len(ids)) < 1.0 / (1.0 + np.exp(3.0 * x))).astype(int)
    write_labels(stack.on.log_root, MODEL, label_frame(ids, y))
    return write_config(path, name=PROJECT, gate={"shadow_before_promotion": True, **gate},
                        monitoring={"log_path": str(stack.on.log_root)})  # fmt: skip


def test_too_few_labelled_shadow_rows_never_promote_and_the_record_says_why(
    stack, traffic, tmp_path, capsys
):
    project = _label(stack, traffic, tmp_path / "few.yaml", shadow_min_labelled_rows=1000)
    argv = ["promote", "--project", str(project), "--repo", str(stack.repo), "--out", str(tmp_path)]
    assert shadow_cli.main(argv) == 0
    assert "not promoted" in capsys.readouterr().out
    record = json.loads(next((tmp_path / PROJECT).glob("shadow_decision_v*.json")).read_text())
    assert record["promote"] is False and record["decided_by"] == ["live"]
    assert record["reasons"][0].startswith("too few labelled shadow rows to decide: 300 rows")
    assert registry.champion_version(MODEL) == stack.champion  # nothing moved
    assert registry.challenger_version(MODEL, "shadow") == stack.challenger
    # the monitor's hook: the same comparison as a summary and gauges
    summary, samples = shadow_cli.shadow_summary(load_config(str(project)), stack.on.log_root)
    assert summary["rows"] == 300 and summary["comparison"]["gain_low"] > 0
    gauges = {s.name: s.value for s in samples if "bound" not in s.labels}
    assert gauges["mlops_shadow_evidence_sufficient"] == 0.0  # 300 < 1000 rows required
    # ... written beside the monitor's windows, and on the KPI page
    from monitoring.kpi import project_kpi, shadow_lines
    from monitoring.monitor import record_shadow

    config = load_config(str(project))
    record_shadow(config, stack.on.log_root, tmp_path / "monitoring", None, None)
    page = "\n".join(shadow_lines(project_kpi(config, tmp_path / "monitoring")))
    assert f"shadow challenger v{stack.challenger} vs champion v{stack.champion}" in page
    assert "300 labelled rows scored by both" in page and "; passes the required" in page


def test_the_live_comparison_decides_and_the_promotion_names_its_evidence(
    stack, traffic, tmp_path, capsys
):
    project = _label(stack, traffic, tmp_path / "p.yaml")
    argv = ["promote", "--project", str(project), "--repo", str(stack.repo), "--out",
            str(tmp_path), "--triton-url", stack.triton_url]  # fmt: skip
    assert shadow_cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "300 labelled rows paired" in out and "PROMOTED" in out
    record = json.loads((tmp_path / PROJECT / f"shadow_decision_v{stack.challenger}.json")
                        .read_text())  # fmt: skip
    assert record["promote"] is True and record["decided_by"] == ["offline", "live"]
    assert record["reasons"][0] == "promoted on offline and live evidence (rule: both)"
    live = record["live"]
    assert live["rows"] == 300 and live["shadow_rows"] == 300
    assert live["comparison"]["gain_low"] > 0 and live["comparison"]["passed"] is True
    assert record["offline"]["passed"] and record["previous_champion"] == stack.champion
    # compare-and-swap: champion moved, the shadow alias and model are gone, the history says so
    assert registry.champion_version(MODEL) == stack.challenger
    assert registry.challenger_version(MODEL, "shadow") is None
    assert registry.champion_history(MODEL)[-1]["event"].startswith("promoted from shadow")
    assert list_versions(stack.repo, MODEL)[-1] == int(stack.challenger)
    assert list_versions(stack.repo, challenger_model_name(MODEL, "shadow")) == []
    tags = mlflow.MlflowClient().get_model_version(MODEL, stack.challenger).tags
    assert tags["shadow.decided_by"] == "offline,live" and tags["shadow.outcome"] == "promoted"

    def answered_by() -> str | None:
        answer = _post(stack.off, MODEL, _body(np.array([0.0]), ["no"]), "after")
        return answer.headers.get("x-model-version")

    wait_for(lambda: answered_by() == stack.challenger, 30, "the new champion")
