"""Shared fixtures for the static checks of the cluster layer (infra/k8s, Dockerfile).

Every overlay is rendered once per session, offline, the way the Makefile and docs/deploy.md
do it (infra/k8s/kustomize.sh), from a copy of infra/k8s and monitoring/ whose secrets were
written by infra/k8s/make_secrets.sh from the committed examples: a fresh clone has no
credentials, and the tests never write any into the working tree. Each InferenceService also
yields the Deployment KServe will make from it (`Rendered.derived`), so the pod that really runs
is checked like every other workload.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.unit.infra.kserve import predictor_deployment

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "infra" / "k8s"
OVERLAYS = ("cpu", "gpu")
KUSTOMIZE = K8S / "kustomize.sh"
MAKE_SECRETS = K8S / "make_secrets.sh"
K8S_VENV = Path(os.environ.get("K8S_VENV", REPO / ".venv-k8s"))
SETUP_TOOLS = "infra/k8s/setup_tools.sh (make k8s-tools)"
KUBECTL_HINT = (
    "kubectl not found on PATH: the infra tests build the kustomize overlays with it. Install "
    "kubectl >= 1.27 (kustomize is built in): Debian/Ubuntu from the Kubernetes apt repository "
    "(https://kubernetes.io/docs/tasks/tools/install-kubectl-linux/), or the `kubectl` package "
    "of the Google Cloud SDK apt repository"
)
# Any remote fetch (a git clone of a remote base) fails at once instead of reaching out.
OFFLINE_ENV = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "GIT_TERMINAL_PROMPT": "0",
}


@dataclass(frozen=True)
class Rendered:
    """One overlay built by kustomize: the YAML text and its objects."""

    overlay: str
    text: str
    objects: list[dict]
    derived: list[dict]  # the Deployment KServe makes of each InferenceService

    def get(self, kind: str, name_prefix: str) -> dict:
        """The one object of `kind` whose name is `name_prefix` (plus kustomize's hash)."""
        name = re.compile(re.escape(name_prefix) + r"(-[a-z0-9]{10})?")
        found = [
            o for o in self.objects if o["kind"] == kind and name.fullmatch(o["metadata"]["name"])
        ]
        assert len(found) == 1, f"{self.overlay}: {len(found)} {kind} named {name_prefix}*"
        return found[0]

    def workloads(self) -> list[dict]:
        """Deployments, StatefulSets, CronJobs and InferenceServices: every object that defines
        a pod."""
        return [o for o in self.objects if o["kind"] in WORKLOAD_KINDS]

    def checked_text(self) -> str:
        """The rendered YAML plus the derived Deployments, as checkov scans them."""
        return self.text + "".join("---\n" + yaml.safe_dump(obj) for obj in self.derived)


WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "CronJob", "InferenceService"})


def pod_spec(workload: dict) -> dict:
    """A workload's pod spec: a Deployment's or StatefulSet's template, a CronJob's job
    template's, or the predictor of an InferenceService (KServe inlines a PodSpec there)."""
    if workload["kind"] == "InferenceService":
        return workload["spec"]["predictor"]
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def pod_containers(workload: dict) -> list[dict]:
    """Init containers (sidecars included) and containers of a workload's pod."""
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def copy_tree(dest: Path) -> Path:
    """infra/k8s and monitoring/{prometheus,grafana} under `dest`, same layout, no credentials."""
    ignore = shutil.ignore_patterns("*.env", "*.key", "gateway-keys.json", "__pycache__")
    shutil.copytree(K8S, dest / "infra" / "k8s", ignore=ignore)
    for part in ("prometheus", "grafana"):
        shutil.copytree(REPO / "monitoring" / part, dest / "monitoring" / part, ignore=ignore)
    return dest / "infra" / "k8s"


def kustomize(kubectl: str, directory: Path) -> subprocess.CompletedProcess:
    """infra/k8s/kustomize.sh on `directory`, with the network closed."""
    assert kubectl
    return subprocess.run(
        ["bash", str(KUSTOMIZE), str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **OFFLINE_ENV},
    )


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(KUBECTL_HINT)
    return found


@pytest.fixture(scope="session")
def k8s_copy(tmp_path_factory) -> Path:
    """A copy of infra/k8s (with monitoring/ beside it) holding generated credentials."""
    root = copy_tree(tmp_path_factory.mktemp("k8s"))
    done = subprocess.run(
        ["bash", str(MAKE_SECRETS), str(root / "base" / "secrets")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="session")
def rendered(kubectl, k8s_copy) -> dict[str, Rendered]:
    """Every overlay, built once per session."""
    out = {}
    for overlay in OVERLAYS:
        done = kustomize(kubectl, k8s_copy / "overlays" / overlay)
        assert done.returncode == 0, f"overlay {overlay} does not build:\n{done.stderr}"
        objects = [o for o in yaml.safe_load_all(done.stdout) if o]
        derived = [predictor_deployment(o) for o in objects if o["kind"] == "InferenceService"]
        out[overlay] = Rendered(overlay, done.stdout, objects, derived)
    return out


def k8s_tool(name: str) -> Path:
    """A CLI of .venv-k8s; the test fails, naming the setup script, when it is missing."""
    path = K8S_VENV / "bin" / name
    if not path.exists():
        pytest.fail(f"{path} not found: create the checkers' environment with {SETUP_TOOLS}")
    return path
