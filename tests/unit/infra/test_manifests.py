"""The platform's kustomize overlays build offline and say what the cluster layer promises:
locked-down pods, resources everywhere, GPU only in the gpu overlay, Triton fed from the
MLflow registry, default-deny network policies, credentials from generated Secrets."""

from __future__ import annotations

import re
import stat
import subprocess
from importlib import metadata

import pytest
import yaml

from tests.unit.infra.conftest import (
    K8S,
    MAKE_SECRETS,
    OVERLAYS,
    REPO,
    copy_tree,
    kustomize,
    pod_containers,
)

PIPELINE_IMAGE_DEFAULT = re.search(
    r'os\.environ\.get\("PIPELINE_IMAGE", "([^"]+)"\)',
    (REPO / "pipelines" / "components.py").read_text(),
).group(1)
MLFLOW_URL = "http://mlflow.mlops.svc.cluster.local:5000"
PINNED_TAG = re.compile(r"^[a-z0-9.\-/]+:(?!latest$)[\w.\-]+$")


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


# --- builds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_offline_into_the_mlops_namespace(rendered, overlay):
    objects = rendered[overlay].objects
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler",
            "NetworkPolicy", "Secret", "ConfigMap", "PersistentVolumeClaim"} <= kinds  # fmt: skip
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

    assert run().count("wrote") == 3
    first = {p.name: p.read_text() for p in secrets.glob("*.env")}
    assert sorted(first) == ["grafana.env", "minio.env", "postgres.env"]
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
    assert len(set(passwords)) == len(passwords) == 3
    assert run().count("kept") == 3  # idempotent: never overwrites
    assert {p.name: p.read_text() for p in secrets.glob("*.env")} == first


def test_credentials_are_never_committed():
    ignored = (K8S / "base" / "secrets" / ".gitignore").read_text().split()
    assert "*.env" in ignored
    tracked = subprocess.run(
        ["git", "ls-files", "infra/k8s/base/secrets"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert all(path.endswith((".example", ".gitignore")) for path in tracked), tracked


# --- every pod ------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_and_container_is_locked_down_and_bounded(rendered, overlay):
    workloads = rendered[overlay].workloads()
    assert {w["metadata"]["name"] for w in workloads} == {
        "postgres", "minio", "mlflow", "triton", "pushgateway", "prometheus", "grafana"
    }  # fmt: skip
    for workload in workloads:
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
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
        for container in workload["spec"]["template"]["spec"]["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, where


# --- Triton ---------------------------------------------------------------------------------


def _triton(rendered, overlay):
    return rendered[overlay].get("Deployment", "triton")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_health_ports_service_and_autoscaler(rendered, overlay):
    out = rendered[overlay]
    deployment = _triton(rendered, overlay)
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", server["image"])
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    args = server["args"]
    assert "--model-repository=/models" in args and "--model-control-mode=poll" in args
    service = out.get("Service", "triton")
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} == set(ports.items())
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "triton"}
    headless = out.get("Service", "triton-metrics")
    assert headless["spec"]["clusterIP"] == "None"
    hpa = out.get("HorizontalPodAutoscaler", "triton")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": "triton"}  # fmt: skip
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_model_repository_is_synced_from_the_registry(rendered, overlay):
    """An init container, then a native sidecar, run `python -m serving.deploy` from the
    pipeline image into the emptyDir Triton serves, against the cluster's MLflow."""
    pod = _triton(rendered, overlay)["spec"]["template"]["spec"]
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
    server = pod["containers"][0]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in server["volumeMounts"]
    assert {"name": "models", "emptyDir": {"sizeLimit": "2Gi"}} in pod["volumes"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpus_only_in_the_gpu_overlay(rendered, overlay):
    pod = _triton(rendered, overlay)["spec"]["template"]["spec"]
    server = pod["containers"][0]
    if overlay == "gpu":
        assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]
    else:
        assert "nvidia.com/gpu" not in rendered[overlay].text
        assert "nodeSelector" not in pod and "tolerations" not in pod


def test_overlays_differ_only_in_triton_placement_and_scale(rendered):
    def comparable(out):
        objects = {}
        for obj in out.objects:
            obj = yaml.safe_load(yaml.safe_dump(obj))
            if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "triton":
                pod = obj["spec"]["template"]["spec"]
                pod.pop("nodeSelector", None), pod.pop("tolerations", None)
                for c in pod_containers(obj):
                    for bound in c.get("resources", {}).values():
                        bound.pop("nvidia.com/gpu", None)
                    c["env"] = [e for e in c.get("env", []) if e["name"] != "TRITON_KIND"]
            if obj["kind"] == "HorizontalPodAutoscaler":
                obj["spec"].pop("maxReplicas")
            objects[(obj["kind"], obj["metadata"]["name"])] = obj
        return objects

    assert comparable(rendered["cpu"]) == comparable(rendered["gpu"])


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
        pod = workload["spec"]["template"]["spec"]
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
    assert refs >= 15
    for secret in (o for o in out.objects if o["kind"] == "Secret"):
        assert re.fullmatch(r"(postgres-credentials|minio-credentials|grafana-admin)-\w+",
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
        ("triton", "mlflow", 5000),
        ("prometheus", "triton", 8002),
        ("prometheus", "pushgateway", 9091),
        ("grafana", "prometheus", 9090),
    ]
    for source, target, port in flows:
        assert _allowed(policies, source, target, port), (source, target, port)
    # and nothing else between the platform's own pods, e.g.:
    assert not _allowed(policies, "triton", "postgres", 5432)
    assert not _allowed(policies, "grafana", "mlflow", 5000)
    # Pipeline runs (namespace kubeflow) reach MLflow and the Pushgateway.
    for target, port in (("mlflow", 5000), ("pushgateway", 9091)):
        policy = rendered[overlay].get("NetworkPolicy", target)
        assert any(
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}
            in rule["from"]
            and any(p["port"] == port for p in rule["ports"])
            for rule in policy["spec"]["ingress"]
        )
