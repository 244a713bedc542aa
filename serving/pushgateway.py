"""Publish gauges to a Prometheus Pushgateway (batch jobs: the deploy sidecar's artifact check,
the monitor and the KPI report).

Only names and labels of the caller's metric contract are accepted (`monitoring.contract`,
`serving.deploy.DEPLOY_METRICS`), so what is pushed is what the alert rules and dashboards
query. It lives on the serving floor because the serving pod's model sync pushes too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import requests

from configs.cli import UserError


class PushError(UserError, RuntimeError):
    """The Pushgateway refused or could not be reached; the message names the URL."""


@dataclass(frozen=True)
class Sample:
    """One gauge value."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


def exposition(samples: Iterable[Sample], contract: Mapping[str, tuple[str, ...]]) -> str:
    """Prometheus text format for `samples`; NaN values are left out (no data, not zero)."""
    lines, typed = [], set()
    for sample in samples:
        allowed = contract.get(sample.name)
        if allowed is None:
            raise ValueError(f"metric '{sample.name}' is not in the contract {sorted(contract)}")
        extra = sorted(set(sample.labels) - set(allowed))
        if extra:
            raise ValueError(f"metric '{sample.name}': label(s) {extra} not in {allowed}")
        if math.isnan(sample.value):
            continue
        if sample.name not in typed:
            lines.append(f"# TYPE {sample.name} gauge")
            typed.add(sample.name)
        labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(sample.labels.items()))
        lines.append(f"{sample.name}{{{labels}}} {sample.value!r}")
    return "\n".join(lines) + "\n"


def push(
    url: str,
    job: str,
    samples: Iterable[Sample],
    grouping: Mapping[str, str],
    contract: Mapping[str, tuple[str, ...]],
) -> None:
    """Replace the metrics of (`job`, `grouping`) on the Pushgateway at `url`; every sample
    must be in `contract` (metric name -> its labels)."""
    body = exposition(samples, contract)
    path = "".join(f"/{quote(k, safe='')}/{quote(v, safe='')}" for k, v in grouping.items())
    target = f"{url.rstrip('/')}/metrics/job/{job}{path}"
    try:
        response = requests.put(target, data=body.encode(), timeout=10)
    except requests.RequestException as exc:
        raise PushError(
            f"cannot reach the Pushgateway at {target}: {exc}",
            hint="make monitor-up (then make monitor-status)",
        ) from exc
    if response.status_code >= 400:
        raise PushError(f"Pushgateway {target} answered {response.status_code}: {response.text}")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
