"""`POST /v2/models/{m}/labels` for real: Triton, gateways started by their CLI, the log on disk.

Labels posted for the ids the gateway answered with join those rows in `read_log`; only a key
granted labels may post them; every bad body is a 4xx naming its field, and the gateway goes on
answering; a gateway without the inference log refuses labels with 409.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import orjson
import pandas as pd
import pytest
import requests

from models.reference import TARGET_COLUMN
from serving.decision import threshold_parameters
from serving.gateway import cli
from serving.gateway.auth import add_key
from serving.gateway.labels import MAX_LABEL_ROWS
from serving.inference_log import CALLER, LABELS, read_log
from serving.model_repository import triton_config, write_version
from serving.processes import free_ports
from tests.integration.test_gateway import logged, start_gateway, start_triton, v2
from tests.integration.test_triton_server import build_onnx

pytestmark = pytest.mark.integration

NAME = "tiny"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Triton and three gateways in front of it: with keys, on loopback without keys, and
    without the inference log."""
    root = tmp_path_factory.mktemp("labels")
    onnx_bytes = build_onnx(impute_missing=True)
    config = triton_config(NAME, onnx_bytes, parameters=threshold_parameters({1: 0.6}))
    write_version(root / "repo", NAME, 1, onnx_bytes, config)
    ports = tuple(free_ports(3))
    triton = start_triton(root / "repo", root / "triton", ports)
    upstream = f"http://127.0.0.1:{ports[0]}"
    keys = root / "keys.json"
    app_key, labeller_key = add_key(keys, "app"), add_key(keys, "labeller", labels=True)
    gateways = {
        "keyed": start_gateway(
            root / "keyed", upstream, root / "keyed-log", "--keys-file=" + str(keys)
        ),
        "open": start_gateway(root / "open", upstream, root / "open-log"),
        "unlogged": start_gateway(root / "unlogged", upstream, root / "none", "--no-log"),
    }
    try:
        yield SimpleNamespace(app_key=app_key, labeller_key=labeller_key, **gateways)
    finally:
        for gateway in gateways.values():
            cli.main(["stop", "--run-dir", str(gateway.run_dir)])
        triton.stop()


def infer(gateway, body: dict, **headers: str) -> requests.Response:
    headers = {"Content-Type": "application/json", **headers}
    url = f"{gateway.url}/v2/models/{NAME}/infer"
    return requests.post(url, data=orjson.dumps(body), headers=headers, timeout=10)


def post_labels(gateway, body, *, model: str = NAME, path: str = "", **headers: str):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": "application/json", **headers}
    url = f"{gateway.url}/v2/models/{model}{path}/labels"
    return requests.post(url, data=data, headers=headers, timeout=10)


def labels_of(pairs: dict[str, int]) -> dict:
    return {"labels": [{"id": row_id, "label": label} for row_id, label in pairs.items()]}


def test_labels_for_the_answered_ids_join_their_rows_in_the_log(stack):
    gateway = stack.keyed
    app = {"Authorization": f"Bearer {stack.app_key}"}
    batch = infer(gateway, v2([-2.0, 0.0, 2.0], ["yes", "no", ""]), **app, **{"X-Request-ID": "b1"})
    single = infer(gateway, v2([1.5], ["no"]), **app)
    assert batch.status_code == single.status_code == 200, (batch.text, single.text)
    single_id = single.headers["x-request-id"]
    assert single.json()["parameters"]["request_id"] == single_id
    rows = {"b1.0": 1, "b1.2": 0, single_id: 1}  # row i of a batch is `<request id>.<i>`
    answer = post_labels(gateway, labels_of(rows), **{"X-API-Key": stack.labeller_key})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model_name": NAME, "written": 3}
    logged(gateway, want=[*rows, "b1.1"])
    frame = read_log(gateway.log_root, NAME).set_index("request_id")
    assert frame.loc[list(rows), TARGET_COLUMN].tolist() == list(rows.values())
    assert pd.isna(frame.loc["b1.1", TARGET_COLUMN])  # not labelled (yet)
    written = pd.read_parquet(gateway.log_root / NAME / LABELS)
    assert set(written[CALLER]) == {"labeller"}  # who posted each label
    metrics = requests.get(gateway.metrics, timeout=5).text
    assert f'gateway_labels_written_total{{model="{NAME}"}} 3.0' in metrics


def test_only_a_key_granted_labels_may_post_them(stack):
    gateway, body = stack.keyed, labels_of({"b1.1": 1})
    missing = post_labels(gateway, body)
    assert missing.status_code == 401 and "missing credentials" in missing.json()["error"]
    plain = post_labels(gateway, body, Authorization=f"Bearer {stack.app_key}")
    assert plain.status_code == 403, plain.text
    assert "'app' may not post labels" in plain.json()["error"]
    granted = post_labels(gateway, body, Authorization=f"Bearer {stack.labeller_key}")
    assert granted.status_code == 200 and granted.json()["written"] == 1


def test_on_loopback_without_keys_labels_are_taken_as_infer_is(stack):
    answered = infer(stack.open, v2([0.5], ["yes"]), **{"X-Request-ID": "open-1"})
    assert answered.status_code == 200, answered.text
    posted = post_labels(stack.open, labels_of({"open-1": 0}))
    assert posted.status_code == 200, posted.text
    frame = logged(stack.open, want=["open-1"]).set_index("request_id")
    assert frame.loc["open-1", TARGET_COLUMN] == 0
    labels = pd.read_parquet(stack.open.log_root / NAME / LABELS)
    assert set(labels[CALLER]) == {"anonymous"}


TOO_MANY = labels_of({f"r{i}": 1 for i in range(MAX_LABEL_ROWS + 1)})


@pytest.mark.parametrize(
    ("body", "extra", "status", "words"),
    [
        (b"{labels", {}, 400, "not valid JSON"),
        ({"rows": []}, {}, 400, "body needs 'labels'"),
        ({"labels": []}, {}, 400, "a non-empty list"),
        (TOO_MANY, {}, 400, f"at most {MAX_LABEL_ROWS}"),
        ({"labels": [{"id": "a", "label": 1}, {"id": 3, "label": 1}]}, {}, 400, "labels[1].id"),
        ({"labels": [{"id": "a", "label": 1}, {"id": "b", "label": 5}]}, {}, 400,
         "labels[1].label must be 0 or 1"),
        (labels_of({"a": 1}), {"model": "no-such-model"}, 404, "unknown model 'no-such-model'"),
        (labels_of({"a": 1}), {"model": f"{NAME}__canary"}, 404, "is a challenger"),
        (labels_of({"a": 1}), {"path": "/versions/1"}, 404, "labels are per model"),
        (labels_of({"a": 1}), {"Content-Type": "text/csv"}, 415, "Content-Type 'text/csv'"),
    ],
)  # fmt: skip
def test_each_bad_request_is_a_4xx_naming_the_problem_and_the_gateway_answers_on(
    stack, body, extra, status, words
):
    answer = post_labels(stack.open, body, **extra)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert infer(stack.open, v2([0.0], ["no"])).status_code == 200


def test_labels_need_post(stack):
    answer = requests.get(f"{stack.open.url}/v2/models/{NAME}/labels", timeout=5)
    assert answer.status_code == 405 and "takes POST" in answer.json()["error"]


def test_a_gateway_without_the_log_refuses_labels_with_409(stack):
    answer = post_labels(stack.unlogged, labels_of({"a": 1}))
    assert answer.status_code == 409, answer.text
    assert "--no-log" in answer.json()["error"] and answer.json()["rule"] == "log_disabled"
    assert not Path(stack.unlogged.log_root).exists()
    from serving.client import ClientError, ModelClient

    client = ModelClient(NAME, stack.unlogged.url)
    with pytest.raises(ClientError, match="labels refused \\(409\\)") as refused:
        client.send_labels(["a"], [1])
    assert "--no-log" in refused.value.hint and "make serve" in refused.value.hint
    client.close()


def test_the_client_posts_labels_in_chunks_with_a_key_granted_them(stack, monkeypatch):
    from serving import client as client_module

    gateway = stack.keyed
    app = {"Authorization": f"Bearer {stack.app_key}"}
    ids = [f"client-{i}" for i in range(5)]
    for row_id in ids:
        assert infer(gateway, v2([0.1], ["no"]), **app, **{"X-Request-ID": row_id}).ok
    monkeypatch.setattr(client_module, "LABELS_PER_REQUEST", 2)  # 5 labels: 3 requests
    labeller = client_module.ModelClient(NAME, gateway.url, api_key=stack.labeller_key)
    assert labeller.send_labels(ids, [1, 0, 1, 0, 1]) == 5
    labeller.close()
    frame = logged(gateway, want=ids).set_index("request_id")
    assert frame.loc[ids, TARGET_COLUMN].tolist() == [1, 0, 1, 0, 1]
    refused = client_module.ModelClient(NAME, gateway.url, api_key=stack.app_key)
    with pytest.raises(
        client_module.ClientError, match="labels refused \\(403\\).*'app' may not"
    ) as no:
        refused.send_labels(ids[:1], [1])
    assert "--labels" in no.value.hint  # the remedy, which the simulator prints
    refused.close()
