"""The pure parts of `/explain`: top-k, the per-row answer and the served-score check."""

from __future__ import annotations

import math

import pytest

from serving.gateway.contract import Rejected
from serving.gateway.explain import TOP_K, explanations, parse_top_k, registry_uri


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [(None, TOP_K), ({}, TOP_K), ({"top_k": 2}, 2), ({"top_k": 99}, 10)],
)
def test_top_k_defaults_and_is_capped_at_the_features(parameters, expected):
    assert parse_top_k(parameters, 10) == expected
    assert parse_top_k(parameters, 1) == 1


@pytest.mark.parametrize("value", [0, -1, "2", 2.0, True, None, [2]])
def test_a_bad_top_k_is_a_400(value):
    with pytest.raises(Rejected) as caught:
        parse_top_k({"top_k": value}, 3)
    assert (caught.value.status, caught.value.rule) == (400, "top_k")


def _answer(space: str, probability: float, values=(0.5, -2.0, 0.1), base=-1.0):
    return explanations(
        [list(values)],
        [base],
        ["a", "b", "c"],
        {"a": [1.0], "b": [math.nan], "c": [""]},
        [probability],
        [0],
        space=space,
        top_k=2,
        version="3",
    )


def test_rows_carry_the_largest_attributions_first_with_the_sent_values():
    z = -1.0 + 0.5 - 2.0 + 0.1
    (row,) = _answer("log_odds", 1.0 / (1.0 + math.exp(-z)))
    assert row["base_value"] == -1.0 and row["decision"] == 0
    assert [(a["feature"], a["value"], a["shap"]) for a in row["attributions"]] == [
        ("b", None, -2.0),
        ("a", 1.0, 0.5),
    ]  # a missing number and a missing category are both null


def test_attributions_that_do_not_give_the_served_score_are_a_409():
    assert _answer("probability", -1.0 + 0.5 - 2.0 + 0.1 + 3.0, base=2.0)  # adds up: fine
    with pytest.raises(Rejected) as caught:
        _answer("log_odds", 0.9)
    assert caught.value.status == 409 and "not the model that answered" in caught.value.message
    with pytest.raises(Rejected):
        _answer("log_odds", 0.5, values=(800.0, 0.0, 0.0))  # no overflow: a 409, not a 500


def test_the_registry_is_the_environments_or_the_embedded_store(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert registry_uri() == "http://mlflow:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert registry_uri() == f"sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}"


def test_rows_are_explained_as_triton_read_them_float32(fraud_config):
    import numpy as np
    import pandas as pd

    from models.explain import build_row_explainer
    from serving.gateway.explain import VersionExplainer, _explain_rows
    from serving.onnx_export import export_onnx, predict_onnx, to_onnx_inputs
    from tests.unit.conftest import fit_pipeline

    rng = np.random.default_rng(13)
    cents = rng.integers(1_000_000_000, 1_000_100_000, 3000).astype(float)  # float32 steps 64
    frame = pd.DataFrame({"balance_cents": cents, "z": rng.normal(0, 1, 3000)})
    frame[fraud_config.target] = ((cents % 1000 > 500) ^ (rng.random(3000) < 0.1)).astype(int)
    config = fraud_config.model_copy(
        update={"numeric_features": ("balance_cents", "z"), "categorical_features": ()}
    )
    model = fit_pipeline(config, frame, "gbdt")
    features = ["balance_cents", "z"]
    sent = frame[features].head(300)  # the doubles a client sends; Triton reads float32
    labels, served = predict_onnx(
        export_onnx(model, features, []), to_onnx_inputs(sent, features, [])
    )
    explainer = VersionExplainer("m", "1", build_row_explainer(model, "gbdt", sent.head(50)))
    columns = {f: sent[f].tolist() for f in features}

    values, base, names = _explain_rows(explainer, columns, frozenset())

    rows = explanations(values, base, names, columns, served[:, 1].tolist(), labels.tolist(),
                        space=explainer.space, top_k=2, version="1")  # fmt: skip
    assert len(rows) == 300  # every row's attributions give the score Triton served
