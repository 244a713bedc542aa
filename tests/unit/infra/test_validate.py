"""Every rendered object validates against the schemas of a pinned Kubernetes release
(kubernetes-validate bundles them: no download), strictly (unknown fields are errors). The
InferenceService validates against KServe's own CRD schema (infra/k8s/schemas/, pinned by hash),
run by kubernetes-validate's validator beside the bundled Kubernetes definitions, and the
Deployment KServe makes from it against the Kubernetes schemas like every other workload."""

from __future__ import annotations

import copy
import gzip
import json
import subprocess

import pytest
import yaml

from tests.unit.infra.conftest import OVERLAYS, k8s_tool
from tests.unit.infra.kserve import (
    API_VERSION,
    CRD_FILE,
    KSERVE_VERSION,
    SCHEMA_NAME,
    crd_bytes,
    load_crd,
    strict_schema,
)

KUBERNETES_VERSION = "1.32.0"  # the oldest minor the platform supports (native sidecars: 1.29+)
# Runs inside .venv-k8s: {"objects": [...], "schemas": {file name: schema}} as JSON on stdin,
# one verdict per object on stdout. kubernetes-validate looks a kind's schema up by file name
# (`<kind>-<group>-<version>.json`) in its bundled directory; the extra schemas are served under
# their names from the same lookup, so they run through its validator and its registry of
# Kubernetes definitions (ObjectMeta and the rest).
VALIDATE = """
import json, sys
import kubernetes_validate.utils as kv
version, given = sys.argv[1], json.load(sys.stdin)
extra, bundled = given["schemas"], kv.schema_contents
def schema_contents(filename, desired_version):
    name = filename.rsplit("/", 1)[-1]
    return extra[name] if name in extra else bundled(filename, desired_version)
kv.schema_contents = schema_contents
out = []
for obj in given["objects"]:
    try:
        kv.validate(obj, version, strict=True)
        out.append(None)
    except Exception as exc:
        out.append(f"{type(exc).__name__}: {getattr(exc, 'message', exc)}")
print(json.dumps(out))
"""
BROKEN = [
    {  # a field Kubernetes does not have
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i:1", "gpus": 1}]},
            },
        },
    },
    {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"ports": [{"port": "eighty"}]},
    },  # fmt: skip
]


def validate(objects: list[dict], schemas: dict[str, dict] | None = None) -> list[str | None]:
    python = k8s_tool("python")
    done = subprocess.run(
        [str(python), "-c", VALIDATE, KUBERNETES_VERSION],
        input=json.dumps({"objects": objects, "schemas": schemas or {}}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _plain(objects: list[dict]) -> list[dict]:
    """Plain JSON types, as the API server sees them (YAML could carry dates and the like)."""
    return json.loads(json.dumps(yaml.safe_load(yaml.safe_dump(objects))))


@pytest.fixture(scope="module")
def isvc_schema() -> dict:
    return strict_schema(load_crd())


def _isvc(rendered) -> dict:
    return rendered["cpu"].get("InferenceService", "inference")


def _broken_isvcs(isvc: dict) -> dict[str, dict]:
    """InferenceServices the real API server (strict field validation) would refuse."""
    cases = {}
    unknown = copy.deepcopy(isvc)
    unknown["spec"]["predictor"]["containers"][0]["gpus"] = 1
    cases["unknown container field"] = unknown
    typo = copy.deepcopy(isvc)
    typo["spec"]["predictor"]["minReplica"] = 1
    cases["unknown predictor field"] = typo
    wrong_type = copy.deepcopy(isvc)
    wrong_type["spec"]["predictor"]["maxReplicas"] = "four"
    cases["maxReplicas is a string"] = wrong_type
    bad_enum = copy.deepcopy(isvc)
    bad_enum["spec"]["predictor"]["scaleMetric"] = "gpu"
    cases["scaleMetric not in the enum"] = bad_enum
    bad_meta = copy.deepcopy(isvc)
    bad_meta["metadata"]["labels"]["n"] = 1
    cases["label value not a string (ObjectMeta)"] = bad_meta
    no_predictor = copy.deepcopy(isvc)
    del no_predictor["spec"]["predictor"]
    cases["no predictor"] = no_predictor
    return cases


def test_every_rendered_object_validates_against_the_pinned_schemas(rendered, isvc_schema):
    objects = _plain(
        [obj for name in OVERLAYS for obj in rendered[name].objects + rendered[name].derived]
    )
    assert {o["kind"] for o in objects} >= {"InferenceService", "Deployment", "NetworkPolicy"}
    verdicts = validate(objects + BROKEN, {SCHEMA_NAME: isvc_schema})
    errors = [
        f"{obj['kind']}/{obj['metadata']['name']}: {verdict}"
        for obj, verdict in zip(objects, verdicts, strict=False)
        if verdict
    ]
    assert errors == []
    # The validator is live: the broken objects at the end are rejected.
    assert all(verdicts[len(objects) :]), verdicts[len(objects) :]


def test_the_inference_service_is_checked_against_kserves_crd(rendered, isvc_schema):
    """Without the CRD schema kubernetes-validate has none for the kind; with it, every broken
    variant of the real InferenceService is refused, naming the field."""
    isvc = _plain([_isvc(rendered)])[0]
    assert isvc["apiVersion"] == API_VERSION
    (missing,) = validate([isvc])
    assert missing and missing.startswith("SchemaNotFoundError"), missing
    cases = _broken_isvcs(isvc)
    verdicts = validate([isvc, *cases.values()], {SCHEMA_NAME: isvc_schema})
    assert verdicts[0] is None, verdicts[0]
    refused = dict(zip(cases, verdicts[1:], strict=True))
    assert all(refused.values()), {case: v for case, v in refused.items() if not v}
    assert "gpus" in refused["unknown container field"]
    assert "minReplica" in refused["unknown predictor field"]


def test_the_crd_schema_is_kserves_file_at_the_pinned_release(tmp_path):
    crd = load_crd()
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "inferenceservices.serving.kserve.io"
    (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
    assert version["name"] == "v1beta1" and version["served"]
    assert KSERVE_VERSION in CRD_FILE.name
    # Edited by hand (or replaced by another release without updating the pin): refused.
    edited = tmp_path / CRD_FILE.name
    edited.write_bytes(gzip.compress(crd_bytes().replace(b"minReplicas", b"minReplicaz")))
    with pytest.raises(ValueError, match="sha256"):
        crd_bytes(edited)


def test_strict_schema_keeps_the_crds_rules(isvc_schema):
    predictor = isvc_schema["properties"]["spec"]["properties"]["predictor"]
    assert isvc_schema["properties"]["spec"]["required"] == ["predictor"]
    assert predictor["additionalProperties"] is False
    container = predictor["properties"]["containers"]["items"]
    assert container["required"] == ["name"] and container["additionalProperties"] is False
    port = container["properties"]["ports"]["items"]["properties"]["containerPort"]
    assert port["type"] == "integer"
    # int-or-string (a probe's port by name or number), and free-form maps stay open
    probe_port = container["properties"]["readinessProbe"]["properties"]["httpGet"]["properties"]
    assert {"type": "string"} in probe_port["port"]["anyOf"]
    assert predictor["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    text = json.dumps(isvc_schema)
    assert "x-kubernetes" not in text and '"description"' not in text
