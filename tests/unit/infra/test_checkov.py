"""Security policies (checkov, framework kubernetes and dockerfile) on what the cluster runs:
both rendered overlays and the Dockerfile, in one checkov run per test session. No check may
fail; a check is skipped only through an annotation on the object (checkov.io/skipN) or a
comment in the Dockerfile (checkov:skip=ID:reason), each with its reason.

checkov has no policies for a custom resource: the InferenceService's pod is checked as the
Deployment KServe makes of it (`Rendered.derived`), which carries the InferenceService's
annotations, its skips among them, as the controller copies them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.unit.infra.conftest import OVERLAYS, REPO, k8s_tool

SKIP_ANNOTATION = re.compile(r"checkov\.io/skip\d+")
SKIP_VALUE = re.compile(r"(CKV2?_[A-Z0-9]+_\d+)=(.+)")
DOCKER_SKIP = re.compile(r"#\s*checkov:skip=(CKV2?_DOCKER_\d+):(.*)")
MIN_REASON = 40  # characters: a reason, not a shrug
# A pod that breaks the rules the platform keeps: it must fail them, or checkov checks nothing.
CANARY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: canary
  namespace: mlops
spec:
  selector:
    matchLabels: {app: canary}
  template:
    metadata:
      labels: {app: canary}
    spec:
      containers:
        - name: canary
          image: busybox:latest
          securityContext:
            privileged: true
"""
CANARY_MUST_FAIL = {"CKV_K8S_10", "CKV_K8S_13", "CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_22",
                    "CKV_K8S_28", "CKV_K8S_37", "CKV_K8S_8", "CKV_K8S_9"}  # fmt: skip


@pytest.fixture(scope="session")
def checkov_report(rendered, tmp_path_factory) -> dict[str, list[dict]]:
    """checkov's results (passed, failed, skipped), keyed by the scanned file's name."""
    checkov = k8s_tool("checkov")
    root = tmp_path_factory.mktemp("checkov")
    for overlay in OVERLAYS:
        (root / f"{overlay}.yaml").write_text(rendered[overlay].checked_text())
    (root / "canary.yaml").write_text(CANARY)
    shutil.copy(REPO / "Dockerfile", root / "Dockerfile")
    done = subprocess.run(
        [str(checkov), "--directory", str(root), "--framework", "kubernetes", "dockerfile",
         "--output", "json", "--compact", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    by_file: dict[str, dict[str, list[dict]]] = {}
    for report in reports:
        for outcome, checks in report["results"].items():
            if outcome == "parsing_errors":
                assert checks == [], checks
                continue
            for check in checks:
                name = check["file_path"].rsplit("/", 1)[-1]
                by_file.setdefault(name, {}).setdefault(outcome, []).append(check)
    return by_file


def _ids(report, outcome) -> set[str]:
    return {c["check_id"] for c in report.get(outcome, [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_security_check_fails_on_the_rendered_overlay(checkov_report, overlay):
    report = checkov_report[f"{overlay}.yaml"]
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']}"
        for c in report.get("failed_checks", [])
    ]
    assert failed == []
    assert len(report["passed_checks"]) > 500  # the workloads were really scanned


def test_no_security_check_fails_on_the_dockerfile(checkov_report):
    report = checkov_report["Dockerfile"]
    assert [c["check_id"] for c in report.get("failed_checks", [])] == []
    assert {"CKV_DOCKER_3", "CKV_DOCKER_8", "CKV_DOCKER_7"} <= _ids(report, "passed_checks")


def test_the_canary_fails_the_checks_the_platform_passes(checkov_report):
    assert _ids(checkov_report["canary.yaml"], "failed_checks") >= CANARY_MUST_FAIL
    for overlay in OVERLAYS:
        assert _ids(checkov_report[f"{overlay}.yaml"], "passed_checks") >= CANARY_MUST_FAIL


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_skip_is_annotated_on_its_object_with_a_reason(rendered, checkov_report, overlay):
    annotated = set()
    for obj in rendered[overlay].objects + rendered[overlay].derived:
        if obj["kind"] == "InferenceService":
            continue  # not scanned: its skips apply to the derived Deployment
        for key, value in (obj["metadata"].get("annotations") or {}).items():
            if not SKIP_ANNOTATION.fullmatch(key):
                continue
            match = SKIP_VALUE.fullmatch(value)
            assert match, f"{obj['metadata']['name']}: {key}: {value!r} is not ID=reason"
            assert len(match.group(2).strip()) >= MIN_REASON, f"{obj['metadata']['name']}: {value}"
            annotated.add((match.group(1), f"{obj['kind']}.mlops.{obj['metadata']['name']}"))
    skipped = {
        (c["check_id"], c["resource"]) for c in checkov_report[f"{overlay}.yaml"]["skipped_checks"]
    }
    assert skipped == annotated


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_serving_pod_is_scanned_as_the_deployment_kserve_makes(checkov_report, overlay):
    report = checkov_report[f"{overlay}.yaml"]
    scanned = {c["resource"] for c in report["passed_checks"]}
    assert "Deployment.mlops.inference-predictor" in scanned
    passed = {c["check_id"] for c in report["passed_checks"]
              if c["resource"] == "Deployment.mlops.inference-predictor"}  # fmt: skip
    assert passed >= CANARY_MUST_FAIL


def test_every_dockerfile_skip_has_a_reason(checkov_report):
    skips = DOCKER_SKIP.findall((REPO / "Dockerfile").read_text())
    assert skips, "expected the documented HEALTHCHECK skip"
    for check_id, reason in skips:
        assert len(reason.strip()) >= MIN_REASON, (check_id, reason)
    assert {i for i, _ in skips} == _ids(checkov_report["Dockerfile"], "skipped_checks")
