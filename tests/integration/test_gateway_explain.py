"""`POST /v2/models/{m}/explain` for real: registered versions (MLflow), Triton, the gateway.

Three families are trained, explained offline as the training run's explain step does
(`models.explain.explain_model`), registered with those files and served. The endpoint's
attributions for the offline rows match the offline SHAP values within `PARITY_TOLERANCE`;
versions it cannot speak for fail closed (503/409) while `infer` keeps answering.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.explain import BASE_VALUE, ROWS_FILE, VALUES_FILE
from serving.decision import MISSING_CATEGORY, threshold_parameters
from serving.gateway import cli
from serving.gateway.auth import add_key
from serving.model_repository import triton_config, write_version
from serving.processes import free_ports
from tests.integration.test_gateway import logged, start_gateway, start_triton
from tests.served_versions import register_served_version

pytestmark = pytest.mark.integration

PARITY_TOLERANCE = 1e-6  # |served - offline| per attribution, in the family's space
THRESHOLD = 0.5
SEED = 7
FAMILIES = {
    "gbdt": {"max_iter": 60, "max_leaf_nodes": 15},
    "baseline": {},
    "mlp": {"max_epochs": 3},
}
SPACES = {"gbdt": "log_odds", "baseline": "log_odds", "mlp": "probability"}


def model_name(family: str) -> str:
    return f"explain-{family}"


@pytest.fixture(scope="module")
def stack(tracking, tmp_path_factory):
    from configs import load_config
    from features.contract import clean_rows
    from features.fraud_data import generate_transactions
    from features.split import model_inputs, split_data
    from models.explain import explain_model
    from serving.onnx_export import export_onnx
    from tests.unit.conftest import fit_pipeline

    root = tmp_path_factory.mktemp("explain")
    config = load_config("fraud")
    train, _, test = split_data(clean_rows(generate_transactions(6000, seed=5), config).clean,
                                config)  # fmt: skip
    background = model_inputs(train, config).sample(100, random_state=SEED)
    rows = model_inputs(test, config).sample(30, random_state=SEED).reset_index(drop=True)
    repo = root / "repo"
    offline = {}
    for family, params in FAMILIES.items():
        name = model_name(family)
        model = fit_pipeline(config, train, family, params)
        onnx_bytes = export_onnx(model, config.numeric_features, config.categorical_features)
        shap_dir = root / "shap" / family
        explain_model(model, family, background, rows, shap_dir, local_examples=2, seed=SEED)
        version = register_served_version(
            name, model, onnx_bytes, THRESHOLD, rows.head(5), shap_dir=shap_dir
        ).version
        offline[family] = _offline(name, version)
        _serve(repo, name, int(version), onnx_bytes)
        if family == "gbdt":  # the same bytes, served under names the registry fails for
            register_served_version("explain-bare", model, onnx_bytes, THRESHOLD, rows.head(5))
            _serve(repo, "explain-bare", 1, onnx_bytes)
            tampered = register_served_version(
                "explain-tampered", model, onnx_bytes, THRESHOLD, rows.head(5), shap_dir=shap_dir
            )
            mlflow.MlflowClient().set_model_version_tag(
                "explain-tampered", tampered.version, "skops_sha256", "0" * 64
            )
            _serve(repo, "explain-tampered", 1, onnx_bytes)
            _serve(repo, "explain-orphan", 1, onnx_bytes)
    http, grpc, metrics = free_ports(3)
    triton = start_triton(repo, root / "triton", (http, grpc, metrics))
    upstream = f"http://127.0.0.1:{http}"
    gateway = start_gateway(root / "run", upstream, root / "log")
    here = SimpleNamespace(
        triton=triton, upstream=upstream, offline=offline, text=config.categorical_features,
        **vars(gateway),
    )  # fmt: skip
    try:
        yield here
    finally:
        cli.main(["stop", "--run-dir", str(root / "run")])
        triton.stop()


def _offline(name: str, version: str) -> SimpleNamespace:
    """The explained rows and SHAP values the version's training run logged."""
    run_id = mlflow.MlflowClient().get_model_version(name, version).run_id
    frames = {
        f: pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id,
                                                               artifact_path=f"reports/shap/{f}"))
        for f in (ROWS_FILE, VALUES_FILE)
    }  # fmt: skip
    return SimpleNamespace(rows=frames[ROWS_FILE], values=frames[VALUES_FILE])


def _serve(repo: Path, name: str, version: int, onnx_bytes: bytes) -> None:
    parameters = threshold_parameters({version: THRESHOLD}) | {"registry_version": str(version)}
    write_version(repo, name, version, onnx_bytes,
                  triton_config(name, onnx_bytes, parameters=parameters))  # fmt: skip


def body(rows: pd.DataFrame, text: tuple[str, ...], **parameters) -> dict:
    """KServe v2 JSON: one [n, 1] input per column (null = missing number, "" = category)."""
    inputs = []
    for column in rows.columns:
        if column in text:
            values = [MISSING_CATEGORY if pd.isna(v) else str(v) for v in rows[column]]
            inputs.append({"name": column, "datatype": "BYTES", "shape": [len(rows), 1],
                           "data": values})  # fmt: skip
        else:
            numbers = [None if math.isnan(v) else float(v) for v in rows[column]]
            inputs.append({"name": column, "datatype": "FP32", "shape": [len(rows), 1],
                           "data": numbers})  # fmt: skip
    return {"inputs": inputs, **({"parameters": parameters} if parameters else {})}


def post(stack, model: str, payload, action: str = "explain", **kwargs) -> requests.Response:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    return requests.post(f"{stack.url}/v2/models/{model}/{action}", data=data, headers=headers,
                         timeout=60, **kwargs)  # fmt: skip


@pytest.mark.parametrize("family", list(FAMILIES))
def test_served_attributions_match_the_training_runs_offline_shap(stack, family):
    offline = stack.offline[family]
    features = [c for c in offline.values.columns if c != BASE_VALUE]
    response = post(stack, model_name(family),
                    body(offline.rows, stack.text, top_k=len(features)),
                    headers={"X-Request-ID": f"parity-{family}"})  # fmt: skip
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["parameters"]["space"] == SPACES[family]
    assert answer["parameters"]["top_k"] == len(features)
    assert response.headers["x-model-version"] == answer["model_version"] == "1"
    served = pd.DataFrame(
        [{a["feature"]: a["shap"] for a in row["attributions"]} for row in answer["explanations"]]
    )[features]
    gap = np.abs(served.to_numpy() - offline.values[features].to_numpy()).max()
    assert gap <= PARITY_TOLERANCE, f"{family}: max |served - offline| = {gap:.3g}"
    np.testing.assert_allclose(
        [row["base_value"] for row in answer["explanations"]], offline.values[BASE_VALUE],
        atol=PARITY_TOLERANCE,
    )  # fmt: skip
    infer = post(stack, model_name(family), body(offline.rows, stack.text), action="infer").json()
    outputs = {o["name"]: o["data"] for o in infer["outputs"]}
    assert [row["decision"] for row in answer["explanations"]] == outputs["decision"]
    assert [row["probability"] for row in answer["explanations"]] == outputs["probability"]
    first = answer["explanations"][0]["attributions"]
    assert [abs(a["shap"]) for a in first] == sorted((abs(a["shap"]) for a in first), reverse=True)


def test_top_k_and_logging_as_for_infer(stack):
    rows = stack.offline["gbdt"].rows.head(3)
    response = post(stack, "explain-gbdt", body(rows, stack.text),
                    headers={"X-Request-ID": "explained"})  # fmt: skip
    assert response.status_code == 200, response.text
    explanations = response.json()["explanations"]
    assert [len(row["attributions"]) for row in explanations] == [5, 5, 5]  # the default top-k
    value = explanations[0]["attributions"][0]
    assert value["value"] == _plain(rows.iloc[0][value["feature"]])
    frame = logged(stack, "explain-gbdt", want=["explained.0", "explained.2"])
    logged_rows = frame.set_index("request_id").loc[["explained.0", "explained.1", "explained.2"]]
    assert logged_rows["score"].tolist() == pytest.approx([r["probability"] for r in explanations])


def _plain(value):
    return None if pd.isna(value) else (float(value) if isinstance(value, float) else value)


@pytest.mark.parametrize(
    ("model", "status", "words"),
    [
        ("explain-bare", 503, "has no explanation background"),
        ("explain-tampered", 503, "does not match its skops_sha256 tag"),
        ("explain-orphan", 409, "the registry at"),
    ],
)
def test_versions_it_cannot_speak_for_fail_closed_and_infer_still_answers(
    stack, model, status, words
):
    rows = body(stack.offline["gbdt"].rows.head(2), stack.text)
    for _ in range(2):  # the second answer comes from the remembered failure
        response = post(stack, model, rows)
        assert response.status_code == status, response.text
        assert words in response.json()["error"]
    assert post(stack, model, rows, action="infer").status_code == 200


@pytest.mark.parametrize(
    ("payload", "status", "rule"),
    [
        (b"{not json", 400, "json"),
        ({"inputs": []}, 400, "inputs"),
        ({"top_k": 0}, 400, "top_k"),
        ({"top_k": "3"}, 400, "top_k"),
        ({"top_k": True}, 400, "top_k"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_rule(stack, payload, status, rule):
    if isinstance(payload, dict) and "top_k" in payload:
        payload = body(stack.offline["gbdt"].rows.head(1), stack.text, **payload)
    response = post(stack, "explain-gbdt", payload)
    assert response.status_code == status, response.text
    assert response.json()["rule"] == rule
    assert requests.get(f"{stack.url}/v2/models/explain-gbdt/explain", timeout=5).status_code == 405
    assert post(stack, "nope", payload).status_code == 404


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(
    top_k=st.one_of(
        st.none(), st.booleans(), st.integers(-5, 10**20), st.floats(), st.text(max_size=5)
    ),
    amount=st.one_of(st.none(), st.floats(width=32, allow_nan=False)),
    channel=st.text(max_size=12),
)
def test_fuzz_explain_answers_200_or_a_4xx(stack, top_k, amount, channel):
    rows = stack.offline["gbdt"].rows.head(1).assign(amount=amount, channel=channel)
    payload = body(rows.astype({"amount": float}), stack.text)
    payload["parameters"] = {"top_k": top_k}
    response = post(stack, "explain-gbdt", payload)
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text


def test_with_keys_explain_needs_a_key_for_its_model(stack, tmp_path):
    keys = tmp_path / "keys.json"
    key = add_key(keys, "app-a", ["explain-gbdt"])
    gateway = start_gateway(tmp_path / "run", stack.upstream, tmp_path / "log",
                            "--keys-file", str(keys))  # fmt: skip
    try:
        payload = body(stack.offline["gbdt"].rows.head(1), stack.text)
        url = f"{gateway.url}/v2/models/explain-gbdt/explain"
        assert requests.post(url, json=payload, timeout=10).status_code == 401
        ok = requests.post(url, json=payload, headers={"X-API-Key": key}, timeout=60)
        assert ok.status_code == 200, ok.text
        assert ok.json()["explanations"][0]["attributions"]
    finally:
        cli.main(["stop", "--run-dir", str(tmp_path / "run")])
