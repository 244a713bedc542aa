"""KServe's InferenceService for the offline checks: its CRD schema, made strict, and the
Deployment the KServe controller makes from an InferenceService's predictor.

The CRD is KServe's own file, shipped byte for byte (gzipped) in infra/k8s/schemas/ and pinned
by its SHA-256 here: kubernetes-validate bundles only Kubernetes' schemas, and these checks run
offline. `strict_schema` turns the CRD's structural OpenAPI schema into the JSON Schema that
kubernetes-validate's validator runs, strict the way `kubectl apply` (field validation Strict)
is: an unknown field is an error.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path
from typing import Any

import yaml

K8S = Path(__file__).resolve().parents[3] / "infra" / "k8s"
KSERVE_VERSION = "v0.20.0"
CRD_FILE = K8S / "schemas" / f"serving.kserve.io_inferenceservices-{KSERVE_VERSION}.yaml.gz"
# sha256 of config/crd/full/serving.kserve.io_inferenceservices.yaml at kserve/kserve v0.20.0
# (commit 1fb781055dd1567164358233e1125142ca6ef1fe, blob 1e37d05b7a741eb40b9eb01c378dc9dc80eab3d9).
CRD_SHA256 = "57c3bf13f77de94678bf2ae3748056ec071ad2b9e88d6a28f44fb4710758fcff"
API_VERSION = "serving.kserve.io/v1beta1"
# The file name kubernetes-validate looks up for this kind and apiVersion (its own convention).
SCHEMA_NAME = "inferenceservice-serving-v1beta1.json"
OBJECT_META = "/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# PredictorSpec fields that are KServe's, not the PodSpec's (ComponentExtensionSpec and the
# model-framework shortcuts): the controller reads them; they never reach the pod.
PREDICTOR_ONLY = frozenset({
    "annotations", "autoScaling", "batcher", "canaryTrafficPercent", "containerConcurrency",
    "deploymentStrategy", "huggingface", "labels", "lightgbm", "logger", "maxReplicas",
    "minReplicas", "model", "onnx", "paddle", "pmml", "pytorch", "scaleMetric",
    "scaleMetricType", "scaleTarget", "sklearn", "storageContainerName", "storageUris",
    "tensorflow", "timeout", "triton", "workerSpec", "xgboost",
})  # fmt: skip
# Schema keywords that mean the same in a CRD's OpenAPI v3 subset and in JSON Schema 2020-12.
_KEYWORDS = frozenset({
    "type", "required", "enum", "format", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems",
    "multipleOf", "minProperties", "maxProperties",
})  # fmt: skip


def crd_bytes(path: Path = CRD_FILE) -> bytes:
    """The shipped CRD, decompressed; ValueError unless it is byte for byte KServe's file."""
    data = gzip.decompress(Path(path).read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if digest != CRD_SHA256:
        raise ValueError(
            f"{path}: sha256 {digest}, expected KServe {KSERVE_VERSION}'s {CRD_SHA256}"
        )
    return data


def load_crd(path: Path = CRD_FILE) -> dict:
    """The CRD parsed (2 MB of YAML: libyaml's safe loader where PyYAML has it, ~5x faster)."""
    return yaml.load(crd_bytes(path), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _convert(node: dict) -> dict:
    """One OpenAPI schema node as strict JSON Schema (descriptions and x-kubernetes-* dropped)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [_convert(sub) for sub in value]
        elif key == "not":
            out[key] = _convert(value)
        elif key == "additionalProperties":
            out[key] = _convert(value) if isinstance(value, dict) else value
        elif key in _KEYWORDS:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    # The API server prunes (kubectl's strict field validation: rejects) any field a structural
    # schema does not declare, unless the node preserves unknown fields.
    if (
        out.get("type") == "object"
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def strict_schema(crd: dict, version: str = "v1beta1") -> dict:
    """The JSON Schema (draft 2020-12) of one served version of the CRD, for kubernetes-validate:
    `metadata` refers to Kubernetes' own ObjectMeta in kubernetes-validate's definitions (the
    API server checks it, not the CRD), apiVersion and kind are fixed."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    schema = _convert(entry["schema"]["openAPIV3Schema"])
    schema["properties"].update(
        apiVersion={"type": "string", "enum": [f"{group}/{version}"]},
        kind={"type": "string", "enum": [kind]},
        metadata={"$ref": OBJECT_META},
    )
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://kubernetes.io/api/{kind.lower()}/{group}/{version}",
        **schema,
    }


def predictor_deployment(isvc: dict) -> dict:
    """The Deployment KServe v0.20 makes from `isvc`'s predictor in the Standard (raw) mode.

    Mirrors the controller (pkg/controller/v1beta1/inferenceservice: components/predictor.go,
    reconcilers/deployment): name `<isvc>-predictor`; labels of the InferenceService and the
    predictor plus KServe's own; the InferenceService's annotations (checkov's skips among
    them); the predictor's PodSpec fields as they are, containers in their order
    (kserve-container first, then transformer-container). So checkov and the Kubernetes
    schemas check the pod that will really run.
    """
    meta, predictor = isvc["metadata"], isvc["spec"]["predictor"]
    name = f"{meta['name']}-predictor"
    app = f"isvc.{name}"
    labels = {
        **meta.get("labels", {}),
        **predictor.get("labels", {}),
        "serving.kserve.io/inferenceservice": meta["name"],
        "component": "predictor",
        "app": app,
    }
    annotations = {**meta.get("annotations", {}), **predictor.get("annotations", {})}
    pod = {key: value for key, value in predictor.items() if key not in PREDICTOR_ONLY}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": app}},
        "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod},
    }
    if "deploymentStrategy" in predictor:
        spec["strategy"] = predictor["deploymentStrategy"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }
