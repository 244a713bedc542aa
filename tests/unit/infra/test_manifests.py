"""The platform's kustomize overlays build offline and say what the cluster layer promises:
locked-down pods, resources everywhere, GPU only in the gpu overlay, serving as a KServe
InferenceService whose only public port is the gateway (Triton on loopback beside it, fed from
the MLflow registry), default-deny network policies, credentials and API-key hashes from
generated Secrets."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import stat
import subprocess
from importlib import metadata

import pandas as pd
import pytest
import yaml

from serving.gateway import cli as gateway_cli
from tests.unit.infra.conftest import (
    K8S,
    MAKE_SECRETS,
    OVERLAYS,
    REPO,
    copy_tree,
    kustomize,
    pod_containers,
    pod_spec,
)
from tests.unit.infra.kserve import KSERVE_VERSION

PIPELINE_IMAGE_DEFAULT = re.search(
    r'os\.environ\.get\("PIPELINE_IMAGE", "([^"]+)"\)',
    (REPO / "pipelines" / "components.py").read_text(),
).group(1)
MLFLOW_URL = "http://mlflow.mlops.svc.cluster.local:5000"
PINNED_TAG = re.compile(r"^[a-z0-9.\-/]+:(?!latest$)[\w.\-]+$")
# The first NGC release with every upstream fix docs/deploy.md names for hostile HTTP input
# (the last of them, #8770, shipped in 26.05); the manifests pin 26.08.
TRITON_FLOOR = (26, 5)


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# --- builds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_offline_into_the_mlops_namespace(rendered, overlay):
    objects = rendered[overlay].objects
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "StatefulSet", "Service", "InferenceService",
            "NetworkPolicy", "Secret", "ConfigMap", "PersistentVolumeClaim"} <= kinds  # fmt: skip
    # KServe makes the serving Deployment, Service and HorizontalPodAutoscaler itself.
    assert "HorizontalPodAutoscaler" not in kinds
    for obj in objects:
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == "mlops"
            assert obj["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        else:
            assert obj["metadata"]["namespace"] == "mlops", obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tabular-mlops"


def test_platform_kustomizations_reference_nothing_remote():
    for path in [
        *K8S.glob("base/**/kustomization.yaml"),
        *K8S.glob("overlays/*/kustomization.yaml"),
        K8S / "pipeline-runs" / "kustomization.yaml",
    ]:
        spec = yaml.safe_load(path.read_text())
        for entry in spec.get("resources", []) + spec.get("components", []):
            assert "://" not in entry and not entry.startswith("github.com"), (path, entry)


def test_kubeflow_pipelines_is_referenced_at_the_release_of_the_kfp_sdk():
    """Both upstream kustomizations are referenced (never copied, never built here) at one
    pinned release whose major.minor is the SDK's that compiles the pipeline."""
    sdk = metadata.version("kfp")
    refs = set()
    for sub in ("kubeflow/cluster-scoped", "kubeflow"):
        (resource,) = yaml.safe_load((K8S / sub / "kustomization.yaml").read_text())["resources"]
        match = re.fullmatch(
            r"https://github\.com/kubeflow/pipelines/manifests/kustomize/"
            r"(cluster-scoped-resources|env/platform-agnostic)\?ref=(\d+\.\d+\.\d+)",
            resource,
        )
        assert match, resource
        refs.add(match.group(2))
        assert len(list((K8S / sub).iterdir())) == 1 + (sub == "kubeflow"), "copied manifests?"
    (ref,) = refs
    assert ref.split(".")[:2] == sdk.split(".")[:2], f"KFP {ref} vs kfp SDK {sdk}"


def test_build_without_credentials_fails_naming_the_missing_env_file(kubectl, tmp_path):
    root = copy_tree(tmp_path)  # a fresh clone: examples only
    done = kustomize(kubectl, root / "overlays" / "cpu")
    assert done.returncode != 0
    assert re.search(r"secrets/\w+\.env", done.stderr), done.stderr


def test_make_secrets_writes_random_private_env_files_once(tmp_path):
    secrets = copy_tree(tmp_path) / "base" / "secrets"

    def run() -> str:
        done = subprocess.run(
            ["bash", str(MAKE_SECRETS), str(secrets)], capture_output=True, text=True, check=True
        )
        assert done.stdout == ""
        return done.stderr

    output = run()
    assert output.count("wrote") == 5 and output.count("derived") == 1
    first = {p.name: p.read_text() for p in secrets.glob("*.env")}
    assert sorted(first) == ["grafana.env", "minio.env", "postgres.env", "promotion-lock-url.env",
                             "promotion-lock.env"]  # fmt: skip
    derived = first.pop("promotion-lock-url.env")
    passwords = []
    for name, text in first.items():
        assert "=CHANGE_ME" not in text
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600
        example = (secrets / f"{name}.example").read_text().splitlines()
        for want, got in zip(example, text.splitlines(), strict=True):
            if want.endswith("=CHANGE_ME"):
                value = got.split("=", 1)[1]
                assert re.fullmatch(r"[0-9a-f]{48}", value), got
                passwords.append(value)
            else:
                assert got == want
    assert len(set(passwords)) == len(passwords) == 4
    # The lock's URL for pipeline runs: the lock role's password, MLflow's database.
    lock_password = first["promotion-lock.env"].strip().rsplit("=", 1)[1]
    assert derived == (f"MLOPS_PROMOTION_LOCK=postgresql://promotion_lock:{lock_password}"
                       "@postgres.mlops.svc.cluster.local:5432/mlflow\n")  # fmt: skip
    assert stat.S_IMODE((secrets / "promotion-lock-url.env").stat().st_mode) == 0o600
    # The gateway's key: the key in a private file (and shown once), only its hash in the
    # Secret's keys file, in the format the gateway reads.
    key = (secrets / "gateway-client.key").read_text().strip()
    assert re.fullmatch(r"gw_[A-Za-z0-9_\-]{43}", key), key
    assert stat.S_IMODE((secrets / "gateway-client.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((secrets / "gateway-keys.json").stat().st_mode) == 0o600
    keys_text = (secrets / "gateway-keys.json").read_text()
    assert key not in keys_text and output.count(key) == 1
    from serving.gateway.auth import KeyStore

    store = KeyStore(secrets / "gateway-keys.json")
    assert store.authenticate(f"Bearer {key}", None, "fraud-classifier") == "default-client"
    assert json.loads(keys_text)["keys"][0]["sha256"] == hashlib.sha256(key.encode()).hexdigest()

    again = run()
    assert again.count("kept") == 5 and key not in again  # idempotent: never overwrites
    assert {p.name: p.read_text() for p in secrets.glob("*.env")} == {
        **first, "promotion-lock-url.env": derived}  # fmt: skip
    assert (secrets / "gateway-keys.json").read_text() == keys_text


def test_pipeline_runs_get_the_promotion_lock_the_compiled_pipeline_reads(kubectl, k8s_copy):
    """The Secret the deploy steps read as MLOPS_PROMOTION_LOCK exists, under that name, in the
    namespace Kubeflow runs them in, and names the lock role the postgres pod creates."""
    from models.registry import LOCK_ENV
    from pipelines.training import PROMOTION_LOCK_SECRET

    done = kustomize(kubectl, k8s_copy / "pipeline-runs")
    assert done.returncode == 0, done.stderr
    (secret,) = [o for o in yaml.safe_load_all(done.stdout) if o]
    assert (secret["kind"], secret["metadata"]["name"], secret["metadata"]["namespace"]) == (
        "Secret", PROMOTION_LOCK_SECRET, "kubeflow")  # fmt: skip
    url = base64.b64decode(secret["data"][LOCK_ENV]).decode()
    assert re.fullmatch(r"postgresql://promotion_lock:[0-9a-f]{48}"
                        r"@postgres\.mlops\.svc\.cluster\.local:5432/mlflow", url)  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_postgres_creates_the_lock_role_at_init(rendered, overlay):
    out = rendered[overlay]
    pod = pod_spec(out.get("StatefulSet", "postgres"))
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    init = volumes[mounts["/docker-entrypoint-initdb.d"]]["configMap"]
    assert init["defaultMode"] == 0o555  # executed: the script keeps its own shell options
    script = out.get("ConfigMap", "postgres-init")["data"]["promotion-lock-role.sh"]
    assert "/run/secrets/promotion-lock/PROMOTION_LOCK_PASSWORD" in script
    role = volumes[mounts["/run/secrets/promotion-lock"]]["secret"]["secretName"]
    assert "PROMOTION_LOCK_PASSWORD" in out.get("Secret", "promotion-lock-role")["data"]
    assert role == out.get("Secret", "promotion-lock-role")["metadata"]["name"]


def test_credentials_are_never_committed():
    ignored = (K8S / "base" / "secrets" / ".gitignore").read_text().split()
    assert "*.env" in ignored
    for generated in ("gateway-keys.json", "*.key"):
        assert generated in ignored
    tracked = subprocess.run(
        ["git", "ls-files", "infra/k8s/base/secrets"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert all(path.endswith((".example", ".gitignore")) for path in tracked), tracked


# --- every pod ------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_and_container_is_locked_down_and_bounded(rendered, overlay):
    workloads = rendered[overlay].workloads()
    assert {w["metadata"]["name"] for w in workloads} == {
        "postgres", "minio", "mlflow", "inference", "pushgateway", "prometheus", "grafana",
        "canary-controller", "drift-monitor", "inference-log-retention",
    }  # fmt: skip
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = pod_spec(workload)
        assert pod["automountServiceAccountToken"] is False, name
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] >= 10000, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod_containers(workload):
            where = f"{name}/{container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where
            assert PINNED_TAG.match(container["image"]), f"{where}: {container['image']}"
            assert container["imagePullPolicy"] == "Always", where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_long_running_container_has_probes(rendered, overlay):
    for workload in rendered[overlay].workloads():
        if workload["kind"] == "CronJob":
            continue  # a tick runs to completion: nothing to probe
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, where


# --- serving: the InferenceService ------------------------------------------------------------


def _isvc(rendered, overlay) -> dict:
    return rendered[overlay].get("InferenceService", "inference")


def _containers(rendered, overlay) -> tuple[dict, dict]:
    """(Triton, gateway): KServe's kserve-container and transformer-container, in that order."""
    triton, gateway = pod_spec(_isvc(rendered, overlay))["containers"]
    assert (triton["name"], gateway["name"]) == ("kserve-container", "transformer-container")
    return triton, gateway


def _flags(container: dict) -> dict[str, str]:
    """--name=value arguments of a container, as a dict."""
    return dict(a.removeprefix("--").split("=", 1) for a in container["args"] if "=" in a)


def _ports(container: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def _gateway_args(gateway: dict):
    """The gateway container's command line, parsed by the gateway's own CLI parser."""
    assert gateway["command"] == ["python", "-m", "serving.gateway"]
    return gateway_cli._parser().parse_args(gateway["args"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_serving_is_one_kserve_inference_service_in_standard_mode(rendered, overlay):
    isvc = _isvc(rendered, overlay)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    predictor = isvc["spec"]["predictor"]
    assert set(isvc["spec"]) == {"predictor"}, "collocated: no separate transformer component"
    assert predictor["labels"]["app.kubernetes.io/name"] == "inference"
    assert predictor["scaleMetric"] == "cpu" and 0 < predictor["scaleTarget"] < 100
    assert 1 <= predictor["minReplicas"] < predictor["maxReplicas"]
    assert predictor["deploymentStrategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert predictor["enableServiceLinks"] is False
    # no Deployment or HPA of our own beside KServe's
    assert not [w for w in rendered[overlay].workloads() if "triton" in w["metadata"]["name"]]
    assert KSERVE_VERSION in (K8S / "base" / "inference.yaml").read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_listens_on_loopback_only_with_the_fixed_release(rendered, overlay):
    triton, _ = _containers(rendered, overlay)
    match = re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d\d)\.(\d\d)-py3", triton["image"])
    assert match and tuple(map(int, match.groups())) >= TRITON_FLOOR, triton["image"]
    flags = _flags(triton)
    assert triton["args"][0] == "tritonserver"
    assert flags["http-address"] == "127.0.0.1"
    assert flags["allow-grpc"] == "false" and "grpc-port" not in flags
    assert flags["metrics-address"] == "0.0.0.0"
    assert int(flags["http-max-input-size"]) > 0
    assert flags["model-repository"] == "/models" and flags["model-control-mode"] == "poll"
    # Only the metrics port is declared; the kubelet probes it (the API is out of its reach).
    assert _ports(triton) == {"triton-metrics": int(flags["metrics-port"])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert triton[probe]["httpGet"] == {"path": "/metrics", "port": "triton-metrics"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_is_the_public_endpoint_in_front_of_triton(rendered, overlay):
    triton, gateway = _containers(rendered, overlay)
    assert gateway["image"] == PIPELINE_IMAGE_DEFAULT
    args = _gateway_args(gateway)
    assert args.command == "serve" and args.host == "0.0.0.0"
    # Its upstream is the Triton beside it, on loopback, on Triton's HTTP port.
    assert args.upstream == f"http://127.0.0.1:{_flags(triton)['http-port']}"
    assert not args.predictor_host
    # KServe's Service maps port 80 to the first container port: the gateway's HTTP.
    assert gateway["ports"][0] == {"name": "http", "containerPort": args.port, "protocol": "TCP"}
    assert _ports(gateway) == {"http": args.port, "gateway-metrics": args.metrics_port}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    # Triton accepts no bigger request than the gateway can send it.
    assert int(_flags(triton)["http-max-input-size"]) >= args.max_body_bytes
    # Beyond loopback the gateway needs keys: they come from the Secret, read-only.
    assert args.keys_file is not None
    mounts = {m["name"]: m for m in gateway["volumeMounts"]}
    keys_mount = mounts["gateway-keys"]
    assert keys_mount["readOnly"] is True and "subPath" not in keys_mount  # reloads on rotation
    assert str(args.keys_file) == f"{keys_mount['mountPath']}/keys.json"
    assert mounts["inference-log"]["mountPath"] == str(args.log_root)
    volumes = {v["name"]: v for v in pod_spec(_isvc(rendered, overlay))["volumes"]}
    assert volumes["gateway-keys"]["secret"] == {"secretName": "gateway-keys", "defaultMode": 0o440}
    assert volumes["inference-log"] == {
        "name": "inference-log",
        "persistentVolumeClaim": {"claimName": "inference-log"},
    }
    # /explain reads the answering version's model from the registry, through MLflow's proxied
    # artifacts: the tracking URL and no storage credential.
    env = _env(gateway)
    assert env["MLFLOW_TRACKING_URI"]["value"] == MLFLOW_URL
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_keys_secret_holds_hashes_only(rendered, overlay, k8s_copy):
    import base64

    secret = rendered[overlay].get("Secret", "gateway-keys")
    assert set(secret["data"]) == {"keys.json"}
    document = json.loads(base64.b64decode(secret["data"]["keys.json"]))
    assert [set(entry) <= {"name", "sha256", "models"} for entry in document["keys"]] == [True]
    assert re.fullmatch(r"[0-9a-f]{64}", document["keys"][0]["sha256"])
    key = (k8s_copy / "base" / "secrets" / "gateway-client.key").read_text().strip()
    assert key not in rendered[overlay].text
    assert base64.b64encode(key.encode()).decode()[:20] not in rendered[overlay].text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_service_scrapes_every_serving_pod_ready_or_not(rendered, overlay):
    triton, gateway = _containers(rendered, overlay)
    service = rendered[overlay].get("Service", "inference-metrics")["spec"]
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
    labels = _isvc(rendered, overlay)["spec"]["predictor"]["labels"]
    assert service["selector"].items() <= labels.items()
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["ports"]}
    assert ports == {
        "triton-metrics": (_ports(triton)["triton-metrics"], "triton-metrics"),
        "gateway-metrics": (_ports(gateway)["gateway-metrics"], "gateway-metrics"),
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_model_repository_is_synced_from_the_registry(rendered, overlay):
    """An init container, then a native sidecar, run `python -m serving.deploy` from the
    pipeline image into the emptyDir Triton serves, against the cluster's MLflow."""
    pod = pod_spec(_isvc(rendered, overlay))
    init, sidecar = pod["initContainers"]
    assert (init["name"], sidecar["name"]) == ("model-sync-init", "model-sync")
    assert "restartPolicy" not in init and sidecar["restartPolicy"] == "Always"
    kind = "KIND_GPU" if overlay == "gpu" else "KIND_CPU"
    for container in (init, sidecar):
        assert container["image"] == PIPELINE_IMAGE_DEFAULT
        script = " ".join(container["command"] + container["args"])
        assert "python -m serving.deploy" in script and "--repo /models" in script
        assert '--backend onnxruntime --kind "$TRITON_KIND"' in script
        env = _env(container)
        assert env["TRITON_KIND"]["value"] == kind
        assert env["MLFLOW_TRACKING_URI"]["value"] == MLFLOW_URL
        assert {"name": "models", "mountPath": "/models"} in container["volumeMounts"]
    triton, gateway = _containers(rendered, overlay)
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in triton["volumeMounts"]
    assert "models" not in {m["name"] for m in gateway["volumeMounts"]}
    assert {"name": "models", "emptyDir": {"sizeLimit": "2Gi"}} in pod["volumes"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpus_only_in_the_gpu_overlay(rendered, overlay):
    pod = pod_spec(_isvc(rendered, overlay))
    triton, gateway = _containers(rendered, overlay)
    assert "nvidia.com/gpu" not in json.dumps(gateway)
    if overlay == "gpu":
        assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
        assert pod["maxReplicas"] == 2
    else:
        assert "nvidia.com/gpu" not in rendered[overlay].text
        assert "nodeSelector" not in pod and "tolerations" not in pod


def test_overlays_differ_only_in_triton_placement_and_scale(rendered):
    def comparable(out):
        objects = {}
        for obj in out.objects:
            obj = yaml.safe_load(yaml.safe_dump(obj))
            if obj["kind"] == "InferenceService":
                pod = obj["spec"]["predictor"]
                pod.pop("nodeSelector", None), pod.pop("tolerations", None)
                pod.pop("maxReplicas")
                for c in pod_containers(obj):
                    for bound in c.get("resources", {}).values():
                        bound.pop("nvidia.com/gpu", None)
                    c["env"] = [e for e in c.get("env", []) if e["name"] != "TRITON_KIND"]
            objects[(obj["kind"], obj["metadata"]["name"])] = obj
        return objects

    assert comparable(rendered["cpu"]) == comparable(rendered["gpu"])


def test_the_gpu_patch_fails_the_build_when_the_base_moves(kubectl, k8s_copy, tmp_path):
    """The gpu overlay patches containers by index (a JSON patch): its `test` operations make
    the build fail, instead of patching the wrong container, when the base's order changes."""
    root = tmp_path / "k8s"
    shutil.copytree(k8s_copy.parent.parent, root)
    base = root / "infra" / "k8s" / "base" / "inference.yaml"
    documents = list(yaml.safe_load_all(base.read_text()))
    documents[0]["spec"]["predictor"]["initContainers"].reverse()
    base.write_text(yaml.safe_dump_all(documents))
    assert kustomize(kubectl, root / "infra" / "k8s" / "overlays" / "cpu").returncode == 0
    done = kustomize(kubectl, root / "infra" / "k8s" / "overlays" / "gpu")
    assert done.returncode != 0 and "test" in done.stderr.lower(), done.stderr


def test_the_overlays_image_setting_reaches_the_inference_service(kubectl, k8s_copy, tmp_path):
    """`images:` in an overlay (docs/deploy.md, "Build and push the image") rewrites the
    pipeline image inside the InferenceService too, not only in Deployments."""
    root = tmp_path / "k8s"
    shutil.copytree(k8s_copy.parent.parent, root)
    overlay = root / "infra" / "k8s" / "overlays" / "cpu" / "kustomization.yaml"
    overlay.write_text(overlay.read_text().replace('newTag: "0.1.0"', 'newTag: "9.9.9"'))
    done = kustomize(kubectl, overlay.parent)
    assert done.returncode == 0, done.stderr
    (isvc,) = [o for o in yaml.safe_load_all(done.stdout) if o and o["kind"] == "InferenceService"]
    images = {c["name"]: c["image"] for c in pod_containers(isvc)}
    assert images.pop("kserve-container").startswith("nvcr.io/nvidia/tritonserver:")
    assert set(images.values()) == {"ghcr.io/tabular-mlops/pipeline-python:9.9.9"}


# --- the canary controller --------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_canary_controller_ticks_every_minute_and_moves_only_the_registry(rendered, overlay):
    """A CronJob runs `python -m monitoring.canary tick` for the served project once a minute,
    one tick at a time, against the cluster's Prometheus, Pushgateway and MLflow, under the
    promotion lock pipeline runs take; no serving repository (the model sync publishes)."""
    out = rendered[overlay]
    cron = out.get("CronJob", "canary-controller")
    assert cron["spec"]["schedule"] == "* * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert 0 < cron["spec"]["startingDeadlineSeconds"] < 60  # never a late tick
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 0
    pod = pod_spec(cron)
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == PIPELINE_IMAGE_DEFAULT
    assert container["command"] == ["python", "-m", "monitoring.canary"]
    args = container["args"]
    assert args[:2] == ["tick", "--registry-only"] and "--dry-run" not in args
    assert not {"--repo", "--triton-url"} & set(args)
    flags = dict(zip(args[2::2], args[3::2], strict=True))
    ports = {
        name: out.get("Service", name)["spec"]["ports"][0]["port"]
        for name in ("prometheus", "pushgateway")
    }
    log_root = str(_gateway_args(_containers(rendered, overlay)[1]).log_root)
    assert flags == {
        "--project": "fraud",
        "--prometheus": f"http://prometheus.mlops.svc.cluster.local:{ports['prometheus']}",
        "--pushgateway": f"http://pushgateway.mlops.svc.cluster.local:{ports['pushgateway']}",
        "--log-path": log_root,  # the gateways' log and labels, for the labelled-quality rule
    }
    # The same project the serving pods sync.
    sync = next(c for c in pod_spec(_isvc(rendered, overlay))["initContainers"]
                if c["name"] == "model-sync")  # fmt: skip
    assert _env(sync)["TRITON_PROJECT"]["value"] == flags["--project"]
    env = _env(container)
    assert env["MLFLOW_TRACKING_URI"]["value"] == MLFLOW_URL
    from models.registry import LOCK_ENV

    ref = env[LOCK_ENV]["valueFrom"]["secretKeyRef"]
    assert ref["key"] == LOCK_ENV
    assert ref["name"] == out.get("Secret", "promotion-lock")["metadata"]["name"]
    url = base64.b64decode(out.get("Secret", "promotion-lock")["data"][LOCK_ENV]).decode()
    assert re.fullmatch(r"postgresql://promotion_lock:[0-9a-f]{48}"
                        r"@postgres\.mlops\.svc\.cluster\.local:5432/mlflow", url)  # fmt: skip
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)
    # Relative paths (its decision records) land in the writable emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert container["workingDir"] in mounts


def _claim(volume: dict) -> str | None:
    return volume.get("persistentVolumeClaim", {}).get("claimName")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_serving_replica_and_the_log_readers_share_one_log_claim(rendered, overlay):
    """The gateways write the log and labels to one ReadWriteMany claim; the canary controller
    and the drift monitor mount the same claim, read-only, where they read them; the retention
    job mounts it writable, where it deletes expired days."""
    out = rendered[overlay]
    claim = out.get("PersistentVolumeClaim", "inference-log")["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"] and claim["resources"]["requests"]["storage"]
    readers = {}
    crons = [out.get("CronJob", name) for name in ("canary-controller", "drift-monitor")]
    retention = out.get("CronJob", "inference-log-retention")
    for workload in (_isvc(rendered, overlay), *crons, retention):
        pod = pod_spec(workload)
        (volume,) = [v for v in pod["volumes"] if _claim(v) == "inference-log"]
        assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
        for container in pod_containers(workload):
            for mount in container.get("volumeMounts", []):
                if mount["name"] == volume["name"]:
                    readers[container["name"]] = (mount["mountPath"], mount.get("readOnly", False))
    assert readers == {
        "transformer-container": ("/var/lib/inference-log", False),  # the gateway writes
        "canary-controller": ("/var/lib/inference-log", True),
        "drift-monitor": ("/var/lib/inference-log", True),
        "inference-log-retention": ("/var/lib/inference-log", False),  # deletes old days
    }
    users = {w["metadata"]["name"] for w in out.workloads()
             if "inference-log" in {_claim(v) for v in pod_spec(w).get("volumes", [])}}  # fmt: skip
    assert users == {"inference", "canary-controller", "drift-monitor", "inference-log-retention"}
    for cron in crons:
        assert {"name": "inference-log", "persistentVolumeClaim": {"claimName": "inference-log",
                "readOnly": True}} in pod_spec(cron)["volumes"]  # fmt: skip


def test_the_kind_overlay_is_cpu_with_a_read_write_once_log(kubectl, k8s_copy, rendered):
    """One node (kind's local-path storage): the same objects as cpu, the log's claim
    ReadWriteOnce, which every pod on that node may mount."""
    done = kustomize(kubectl, k8s_copy / "overlays" / "kind")
    assert done.returncode == 0, done.stderr
    kind = [o for o in yaml.safe_load_all(done.stdout) if o]
    (claim,) = [o for o in kind if o["kind"] == "PersistentVolumeClaim"
                and o["metadata"]["name"] == "inference-log"]  # fmt: skip
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    claim["spec"]["accessModes"] = ["ReadWriteMany"]
    assert kind == rendered["cpu"].objects


def test_the_canary_controllers_flags_are_the_clis(capsys):
    """Every flag the CronJob passes is one `python -m monitoring.canary tick` takes."""
    from monitoring import canary

    text = (K8S / "base" / "canary.yaml").read_text()
    (cron,) = [o for o in yaml.safe_load_all(text) if o and o["kind"] == "CronJob"]
    (container,) = pod_spec(cron)["containers"]
    with pytest.raises(SystemExit) as done:
        canary.main([container["args"][0], "--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    flags = [a for a in container["args"] if a.startswith("--")]
    assert flags and [f for f in flags if f not in usage] == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_log_is_pruned_nightly_by_a_job_with_no_network(rendered, overlay):
    """A CronJob runs `python -m serving.log_retention` once a day over the gateways' log root,
    with arguments the CLI parses, and no network policy lets it reach or be reached by
    anything (it needs only the claim)."""
    from serving import log_retention

    out = rendered[overlay]
    cron = out.get("CronJob", "inference-log-retention")
    minute, hour, *every = cron["spec"]["schedule"].split()
    assert 0 <= int(minute) < 60 and 0 <= int(hour) < 24 and every == ["*", "*", "*"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_spec(cron)
    (container,) = pod["containers"]
    assert container["image"] == PIPELINE_IMAGE_DEFAULT
    assert container["command"] == ["python", "-m", "serving.log_retention"]
    args = log_retention._parser().parse_args(container["args"])
    assert str(args.log_root) == str(_gateway_args(_containers(rendered, overlay)[1]).log_root)
    assert args.keep_days >= 30 and not args.dry_run and args.today is None
    assert _mounted_claim(pod, container, str(args.log_root)) == ("inference-log", False)
    name = cron["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False and not _env(container).keys() - {"HOME"}
    for policy in [o for o in out.objects if o["kind"] == "NetworkPolicy"]:
        spec = policy["spec"]
        selected = spec["podSelector"].get("matchLabels", {})
        assert selected.get("app.kubernetes.io/name") != name, policy["metadata"]["name"]
        peers = [peer for rule in spec.get("ingress", []) + spec.get("egress", [])
                 for peer in rule.get("from", []) + rule.get("to", [])]  # fmt: skip
        assert name not in json.dumps(peers), policy["metadata"]["name"]


# --- the drift monitor ------------------------------------------------------------------------


def _mounted_claim(pod: dict, container: dict, path: str) -> tuple[str, bool]:
    """(claim, read-only) of the container's mount that holds `path`."""
    (mount,) = [m for m in container["volumeMounts"]
                if path == m["mountPath"] or path.startswith(m["mountPath"] + "/")]  # fmt: skip
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return _claim(volume), mount.get("readOnly", False)


def _monitor_stale_after_s() -> int:
    """MonitorStale's threshold: seconds since the monitor's last successful push."""
    rules = yaml.safe_load((REPO / "monitoring" / "prometheus" / "alerts.yml").read_text())
    (expr,) = [r["expr"] for g in rules["groups"] for r in g["rules"]
               if r.get("alert") == "MonitorStale"]  # fmt: skip
    match = re.fullmatch(r"time\(\) - mlops_monitor_last_success_timestamp_seconds > (\d+)", expr)
    assert match, expr
    return int(match.group(1))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_drift_monitor_runs_hourly_on_the_shared_log_and_keeps_its_reports(rendered, overlay):
    """A CronJob runs `python -m monitoring.monitor` for the canary controller's project once an
    hour, one run at a time, soon enough that a healthy monitor never trips MonitorStale. It
    reads the gateways' log read-only, pushes to the cluster's Pushgateway and writes its
    reports to a claim of its own that outlives the run (the monitor is incremental: a window
    unchanged since its last summary there is not assessed again)."""
    out = rendered[overlay]
    cron = out.get("CronJob", "drift-monitor")
    spec = cron["spec"]
    minute, *every = spec["schedule"].split()
    assert 0 <= int(minute) < 60 and every == ["*", "*", "*", "*"]  # hourly
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    # Started late and ending at its deadline, a run still pushes before the alert fires.
    late = spec["startingDeadlineSeconds"] + job["activeDeadlineSeconds"]
    assert late > 0 and 3600 + late < _monitor_stale_after_s()
    pod = pod_spec(cron)
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["image"] == PIPELINE_IMAGE_DEFAULT
    assert container["command"] == ["python", "-m", "monitoring.monitor"]
    args = container["args"]
    assert "--recompute" not in args and "--since" not in args
    flags = dict(zip(args[::2], args[1::2], strict=True))
    port = out.get("Service", "pushgateway")["spec"]["ports"][0]["port"]
    log_root = str(_gateway_args(_containers(rendered, overlay)[1]).log_root)
    canary_args = pod_spec(out.get("CronJob", "canary-controller"))["containers"][0]["args"]
    canary = dict(zip(canary_args[2::2], canary_args[3::2], strict=True))
    assert flags == {
        "--project": canary["--project"],  # the served project (the canary test checks it)
        "--log-path": log_root,
        "--out": flags["--out"],
        "--lookback": flags["--lookback"],
        "--pushgateway": f"http://pushgateway.mlops.svc.cluster.local:{port}",
    }
    # It reads what can still change: a week at least (late labels), within the retention.
    retention = pod_spec(out.get("CronJob", "inference-log-retention"))["containers"][0]["args"]
    keep_days = int(dict(zip(retention[::2], retention[1::2], strict=True))["--keep-days"])
    assert pd.Timedelta(days=7) <= pd.Timedelta(flags["--lookback"]) < pd.Timedelta(days=keep_days)
    assert _mounted_claim(pod, container, flags["--log-path"]) == ("inference-log", True)
    assert _mounted_claim(pod, container, flags["--out"]) == ("monitor-reports", False)
    claim = out.get("PersistentVolumeClaim", "monitor-reports")["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"] and claim["resources"]["requests"]["storage"]
    # Only this CronJob mounts the reports claim (ReadWriteOnce, one run at a time).
    users = [
        w["metadata"]["name"]
        for w in out.workloads()
        if "monitor-reports" in {_claim(v) for v in pod_spec(w).get("volumes", [])}
    ]
    assert users == ["drift-monitor"]
    env = _env(container)
    assert env["MLFLOW_TRACKING_URI"]["value"] == MLFLOW_URL
    # Artifacts come through MLflow's proxy; it moves no alias, so no lock and no credentials.
    from models.registry import LOCK_ENV

    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", LOCK_ENV} & set(env)
    assert env["HOME"]["value"] == container["workingDir"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    (tmp,) = [v for v in pod["volumes"] if v["name"] == mounts[container["workingDir"]]]
    assert "emptyDir" in tmp
    assert container["resources"]["limits"]["memory"] == "2Gi"


def test_the_drift_monitors_flags_are_the_clis(capsys):
    """Every flag the CronJob passes is one `python -m monitoring.monitor` takes."""
    from monitoring import monitor

    text = (K8S / "base" / "monitor.yaml").read_text()
    (cron,) = [o for o in yaml.safe_load_all(text) if o and o["kind"] == "CronJob"]
    (container,) = pod_spec(cron)["containers"]
    with pytest.raises(SystemExit) as done:
        monitor.main(["--help"])
    assert done.value.code == 0
    usage = capsys.readouterr().out
    flags = [a for a in container["args"] if a.startswith("--")]
    assert flags and [f for f in flags if f not in usage] == []


# --- MLflow, storage, credentials -------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mlflow_runs_on_postgres_and_minio_with_generated_credentials(rendered, overlay):
    out = rendered[overlay]
    mlflow = out.get("Deployment", "mlflow")
    (server,) = mlflow["spec"]["template"]["spec"]["containers"]
    assert server["image"] == PIPELINE_IMAGE_DEFAULT
    env = _env(server)
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"].startswith(
        "postgresql+psycopg2://$(POSTGRES_USER):$(POSTGRES_PASSWORD)@postgres.mlops.svc"
    )
    assert "--artifacts-destination=s3://mlflow/artifacts" in server["args"]
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.mlops.svc.cluster.local:9000"
    assert out.get("Service", "mlflow")["spec"]["ports"][0]["port"] == 5000
    for name in ("postgres", "minio"):
        statefulset = out.get("StatefulSet", name)
        (claim,) = statefulset["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        out.get("Service", name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_and_configmap_reference_resolves(rendered, overlay):
    """kustomize renamed every reference to its generated (hashed) object, and each key read
    exists; no credential value is written into a workload."""
    out = rendered[overlay]
    data = {
        (o["kind"], o["metadata"]["name"]): set(o.get("data", {}))
        for o in out.objects
        if o["kind"] in {"Secret", "ConfigMap"}
    }
    refs = 0
    for workload in out.workloads():
        pod = pod_spec(workload)
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                assert ("Secret", volume["secret"]["secretName"]) in data, volume
                refs += 1
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in data, volume
                refs += 1
        for container in pod_containers(workload):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in data[("Secret", ref["name"])], ref
                    refs += 1
                assert "CHANGE_ME" not in env.get("value", "")
    assert refs >= 16
    # Hashed names (pods roll when a password changes), except the API keys, which the gateway
    # reloads in place (and which kustomize could not rename inside the InferenceService).
    for secret in (o for o in out.objects if o["kind"] == "Secret"):
        assert re.fullmatch(r"(postgres-credentials|minio-credentials|grafana-admin"
                            r"|promotion-lock-role|promotion-lock)-\w+|gateway-keys",
                            secret["metadata"]["name"])  # fmt: skip


# --- network policies -------------------------------------------------------------------------


def _selects(policy: dict, labels: dict) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def _allowed(policies, source: str, target: str, port: int) -> bool:
    """Does some policy let pods app=source reach app=target on TCP `port` (both directions)?"""

    def peer_ok(peers, app):
        return any(p.get("podSelector", {}).get("matchLabels") == {"app.kubernetes.io/name": app}
                   and "namespaceSelector" not in p for p in peers)  # fmt: skip

    def port_ok(rule):
        return any(p["port"] == port for p in rule.get("ports", []))

    ingress = any(
        peer_ok(rule.get("from", []), source) and port_ok(rule)
        for policy in policies
        if _selects(policy, {"app.kubernetes.io/name": target})
        for rule in policy["spec"].get("ingress", [])
    )
    source_policies = [p for p in policies if _selects(p, {"app.kubernetes.io/name": source})
                       and "Egress" in p["spec"]["policyTypes"]]  # fmt: skip
    egress = any(
        peer_ok(rule.get("to", []), target) and port_ok(rule)
        for policy in source_policies
        for rule in policy["spec"].get("egress", [])
    )
    return ingress and egress


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_allow_each_flow(rendered, overlay):
    policies = [o for o in rendered[overlay].objects if o["kind"] == "NetworkPolicy"]
    deny = rendered[overlay].get("NetworkPolicy", "default-deny-all")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    flows = [
        ("mlflow", "postgres", 5432),
        ("mlflow", "minio", 9000),
        ("inference", "mlflow", 5000),  # the model sync
        ("prometheus", "inference", 8002),  # Triton's metrics
        ("prometheus", "inference", 8003),  # the gateway's
        ("prometheus", "pushgateway", 9091),
        ("grafana", "prometheus", 9090),
        # the canary controller's tick: the registry, the canary's series and alerts, its
        # pushed state, the promotion lock
        ("canary-controller", "mlflow", 5000),
        ("canary-controller", "prometheus", 9090),
        ("canary-controller", "pushgateway", 9091),
        ("canary-controller", "postgres", 5432),
        # the drift monitor: the registry (references, models, its runs), its gauges
        ("drift-monitor", "mlflow", 5000),
        ("drift-monitor", "pushgateway", 9091),
    ]
    for source, target, port in flows:
        assert _allowed(policies, source, target, port), (source, target, port)
    # and nothing else between the platform's own pods, e.g.:
    assert not _allowed(policies, "inference", "postgres", 5432)
    assert not _allowed(policies, "grafana", "mlflow", 5000)
    assert not _allowed(policies, "grafana", "inference", 8003)
    assert not _allowed(policies, "canary-controller", "minio", 9000)
    assert not _allowed(policies, "canary-controller", "inference", 8080)
    assert not _allowed(policies, "canary-controller", "inference", 8003)
    for target, port in (("minio", 9000), ("postgres", 5432), ("prometheus", 9090),
                         ("inference", 8080)):  # fmt: skip
        assert not _allowed(policies, "drift-monitor", target, port), target
    # Nobody connects to the controller or the monitor.
    for name in ("canary-controller", "drift-monitor"):
        spec = rendered[overlay].get("NetworkPolicy", name)["spec"]
        assert "Ingress" in spec["policyTypes"] and not spec.get("ingress"), name
    # Pipeline runs (namespace kubeflow) reach MLflow, the Pushgateway and PostgreSQL (the
    # promotion lock, as a role that reads no table).
    for target, port in (("mlflow", 5000), ("pushgateway", 9091), ("postgres", 5432)):
        policy = rendered[overlay].get("NetworkPolicy", target)
        assert any(
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}
            in rule["from"]
            and any(p["port"] == port for p in rule["ports"])
            for rule in policy["spec"]["ingress"]
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_port_is_open_to_callers_and_triton_to_nobody(rendered, overlay):
    """Callers anywhere in the cluster reach the gateway's HTTP port and nothing else of the
    serving pod; Triton's API port is on loopback and no policy admits it either."""
    out = rendered[overlay]
    triton, gateway = _containers(rendered, overlay)
    triton_api = int(_flags(triton)["http-port"])
    policies = [o for o in out.objects if o["kind"] == "NetworkPolicy"]
    serving = [p for p in policies if _selects(p, {"app.kubernetes.io/name": "inference"})]
    open_rules = [
        rule
        for policy in serving
        for rule in policy["spec"].get("ingress", [])
        if any("namespaceSelector" in peer for peer in rule.get("from", [{}]))
    ]
    open_ports = [[p["port"] for p in rule["ports"]] for rule in open_rules]
    assert open_ports == [[_ports(gateway)["http"]]]
    admitted = {
        port["port"]
        for policy in policies
        for rule in policy["spec"].get("ingress", [])
        for port in rule.get("ports", [])
    }
    assert triton_api not in admitted
    for service in (o for o in out.objects if o["kind"] == "Service"):
        assert triton_api not in {p["port"] for p in service["spec"]["ports"]}
