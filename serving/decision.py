"""Where a served version's decision threshold lives: one parameter per version in Triton's
model config, written by whoever writes the repository, read by the gateway.

A model's `config.pbtxt` is shared by all its versions, so a single `threshold` would be wrong
for one of them during a swap. Each version `v` present in the repository gets its own
parameter `threshold.v<v>`; the gateway decides with the threshold of the version that
answered, and refuses to decide (503) for a version without one.

The output and missing-value names every served graph shares live here too, so that the
gateway reads them without importing the exporter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

THRESHOLD_PREFIX = "threshold.v"
PROBABILITIES_OUTPUT = "probabilities"  # [n, 2]; column 1 is the positive class
MISSING_CATEGORY = ""  # what a client sends for a missing categorical value


def threshold_parameters(thresholds: Mapping[int, float]) -> dict[str, str]:
    """Config parameters for `{version: threshold}` (thresholds are probabilities in [0, 1])."""
    parameters = {}
    for version, threshold in sorted(thresholds.items()):
        value = float(threshold)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"threshold of version {version} must be in [0, 1], got {threshold}")
        parameters[f"{THRESHOLD_PREFIX}{int(version)}"] = repr(value)
    return parameters


def thresholds_from_parameters(parameters: Mapping[str, Any]) -> dict[int, float]:
    """`{version: threshold}` from config parameters, as `threshold_parameters` writes them or
    as Triton's config endpoint returns them (`{"threshold.v3": {"string_value": "0.41"}}`).
    Parameters of other names are ignored; a malformed threshold parameter is an error."""
    thresholds = {}
    for key, raw in parameters.items():
        if not key.startswith(THRESHOLD_PREFIX):
            continue
        text = str(raw.get("string_value") if isinstance(raw, Mapping) else raw)
        try:
            version, value = int(key.removeprefix(THRESHOLD_PREFIX)), float(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"config parameter {key!r}={text!r} is not a version threshold"
            ) from exc
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"config parameter {key!r}={text!r} is not in [0, 1]")
        thresholds[version] = value
    return thresholds
