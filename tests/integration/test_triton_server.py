"""The local Triton runtime for real: tritonserver from .venv-triton on CPU, a tiny ONNX model.

Needs `serving/triton/setup_env.sh` to have run once; the server fixture fails (not skips)
without it.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests
from onnx import TensorProto, checker, helper, numpy_helper

from serving import launcher, model_repository
from serving.model_repository import list_versions, remove_version, triton_config, write_version
from serving.processes import free_ports

pytestmark = pytest.mark.integration

NAME = "tiny"
BATCHED = "tiny-batched"
UNBATCHED = "tiny-unbatched"


def build_onnx(
    shift: float = 0.0, *, batch_only_label: bool = True, impute_missing: bool = False
) -> bytes:
    """x FP32 [N,1], c STRING [N,1] -> probabilities [1-p, p], label argmax; p = sigmoid(z),
    z = x + shift + (c == "yes"); with `impute_missing`, a NaN x counts as 0 (as the
    platform's pipelines impute)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])
    c = helper.make_tensor_value_info("c", TensorProto.STRING, ["N", 1])
    probabilities = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2])
    label_shape = ["N"] if batch_only_label else ["N", 1]
    label = helper.make_tensor_value_info("label", TensorProto.INT64, label_shape)
    initializers = [
        numpy_helper.from_array(np.array(["yes"], dtype=object), "yes"),
        numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([shift], dtype=np.float32), "shift"),
    ]
    x_used = "x"
    nodes = []
    if impute_missing:
        initializers.append(numpy_helper.from_array(np.array([0.0], dtype=np.float32), "zero"))
        nodes += [
            helper.make_node("IsNaN", ["x"], ["x_missing"]),
            helper.make_node("Where", ["x_missing", "zero", "x"], ["x_imputed"]),
        ]
        x_used = "x_imputed"
    nodes += [
        helper.make_node("Equal", ["c", "yes"], ["is_yes"]),
        helper.make_node("Cast", ["is_yes"], ["bonus"], to=TensorProto.FLOAT),
        helper.make_node("Add", [x_used, "shift"], ["shifted"]),
        helper.make_node("Add", ["shifted", "bonus"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
        helper.make_node(
            "ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0 if batch_only_label else 1
        ),
    ]
    graph = helper.make_graph(nodes, NAME, [x, c], [probabilities, label], initializers)
    # onnxruntime<1.24 in .venv-triton loads IR <= 11 and opset <= 23 (onnx 1.23 defaults: 14/28).
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    checker.check_model(model)
    return model.SerializeToString()


def expected(x: np.ndarray, c: list[str], shift: float = 0.0) -> np.ndarray:
    z = x.reshape(-1) + shift + np.array([value == "yes" for value in c], dtype=np.float64)
    p1 = 1.0 / (1.0 + np.exp(-z))
    return np.stack([1.0 - p1, p1], axis=1)


def inference_count(metrics_url: str, version: str = "1") -> float:
    text = requests.get(metrics_url, timeout=5).text
    match = re.search(
        rf'^nv_inference_count\{{model="{NAME}",version="{version}"\}} (\S+)$', text, re.M
    )
    assert match, f"nv_inference_count for {NAME}/{version} not in metrics:\n{text[:2000]}"
    return float(match.group(1))


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def v2_json(x: np.ndarray, c: list[str]) -> dict:
    return {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [len(c), 1], "data": x.ravel().tolist()},
            {"name": "c", "datatype": "BYTES", "shape": [len(c), 1], "data": c},
        ]
    }


@pytest.fixture(scope="module")
def triton_env() -> launcher.TritonEnv:
    if not launcher.DEFAULT_VENV.exists():
        pytest.fail(
            f"{launcher.DEFAULT_VENV} does not exist: run serving/triton/setup_env.sh "
            "(it creates the Triton runtime environment these tests need)"
        )
    try:
        return launcher.TritonEnv.discover()
    except launcher.TritonError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def triton(triton_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("triton")
    repo = root / "repo"
    onnx_bytes = build_onnx()
    write_version(repo, NAME, 1, onnx_bytes, triton_config(NAME, onnx_bytes))
    # The same graph with a long batching window, so concurrent requests really get fused.
    batched = triton_config(
        BATCHED, onnx_bytes, preferred_batch_sizes=(), max_queue_delay_us=50_000
    )
    write_version(repo, BATCHED, 1, onnx_bytes, batched)
    unbatched = triton_config(UNBATCHED, onnx_bytes, max_batch_size=0)
    write_version(repo, UNBATCHED, 1, onnx_bytes, unbatched)
    http_port, grpc_port, metrics_port = free_ports(3)
    server = launcher.TritonServer(run_dir=root / "run")
    began = time.monotonic()
    process = server.start(
        repo,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        model_control="poll",
        poll_seconds=1,
        timeout_s=45,
    )
    ready_s = time.monotonic() - began
    try:
        yield SimpleNamespace(
            root=root,
            repo=repo,
            server=server,
            process=process,
            ready_s=ready_s,
            http=f"http://127.0.0.1:{http_port}",
            http_hostport=f"127.0.0.1:{http_port}",
            grpc=f"127.0.0.1:{grpc_port}",
            metrics=f"http://127.0.0.1:{metrics_port}/metrics",
            ports=(http_port, grpc_port, metrics_port),
        )
    finally:
        assert server.stop() is True
        assert process.poll() is not None


# -- server, endpoints, protocols ---------------------------------------------------------------


def test_health_and_readiness(triton):
    assert requests.get(f"{triton.http}/v2/health/live", timeout=5).status_code == 200
    assert requests.get(f"{triton.http}/v2/health/ready", timeout=5).status_code == 200
    assert requests.get(f"{triton.http}/v2/models/{NAME}/ready", timeout=5).status_code == 200
    metadata = requests.get(f"{triton.http}/v2", timeout=5).json()
    assert metadata["name"] == "triton" and metadata["version"]
    assert triton.ready_s < 30


def test_cli_status_reports_the_running_server(triton, capsys):
    assert launcher.main(["status", "--run-dir", str(triton.server.run_dir)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["running"] and summary["ready"]
    assert summary["pid"] == triton.process.pid
    assert summary["http_url"] == triton.http
    assert summary["log"] and Path(summary["log"]).is_file()
    served = requests.post(f"{triton.http}/v2/repository/index", timeout=5).json()
    expected = {e["name"]: [e["version"]] for e in served if e.get("state") == "READY"}
    assert summary["serving"] == expected and summary["serving"][NAME] == ["1"]  # served


def test_infer_plain_http_json(triton):
    x = np.array([[-2.0], [0.0], [0.5], [3.0]], dtype=np.float32)
    c = ["yes", "", "no", "yes"]  # "" is the missing marker
    response = requests.post(
        f"{triton.http}/v2/models/{NAME}/infer", json=v2_json(x, c), timeout=10
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == NAME and body["model_version"] == "1"
    outputs = {item["name"]: item for item in body["outputs"]}
    assert outputs["probabilities"]["shape"] == [4, 2]
    assert outputs["probabilities"]["datatype"] == "FP32"
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(4, 2)
    np.testing.assert_allclose(probabilities, expected(x, c), rtol=1e-5, atol=1e-6)
    assert outputs["label"]["shape"] == [4, 1] and outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["data"] == probabilities.argmax(axis=1).tolist()


def test_infer_without_batching(triton):
    x = np.array([[0.25], [-1.0], [2.0]], dtype=np.float32)
    c = ["", "yes", "x"]
    url = f"{triton.http}/v2/models/{UNBATCHED}/infer"
    body = requests.post(url, json=v2_json(x, c), timeout=10).json()
    outputs = {item["name"]: item for item in body["outputs"]}
    assert outputs["probabilities"]["shape"] == [3, 2]
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(3, 2), expected(x, c), rtol=1e-5
    )
    assert outputs["label"]["shape"] == [3]  # the graph's own shape: no batch dim to add


def _batch(rows: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 1)).astype(np.float32)
    c = [str(value) for value in rng.choice(["yes", "no", ""], size=rows)]
    return x, c


def _client_inputs(module, x: np.ndarray, c: list[str]) -> list:
    x_in = module.InferInput("x", list(x.shape), "FP32")
    x_in.set_data_from_numpy(x)
    c_in = module.InferInput("c", [len(c), 1], "BYTES")
    c_in.set_data_from_numpy(np.array(c, dtype=object).reshape(-1, 1))
    return [x_in, c_in]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_infer_tritonclient_batch(triton, protocol):
    if protocol == "http":
        import tritonclient.http as module

        client = module.InferenceServerClient(url=triton.http_hostport)
    else:
        import tritonclient.grpc as module

        client = module.InferenceServerClient(url=triton.grpc)
    x, c = _batch(257, seed=1)
    result = client.infer(
        NAME,
        _client_inputs(module, x, c),
        outputs=[
            module.InferRequestedOutput("probabilities"),
            module.InferRequestedOutput("label"),
        ],
    )
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (257, 2) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, expected(x, c), rtol=1e-5, atol=1e-6)
    labels = result.as_numpy("label")
    assert labels.shape == (257, 1) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels[:, 0], probabilities.argmax(axis=1))
    client.close()


def _stats(triton, name: str) -> dict:
    url = f"{triton.http}/v2/models/{name}/stats"
    return requests.get(url, timeout=5).json()["model_stats"][0]


def test_concurrent_requests_are_fused_and_answered_individually(triton):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=triton.http_hostport, concurrency=16)
    batches = [_batch(1 + i % 4, seed=100 + i) for i in range(32)]
    pending = [client.async_infer(BATCHED, _client_inputs(httpclient, x, c)) for x, c in batches]
    for (x, c), request in zip(batches, pending, strict=True):
        result = request.get_result()
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), expected(x, c), rtol=1e-5, atol=1e-6
        )
        assert result.as_numpy("label").shape == (len(c), 1)
    client.close()

    def counted() -> bool:  # statistics are recorded just after the responses go out
        return _stats(triton, BATCHED)["inference_count"] >= sum(len(c) for _, c in batches)

    wait_for(counted, 10, "the model statistics to count every row")
    stats = _stats(triton, BATCHED)
    assert stats["execution_count"] < len(batches), "no two requests were fused"


def test_a_bad_request_fails_alone_even_inside_a_fused_batch(triton):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(url=triton.http_hostport, concurrency=8)
    good_x, good_c = _batch(3, seed=7)

    def bad_inputs():
        inputs = _client_inputs(httpclient, np.zeros((2, 1), np.float32), ["a", "b"])
        inputs[1].set_data_from_numpy(np.array([[b"\xff\xfe"], [b"ok"]], dtype=object))
        return inputs

    # async_infer: tritonclient.http is gevent-based and must stay on one thread.
    goods = [
        client.async_infer(BATCHED, _client_inputs(httpclient, good_x, good_c)) for _ in range(6)
    ]
    bads = [client.async_infer(BATCHED, bad_inputs()) for _ in range(2)]
    for request in bads:
        with pytest.raises(InferenceServerException, match="not valid UTF-8"):
            request.get_result()
    for request in goods:
        np.testing.assert_allclose(
            request.get_result().as_numpy("probabilities"), expected(good_x, good_c), rtol=1e-5
        )
    client.close()
    # The model survived; the same error on the unbatched model, through gRPC.
    assert requests.get(f"{triton.http}/v2/models/{BATCHED}/ready", timeout=5).status_code == 200
    import tritonclient.grpc as grpcclient

    grpc = grpcclient.InferenceServerClient(url=triton.grpc)
    inputs = _client_inputs(grpcclient, np.zeros((1, 1), np.float32), ["a"])
    inputs[1].set_data_from_numpy(np.array([[b"\xc3"]], dtype=object))
    with pytest.raises(InferenceServerException, match="not valid UTF-8") as error:
        grpc.infer(NAME, inputs)
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    grpc.close()


def test_config_served_is_the_derived_one(triton):
    config = requests.get(f"{triton.http}/v2/models/{NAME}/config", timeout=5).json()
    assert config["backend"] == "python" and config["max_batch_size"] == 1024
    inputs = {item["name"]: (item["data_type"], item["dims"]) for item in config["input"]}
    assert inputs == {"x": ("TYPE_FP32", [1]), "c": ("TYPE_STRING", [1])}
    outputs = {item["name"]: (item["data_type"], item["dims"]) for item in config["output"]}
    assert outputs == {"probabilities": ("TYPE_FP32", [2]), "label": ("TYPE_INT64", [1])}
    assert config["dynamic_batching"]["preferred_batch_size"] == [64, 256]
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 200
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert config["instance_group"][0]["count"] == 1
    assert config["version_policy"] == {"latest": {"num_versions": 1}}
    # one all-zero row warms the session before the version is reported ready
    (warmup,) = config["model_warmup"]
    assert warmup["batch_size"] == 1 and set(warmup["inputs"]) == {"x", "c"}
    assert all(spec["zero_data"] for spec in warmup["inputs"].values())


def test_metrics_count_inferences(triton):
    before = inference_count(triton.metrics)
    x, c = _batch(5, seed=3)
    response = requests.post(
        f"{triton.http}/v2/models/{NAME}/infer", json=v2_json(x, c), timeout=10
    )
    assert response.status_code == 200
    wait_for(
        lambda: inference_count(triton.metrics) >= before + 5, 10, "nv_inference_count to grow"
    )


def test_start_refuses_taken_ports(triton, tmp_path, capsys):
    empty_repo = tmp_path / "empty"
    empty_repo.mkdir()
    http_port, grpc_port, metrics_port = triton.ports
    argv = ["start", "--repo", str(empty_repo), "--run-dir", str(tmp_path / "run")]
    argv += ["--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    argv += ["--metrics-port", str(metrics_port)]
    assert launcher.main(argv) == 1
    assert f"port {http_port} on 127.0.0.1 is already in use" in capsys.readouterr().err
    assert launcher.main(["start", "--run-dir", str(tmp_path / "run")]) == 2  # no --repo


def test_a_server_that_exits_during_start_reports_its_log_tail(triton_env, tmp_path, capsys):
    repo = tmp_path / "repo"
    (repo / "broken" / "1").mkdir(parents=True)
    (repo / "broken" / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: -3\n')
    run_dir = tmp_path / "run"
    argv = ["start", "--repo", str(repo), "--run-dir", str(run_dir), "--timeout", "30"]
    ports = dict(zip(("http", "grpc", "metrics"), free_ports(3), strict=True))
    argv += [f"--{kind}-port={port}" for kind, port in ports.items()]
    assert launcher.main(argv) == 1
    err = capsys.readouterr().err
    assert "tritonserver exited with code" in err and str(run_dir / "tritonserver.log") in err
    assert "broken" in err  # the tail names the model that failed
    assert launcher.main(["status", "--run-dir", str(run_dir)]) == 3
    assert "next: make serve" in capsys.readouterr().err
    assert launcher.main(["stop", "--run-dir", str(run_dir)]) == 0
    assert not (run_dir / "tritonserver.pid").exists()


# -- repository writes ---------------------------------------------------------------------------


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(root.rglob("*"))
    }


def test_invalid_onnx_or_existing_version_leave_the_repository_untouched(triton):
    before = _snapshot(triton.root / "repo")
    with pytest.raises(ValueError, match="invalid ONNX"):
        write_version(triton.repo, NAME, 3, b"not an onnx model", "name: 'x'\n")
    with pytest.raises(ValueError, match="invalid ONNX"):
        write_version(triton.repo, "brand-new", 1, b"\x08\x07garbage", "name: 'x'\n")
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_version(triton.repo, NAME, 1, build_onnx(shift=9.0), "anything\n")
    assert _snapshot(triton.root / "repo") == before
    assert sorted(p.name for p in triton.root.iterdir()) == ["repo", "run"]


@pytest.mark.parametrize("outside_staging", [True, False], ids=["staged-beside", "mount-point"])
def test_a_failure_mid_write_leaves_nothing_behind(tmp_path, monkeypatch, outside_staging):
    repo = tmp_path / "repo"
    onnx_bytes = build_onnx()
    config = triton_config(NAME, onnx_bytes)
    write_version(repo, NAME, 1, onnx_bytes, config)
    if not outside_staging:
        monkeypatch.setattr(model_repository, "_outside_staging_root", lambda repo: None)
    before = _snapshot(tmp_path)
    monkeypatch.setattr(model_repository, "python_model_source", lambda: tmp_path / "missing.py")
    with pytest.raises(FileNotFoundError):
        write_version(repo, NAME, 2, onnx_bytes, config)  # existing model
    with pytest.raises(FileNotFoundError):
        write_version(repo, "other", 1, onnx_bytes, triton_config("other", onnx_bytes))  # new
    assert _snapshot(tmp_path) == before
    monkeypatch.undo()

    if not outside_staging:
        monkeypatch.setattr(model_repository, "_outside_staging_root", lambda repo: None)
    write_version(repo, "other", 1, onnx_bytes, triton_config("other", onnx_bytes))
    write_version(repo, "other", 2, onnx_bytes, triton_config("other", onnx_bytes))
    assert list_versions(repo, "other") == [1, 2]
    assert (repo / "other" / "2" / "model.py").read_bytes() == (
        model_repository.python_model_source().read_bytes()
    )
    remove_version(repo, "other", 1)
    assert list_versions(repo, "other") == [2]
    remove_version(repo, "other", 2)  # the last version takes the model with it
    assert not (repo / "other").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]
    with pytest.raises(FileNotFoundError):
        remove_version(repo, "other", 2)


def test_onnxruntime_backend_writes_no_python_model(tmp_path):
    onnx_bytes = build_onnx()
    config = triton_config(NAME, onnx_bytes, backend="onnxruntime")
    version_dir = write_version(tmp_path, NAME, 4, onnx_bytes, config, backend="onnxruntime")
    assert sorted(p.name for p in version_dir.iterdir()) == ["model.onnx"]
    assert list_versions(tmp_path, NAME) == [4]


def test_both_config_variants_parse_as_triton_model_configs():
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    onnx_bytes = build_onnx()
    cpu = text_format.Parse(triton_config(NAME, onnx_bytes), model_config_pb2.ModelConfig())
    assert cpu.backend == "python" and not cpu.platform
    assert [(t.name, list(t.dims)) for t in cpu.input] == [("x", [1]), ("c", [1])]
    assert cpu.input[1].data_type == model_config_pb2.TYPE_STRING
    assert not cpu.output[1].HasField("reshape")

    gpu_text = triton_config(
        NAME,
        onnx_bytes,
        backend="onnxruntime",
        kind="KIND_GPU",
        instances=2,
        max_batch_size=4096,
        preferred_batch_sizes=(256, 1024),
        max_queue_delay_us=500,
    )
    gpu = text_format.Parse(gpu_text, model_config_pb2.ModelConfig())
    assert gpu.platform == "onnxruntime_onnx" and gpu.max_batch_size == 4096
    assert gpu.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert gpu.instance_group[0].count == 2
    label = {t.name: t for t in gpu.output}["label"]
    assert list(label.dims) == [1] and label.HasField("reshape") and not label.reshape.shape
    assert list(gpu.dynamic_batching.preferred_batch_size) == [256, 1024]

    # A label already shaped [N, 1] needs no reshape; max_batch_size=0 keeps full shapes.
    plain = triton_config(NAME, build_onnx(batch_only_label=False), backend="onnxruntime")
    assert "reshape" not in plain
    unbatched = text_format.Parse(
        triton_config(NAME, onnx_bytes, max_batch_size=0, preferred_batch_sizes=()),
        model_config_pb2.ModelConfig(),
    )
    assert list(unbatched.input[0].dims) == [-1, 1] and not unbatched.HasField("dynamic_batching")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "KIND_GPU"}, "python backend"),
        ({"backend": "tensorrt"}, "backend must be"),
        ({"kind": "KIND_TPU"}, "kind must be"),
        ({"preferred_batch_sizes": (2048,)}, "preferred batch sizes"),
        ({"instances": 0}, "instances"),
    ],
)
def test_config_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        triton_config(NAME, build_onnx(), **kwargs)


def test_config_rejects_a_fixed_batch_dimension_and_bad_names():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    with pytest.raises(ValueError, match="cannot be batched"):
        triton_config("fixed", model.SerializeToString())
    assert "dims: [ 1, 3 ]" in triton_config("fixed", model.SerializeToString(), max_batch_size=0)
    with pytest.raises(ValueError, match="invalid model name"):
        triton_config("../escape", build_onnx())
    with pytest.raises(ValueError, match="positive integer"):
        write_version(Path("unused"), NAME, 0, build_onnx(), "x")


# -- last: changes the served version ------------------------------------------------------------


def test_new_version_is_served_without_restart(triton):
    onnx_v2 = build_onnx(shift=1.5)
    write_version(triton.repo, NAME, 2, onnx_v2, triton_config(NAME, onnx_v2))
    assert list_versions(triton.repo, NAME) == [1, 2]

    def v2_ready() -> bool:
        url = f"{triton.http}/v2/models/{NAME}/versions/2/ready"
        return requests.get(url, timeout=5).status_code == 200

    wait_for(v2_ready, 20, "version 2 to load")
    x, c = _batch(6, seed=11)
    body = requests.post(
        f"{triton.http}/v2/models/{NAME}/infer", json=v2_json(x, c), timeout=10
    ).json()
    assert body["model_version"] == "2"
    probabilities = np.array(body["outputs"][0]["data"]).reshape(6, 2)
    np.testing.assert_allclose(probabilities, expected(x, c, shift=1.5), rtol=1e-5, atol=1e-6)
    # version policy "latest 1": version 1 is unloaded, the same process serves on
    wait_for(
        lambda: (
            requests.get(f"{triton.http}/v2/models/{NAME}/versions/1/ready", timeout=5).status_code
            != 200
        ),
        10,
        "version 1 to unload",
    )
    assert triton.process.poll() is None and triton.server.running_pid() == triton.process.pid

    remove_version(triton.repo, NAME, 1)
    assert list_versions(triton.repo, NAME) == [2]
    time.sleep(1.5)  # a poll sees the removal; version 2 keeps serving
    assert v2_ready()


# -- a real platform model --------------------------------------------------------------------


def test_a_trained_fraud_model_is_served_with_parity(triton):
    """Raw feature columns in, the same probabilities as the in-process sklearn pipeline out."""
    import tritonclient.http as httpclient

    from configs import load_config
    from features.contract import clean_rows
    from features.fraud_data import generate_transactions
    from features.split import features_and_target, split_data
    from serving.onnx_export import export_onnx, to_onnx_inputs
    from tests.unit.conftest import fit_pipeline

    config = load_config("fraud")
    train, _, test = split_data(
        clean_rows(generate_transactions(6000, seed=4), config).clean, config
    )
    model = fit_pipeline(config, train, "gbdt", {"max_iter": 40})
    columns = (config.numeric_features, config.categorical_features)
    onnx_bytes = export_onnx(model, *columns)
    write_version(triton.repo, "fraud-real", 1, onnx_bytes, triton_config("fraud-real", onnx_bytes))
    wait_for(
        lambda: (
            requests.get(f"{triton.http}/v2/models/fraud-real/ready", timeout=5).status_code == 200
        ),
        20,
        "fraud-real to load",
    )
    X, _ = features_and_target(test.head(300), config)
    inputs = []
    for name, values in to_onnx_inputs(X, *columns).items():
        tensor = httpclient.InferInput(
            name, list(values.shape), "FP32" if values.dtype == np.float32 else "BYTES"
        )
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    client = httpclient.InferenceServerClient(url=triton.http_hostport)
    served = client.infer("fraud-real", inputs).as_numpy("probabilities")[:, 1]
    client.close()
    np.testing.assert_allclose(served, model.predict_proba(X)[:, 1], atol=1e-4)


def _tensor(name: str, datatype: str, data: list, shape: list[int] | None = None) -> dict:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data), 1], "data": data}


BAD_REQUESTS = {
    "missing input": ({"inputs": [_tensor("x", "FP32", [0.5])]}, "c"),
    "wrong dtype": (
        {"inputs": [_tensor("x", "BYTES", ["a"]), _tensor("c", "BYTES", ["yes"])]},
        "x",
    ),
    "wrong shape": (
        {"inputs": [_tensor("x", "FP32", [0.5, 1.0], [1, 2]), _tensor("c", "BYTES", ["yes"])]},
        "x",
    ),
    "oversized batch": (
        {"inputs": [_tensor("x", "FP32", [0.0] * 1025), _tensor("c", "BYTES", ["a"] * 1025)]},
        "batch",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_a_4xx_that_says_what_is_wrong(triton, case):
    body, word = BAD_REQUESTS[case]
    response = requests.post(f"{triton.http}/v2/models/{NAME}/infer", json=body, timeout=10)
    assert 400 <= response.status_code < 500, response.text
    assert word in response.json()["error"]
    x, c = _batch(3, seed=5)  # the server keeps serving everyone else
    ok = requests.post(f"{triton.http}/v2/models/{NAME}/infer", json=v2_json(x, c), timeout=10)
    assert ok.status_code == 200


def test_unknown_model_and_version_are_4xx(triton):
    url = f"{triton.http}/v2/models"
    x, c = _batch(2, seed=6)
    unknown = requests.post(f"{url}/nope/infer", json=v2_json(x, c), timeout=10)
    assert 400 <= unknown.status_code < 500 and "nope" in unknown.json()["error"]
    version = requests.post(f"{url}/{NAME}/versions/99/infer", json=v2_json(x, c), timeout=10)
    assert 400 <= version.status_code < 500 and "99" in version.json()["error"]


def _binary_infer(triton, x: np.ndarray, c: list[str]):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=triton.http_hostport)
    try:
        return client.infer(NAME, _client_inputs(httpclient, x, c)).as_numpy("probabilities")
    finally:
        client.close()


def test_infinity_is_rejected_with_4xx_and_nan_is_scored(triton):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as rejected:
        _binary_infer(triton, np.array([[0.5], [np.inf]], np.float32), ["a", "b"])
    assert "contains +/-inf" in str(rejected.value) and "400" in str(rejected.value.status())
    scored = _binary_infer(triton, np.array([[np.nan], [1.0]], np.float32), ["", "never-seen"])
    assert scored.shape == (2, 2)
    assert np.isfinite(scored[1]).all()


# -- version swap under traffic ------------------------------------------------------------------


def test_version_swap_under_concurrent_traffic_drops_nothing(triton):
    """Clients keep sending while a new version is written and loaded: every request succeeds
    and answers come from the old version, then the new one."""
    import threading

    name = "swap"
    v1 = build_onnx()
    write_version(triton.repo, name, 1, v1, triton_config(name, v1))
    url = f"{triton.http}/v2/models/{name}"
    wait_for(lambda: requests.get(f"{url}/ready", timeout=5).status_code == 200, 20, "swap v1")
    x, c = _batch(4, seed=8)
    statuses, versions, stop = [], [], threading.Event()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set() and len(statuses) < 20_000:
                response = session.post(f"{url}/infer", json=v2_json(x, c), timeout=10)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.append(response.json()["model_version"])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(versions) > 50, 10, "traffic on v1")
        v2 = build_onnx(shift=1.5)
        write_version(triton.repo, name, 2, v2, triton_config(name, v2))
        wait_for(lambda: versions and versions[-1] == "2", 30, "traffic on v2")
        served_after = len(versions)
        wait_for(lambda: len(versions) > served_after + 50, 10, "more traffic on v2")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert versions[0] == "1" and versions[-1] == "2"
    first_v2 = versions.index("2")
    assert set(versions[first_v2:]) <= {"1", "2"} and "1" in versions[:first_v2]
