"""The cluster pipeline's validation step runs what the predictor runs: same image, same flags."""

from __future__ import annotations

import yaml

from pipelines.production_triton import (
    ENTRYPOINT,
    SERVER_FLAGS,
    TRITON_IMAGE,
    validate_in_production_triton,
)
from tests.unit.infra.conftest import K8S

# Flags the validation step sets differently on purpose: a fixed repository (no polling), no
# metrics endpoint, a short exit; the rest must be the predictor's, value for value.
STEP_ONLY = {"--model-control-mode", "--allow-metrics", "--exit-timeout-secs"}


def _predictor() -> dict:
    documents = yaml.safe_load_all((K8S / "base" / "inference.yaml").read_text())
    service = next(d for d in documents if d and d.get("kind") == "InferenceService")
    containers = service["spec"]["predictor"]["containers"]
    return next(c for c in containers if c["name"] == "kserve-container")


def test_the_step_runs_the_predictor_image_through_its_entrypoint():
    container = validate_in_production_triton.component_spec.implementation.container
    assert container.image == TRITON_IMAGE == _predictor()["image"]
    assert container.command[:3] == [ENTRYPOINT, "bash", "-c"]


def _flags(args) -> dict[str, str]:
    return dict((*arg.split("=", 1), "")[:2] for arg in args if arg.startswith("--"))


def test_the_step_serves_with_the_predictors_flags():
    predictor, step = _flags(_predictor()["args"]), _flags(SERVER_FLAGS)
    for name, value in step.items():
        if name not in STEP_ONLY:
            assert predictor.get(name) == value, f"{name}: step {value!r}, predictor {predictor}"
    shared = {"--strict-readiness", "--disable-auto-complete-config", "--allow-grpc",
              "--http-address"}  # fmt: skip
    assert shared <= set(step)
