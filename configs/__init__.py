"""Project configs: one YAML per project, validated once into a frozen `ProjectConfig`.

The package also holds `configs.cli`, how every command parses, logs and fails: the lowest
floor, because every other one prints and fails through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from configs.cli import UserError
from configs.schema import ProjectConfig

CONFIG_DIR = Path(__file__).resolve().parent

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "ProjectConfig",
    "load_config",
    "override",
    "parse_config",
    "resolve_config_path",
    "run_parameters",
    "with_run_parameters",
    "RUN_PARAMETERS",
]

# The settings runs are compared by, as pipeline parameters beside the config (the Kubeflow UI
# lists them per run): parameter name -> the config key it sets. A run's values win.
RUN_PARAMETERS = {
    "n_trials": "tuning.n_trials",
    "primary_metric": "evaluation.primary_metric",
    "min_gain_over_baseline": "gate.min_gain_over_baseline",
    "noninferiority_margin": "gate.noninferiority_margin",
    "min_gain_over_champion": "gate.min_gain_over_champion",
}


class ConfigError(UserError, ValueError):
    """A config that cannot be used; the message names the key and what is allowed."""


def resolve_config_path(project: str | Path) -> Path:
    """Return the YAML path for a project name (`fraud`) or a path to a YAML file."""
    path = Path(project)
    if path.suffix in {".yaml", ".yml"}:
        return path
    return CONFIG_DIR / f"{project}.yaml"


def load_config(project: str | Path) -> ProjectConfig:
    """Load and validate a project config.

    Args:
        project: A project name under `configs/` or a path to a YAML file.

    Raises:
        ConfigError: The file is missing or unreadable, or a key or value is invalid.
    """
    path = resolve_config_path(project)
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(
            f"config not found: {path} (known projects: {', '.join(known)})",
            hint=f"PROJECT={' or PROJECT='.join(known)}, or a path: PROJECT=path/to/my.yaml "
            "(README: Adding a dataset)",
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", hint="fix the YAML syntax") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level", hint="start from configs/churn.yaml"
        )
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "<config>") -> ProjectConfig:
    """Validate a config mapping, turning pydantic errors into one readable `ConfigError`."""
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(err) for err in exc.errors()]
        raise ConfigError(
            f"{source}: invalid config\n  " + "\n  ".join(lines),
            hint="every key and what it allows: docs/configuration.md",
        ) from None


def override(
    config: ProjectConfig, overrides: Mapping[str, Any], source: str = "overrides"
) -> ProjectConfig:
    """`config` with `overrides` applied, validated like a loaded one.

    Keys are dotted paths (`{"tuning.n_trials": 3}`); a mapping value replaces the whole key.

    Raises:
        ConfigError: A key or value is invalid (the message names it).
    """
    raw = config.model_dump(mode="json")
    for key, value in overrides.items():
        *sections, name = key.split(".")
        node = raw
        for section in sections:
            if not isinstance(node.get(section), dict):
                node[section] = {}
            node = node[section]
        node[name] = value
    return parse_config(raw, source=f"{config.name} with {source}")


def run_parameters(config: ProjectConfig) -> dict[str, Any]:
    """The config's values of the `RUN_PARAMETERS`, by parameter name."""
    values = config.model_dump(mode="json")
    found = {}
    for name, key in RUN_PARAMETERS.items():
        node = values
        for part in key.split("."):
            node = node[part]
        found[name] = node
    return found


def with_run_parameters(config: ProjectConfig, values: Mapping[str, Any]) -> ProjectConfig:
    """`config` with a run's `RUN_PARAMETERS` values applied, validated like the config.

    Raises:
        ConfigError: A value is invalid (the message names its config key).
    """
    unknown = sorted(set(values) - set(RUN_PARAMETERS))
    if unknown:
        raise ConfigError(f"not run parameters: {unknown}; known: {sorted(RUN_PARAMETERS)}")
    changes = {RUN_PARAMETERS[name]: value for name, value in values.items()}
    return override(config, changes, source="the run's parameters")


def _describe(err: ErrorDetails) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "<top level>"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1])
        return f"{key}: unknown key; allowed keys: {', '.join(allowed)}"
    return f"{key}: {err['msg']}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that owns `loc` (walks nested models, skips dict keys)."""
    model: type[BaseModel] = ProjectConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            continue
        nested = _model_in(field.annotation)
        if nested is not None:
            model = nested
    return sorted(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
