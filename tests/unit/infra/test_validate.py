"""Every rendered object validates against the schemas of a pinned Kubernetes release
(kubernetes-validate bundles them: no download), strictly (unknown fields are errors)."""

from __future__ import annotations

import json
import subprocess

import yaml

from tests.unit.infra.conftest import OVERLAYS, k8s_tool

KUBERNETES_VERSION = "1.32.0"  # the oldest minor the platform supports (native sidecars: 1.29+)
# Runs inside .venv-k8s: the objects as JSON on stdin, one verdict per object on stdout.
VALIDATE = """
import json, sys
import kubernetes_validate.utils as kv
version, objects = sys.argv[1], json.load(sys.stdin)
out = []
for obj in objects:
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


def validate(objects: list[dict]) -> list[str | None]:
    python = k8s_tool("python")
    done = subprocess.run(
        [str(python), "-c", VALIDATE, KUBERNETES_VERSION],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_rendered_object_validates_against_the_pinned_kubernetes_schemas(rendered):
    objects = [obj for overlay in OVERLAYS for obj in rendered[overlay].objects]
    # Plain JSON types, as the API server sees them (YAML could carry dates and the like).
    objects = json.loads(json.dumps(yaml.safe_load(yaml.safe_dump(objects))))
    verdicts = validate(objects + BROKEN)
    errors = [
        f"{obj['kind']}/{obj['metadata']['name']}: {verdict}"
        for obj, verdict in zip(objects, verdicts, strict=False)
        if verdict
    ]
    assert errors == []
    # The validator is live: the broken objects at the end are rejected.
    assert all(verdicts[len(objects) :]), verdicts[len(objects) :]
