"""Prometheus and Grafana in the cluster read the local stack's own files: the generated
ConfigMaps equal monitoring/ byte for byte, and the one cluster-specific step, the scrape
targets (the Pushgateway, and Triton and the gateway in every serving pod), is rendered by a
script these tests run on the real file."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.infra.conftest import OVERLAYS, REPO, pod_spec

MONITORING = REPO / "monitoring"
# ConfigMap (name before kustomize's hash) -> key -> the repository file it must equal.
SOURCES = {
    "prometheus-config": {
        "prometheus.yml": MONITORING / "prometheus" / "prometheus.yml",
        "alerts.yml": MONITORING / "prometheus" / "alerts.yml",
    },
    "grafana-datasources": {
        "prometheus.yml": MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    },
    "grafana-dashboard-providers": {
        "dashboards.yml": MONITORING / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
    },
    "grafana-dashboards": {
        p.name: p for p in sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
    },
    "prometheus-render": {
        "render-prometheus-config.awk": REPO
        / "infra/k8s/base/monitoring/render-prometheus-config.awk"
    },
}
AWKS = [a for a in ("awk", "busybox") if shutil.which(a)]  # busybox: the Prometheus image's


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmaps_equal_the_repository_files_byte_for_byte(rendered, overlay):
    for name, files in SOURCES.items():
        configmap = rendered[overlay].get("ConfigMap", name)
        assert "binaryData" not in configmap
        assert sorted(configmap["data"]) == sorted(files), name
        for key, path in files.items():
            assert configmap["data"][key].encode() == path.read_bytes(), f"{name}/{key} != {path}"


def _init_env(rendered, overlay) -> dict[str, str]:
    prometheus = rendered[overlay].get("Deployment", "prometheus")["spec"]["template"]["spec"]
    (init,) = prometheus["initContainers"]
    return {e["name"]: e["value"] for e in init["env"]}


def _render(awk: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    script = SOURCES["prometheus-render"]["render-prometheus-config.awk"]
    command = ["busybox", "awk"] if awk == "busybox" else [awk]
    return subprocess.run(
        [*command, "-f", str(script), str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": os.environ["PATH"], **env},
    )


@pytest.mark.parametrize("awk", AWKS)
def test_render_changes_only_the_pushgateway_triton_and_gateway_targets(rendered, awk):
    """The rendered config is the repo's with three jobs re-aimed: the Pushgateway service, and
    Triton and the gateway in every serving pod (ready or not) through the headless service's
    DNS records, each on its metrics port."""
    assert "awk" in AWKS
    out = rendered["gpu"]
    env = _init_env(rendered, "gpu")
    source = SOURCES["prometheus-config"]["prometheus.yml"]
    done = _render(awk, source, env)
    assert done.returncode == 0, done.stderr
    cluster, local = yaml.safe_load(done.stdout), yaml.safe_load(source.read_text())

    pushgateway = out.get("Service", "pushgateway")["spec"]["ports"][0]["port"]
    assert env["PUSHGATEWAY_TARGET"] == f"pushgateway.mlops.svc.cluster.local:{pushgateway}"
    metrics = out.get("Service", "inference-metrics")
    dns = f"{metrics['metadata']['name']}.mlops.svc.cluster.local"
    assert metrics["spec"]["clusterIP"] == "None" and metrics["spec"]["publishNotReadyAddresses"]
    assert env["TRITON_METRICS_DNS"] == env["GATEWAY_METRICS_DNS"] == dns
    containers = pod_spec(out.get("InferenceService", "inference"))["containers"]
    ports = {p["name"]: p["containerPort"] for c in containers for p in c.get("ports", [])}
    service_ports = {p["name"]: p["port"] for p in metrics["spec"]["ports"]}
    expected = yaml.safe_load(source.read_text())
    jobs = {job["job_name"]: job for job in expected["scrape_configs"]}
    jobs["pushgateway"]["static_configs"] = [{"targets": [env["PUSHGATEWAY_TARGET"]]}]
    for job, port in (("triton", "triton-metrics"), ("gateway", "gateway-metrics")):
        assert service_ports[port] == ports[port]
        del jobs[job]["static_configs"]
        jobs[job]["dns_sd_configs"] = [{"names": [dns], "type": "A", "port": ports[port]}]
    assert cluster == expected
    assert cluster["global"] == local["global"] and cluster["rule_files"] == local["rule_files"]
    changed = [
        line for line in done.stdout.splitlines() if line not in source.read_text().splitlines()
    ]
    assert len(changed) == 9, changed  # 1 pushgateway line, 4 triton, 4 gateway; rest verbatim


@pytest.mark.parametrize("awk", AWKS)
def test_render_fails_loudly_when_the_config_changes_shape(rendered, awk, tmp_path):
    source = SOURCES["prometheus-config"]["prometheus.yml"].read_text()
    env = _init_env(rendered, "cpu")
    for broken, message in (
        (source.replace('"127.0.0.1:8002"', '"triton:8002"'), "job triton"),
        (source.replace('"127.0.0.1:8003"', '"gateway:8003"'), "job gateway"),
        (source.replace("job_name: gateway", "job_name: edge"), "job gateway"),
        (source.replace("job_name: pushgateway", "job_name: push"), "job pushgateway"),
    ):
        assert broken != source
        path = tmp_path / "prometheus.yml"
        path.write_text(broken)
        done = _render(awk, path, env)
        assert done.returncode != 0 and message in done.stderr, done.stderr
    done = _render(awk, SOURCES["prometheus-config"]["prometheus.yml"], {})
    assert done.returncode != 0 and "PUSHGATEWAY_TARGET" in done.stderr
    without_gateway = {k: v for k, v in env.items() if k != "GATEWAY_METRICS_DNS"}
    done = _render(awk, SOURCES["prometheus-config"]["prometheus.yml"], without_gateway)
    assert done.returncode != 0 and "GATEWAY_METRICS_DNS" in done.stderr


def test_rendered_cluster_config_passes_promtool(rendered, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: sudo apt-get install -y prometheus")
    done = _render(
        "awk", SOURCES["prometheus-config"]["prometheus.yml"], _init_env(rendered, "cpu")
    )
    (tmp_path / "prometheus.yml").write_text(done.stdout)
    shutil.copy(SOURCES["prometheus-config"]["alerts.yml"], tmp_path / "alerts.yml")
    check = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout + check.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_runs_the_render_and_reads_its_output(rendered, overlay):
    pod = rendered[overlay].get("Deployment", "prometheus")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    (server,) = pod["containers"]
    script = init["args"][0]
    assert "awk -f /etc/prometheus-render/render-prometheus-config.awk" in script
    assert "/etc/prometheus-source/prometheus.yml > /etc/prometheus/prometheus.yml" in script
    assert "promtool check config /etc/prometheus/prometheus.yml" in script
    assert init["image"] == server["image"]  # busybox awk and promtool ship in that image
    assert "--config.file=/etc/prometheus/prometheus.yml" in server["args"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["source"]["configMap"]["name"].startswith("prometheus-config-")
    assert volumes["render"]["configMap"]["name"].startswith("prometheus-render-")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grafana_mounts_the_provisioning_where_the_repository_files_point(rendered, overlay):
    pod = rendered[overlay].get("Deployment", "grafana")["spec"]["template"]["spec"]
    (grafana,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in grafana["volumeMounts"]}
    providers = yaml.safe_load(SOURCES["grafana-dashboard-providers"]["dashboards.yml"].read_text())
    assert mounts["dashboards"] == providers["providers"][0]["options"]["path"]
    assert mounts["datasources"] == "/etc/grafana/provisioning/datasources"
    assert mounts["dashboard-providers"] == "/etc/grafana/provisioning/dashboards"
    env = {e["name"]: e.get("value") for e in grafana["env"]}
    prometheus = rendered[overlay].get("Service", "prometheus")["spec"]["ports"][0]["port"]
    assert env["PROMETHEUS_URL"] == f"http://prometheus.mlops.svc.cluster.local:{prometheus}"
    datasource = SOURCES["grafana-datasources"]["prometheus.yml"].read_text()
    assert "url: ${PROMETHEUS_URL}" in datasource
