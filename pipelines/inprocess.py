"""The training pipeline run in one Python process, without kfp's runners.

For debugging (breakpoints work), for tests that need coverage of the steps, and as the
plain-script baseline that `make bench-pipeline` compares `kfp.local` against. Nothing here
repeats the graph: `plan` reads the tasks, their wiring and their conditions from the pipeline
spec `pipelines/training.py` compiles to, orders them by their dependencies (ties in the order
of `pipelines.stages.STAGES`), and `run_steps` calls each component's own Python function with
local files for artifacts.
"""

from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.stages import STAGES

PIPELINE_RUN = "in-process"


@dataclass
class FileArtifact:
    """A local stand-in for a kfp artifact: a path plus metadata."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Output:
    """An output of an earlier call: its task and key."""

    task: str
    key: str


@dataclass(frozen=True)
class Call:
    """One component call: its function in `pipelines.components`, and where each input comes
    from (a value, or an `Output` of an earlier call)."""

    task: str
    function: str
    parameters: dict[str, Any]
    artifacts: dict[str, Output]
    outputs: tuple[str, ...]

    @property
    def stage(self) -> str:
        """The stage the call runs (`load_data` runs "load"; `STAGES` names the stages)."""
        return self.function.split("_")[0]


def pipeline_spec() -> dict[str, Any]:
    """The training pipeline's spec, as kfp compiles it (`PipelineSpec` as a dict)."""
    from google.protobuf import json_format

    from pipelines.training import training_pipeline

    spec = training_pipeline.pipeline_spec
    return json_format.MessageToDict(spec)


def plan(parameters: dict[str, Any], spec: dict[str, Any] | None = None) -> list[Call]:
    """The calls a run with these pipeline parameters makes, in order (skipped branches left out).

    Raises:
        ValueError: A parameter is unknown or missing, or the run needs a kfp loop.
    """
    spec = spec or pipeline_spec()
    root = spec["root"]
    definitions = root["inputDefinitions"]["parameters"]
    unknown = set(parameters) - set(definitions)
    if unknown:
        raise ValueError(f"not parameters of the pipeline: {sorted(unknown)}")
    values = {}
    for name, definition in definitions.items():
        if name in parameters:
            values[name] = parameters[name]
        elif "defaultValue" in definition:
            values[name] = _typed(definition["defaultValue"], definition["parameterType"])
        else:
            raise ValueError(f"the pipeline parameter {name!r} has no default: pass it")
    calls: list[Call] = []
    _plan_dag(spec, root["dag"], values, {}, calls)
    return calls


def run_steps(
    config_yaml: str,
    workdir: Path,
    study_storage: str = "",
    mlflow_run_id: str = "",
    serving_repository: str = "",
) -> tuple[str, dict[str, FileArtifact]]:
    """Run the pipeline's calls in order; returns the MLflow run id and the artifacts by name."""
    from configs import run_parameters
    from pipelines import components
    from pipelines.steps.edge import config_from_yaml

    workdir.mkdir(parents=True, exist_ok=True)
    parameters = {"config_yaml": config_yaml, **run_parameters(config_from_yaml(config_yaml)),
                  "mlflow_run_id": mlflow_run_id,
                  "pipeline_run": PIPELINE_RUN, "study_storage": study_storage,
                  "serving_repository": serving_repository}  # fmt: skip
    results: dict[Output, Any] = {}
    artifacts: dict[str, FileArtifact] = {}
    calls = plan(parameters)
    for call in calls:
        function = getattr(components, call.function, None) if call.function else None
        if function is None:
            raise ValueError(f"{call.task} is not a Python component: it runs only under kfp")
        outputs = {}
        for key in call.outputs:
            if key in artifacts:
                raise ValueError(f"two calls write an artifact named {key!r}")
            outputs[key] = artifacts[key] = FileArtifact(str(workdir / key))
        inputs = {k: results[v] if isinstance(v, Output) else v for k, v in call.parameters.items()}
        inputs |= {k: results[v] for k, v in call.artifacts.items()}
        returned = function.python_func(**inputs, **outputs)
        results |= {Output(call.task, k): a for k, a in outputs.items()}
        named = returned._asdict() if hasattr(returned, "_asdict") else {"Output": returned}
        results |= {Output(call.task, k): v for k, v in named.items()}
    return results[Output(calls[0].task, "run_id")], artifacts  # the load step opens the run


def _plan_dag(
    spec: dict[str, Any],
    dag: dict[str, Any],
    values: dict[str, Any],
    artifacts: dict[str, Output],
    calls: list[Call],
) -> None:
    """Append the calls of one DAG; `values` and `artifacts` are its inputs, resolved."""
    tasks = dag["tasks"]
    for name in _ordered(tasks, spec):
        task = tasks[name]
        inputs = task.get("inputs", {})
        task_values = {k: _value(v, values) for k, v in inputs.get("parameters", {}).items()}
        task_artifacts = {
            k: _artifact(v, artifacts) for k, v in inputs.get("artifacts", {}).items()
        }
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not _holds(condition, task_values):
            continue
        if "parameterIterator" in task or "artifactIterator" in task:
            raise ValueError(f"{name} is a kfp loop: in process the pipeline runs one tune worker")
        component = spec["components"][task["componentRef"]["name"]]
        if "dag" in component:
            _plan_dag(spec, component["dag"], task_values, task_artifacts, calls)
            continue
        executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        calls.append(Call(name, _function(executor), task_values, task_artifacts, tuple(outputs)))


def _ordered(tasks: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The tasks in dependency order; among the ready ones, the earliest stage first."""

    def rank(name: str) -> tuple[int, str]:
        component = spec["components"][tasks[name]["componentRef"]["name"]]
        label = component.get("executorLabel", "")
        stage = label.removeprefix("exec-").split("-")[0]
        return (STAGES.index(stage) if stage in STAGES else len(STAGES), name)

    done: list[str] = []
    waiting = dict.fromkeys(tasks)
    while waiting:
        ready = [n for n in waiting if set(tasks[n].get("dependentTasks", [])) <= set(done)]
        if not ready:
            raise ValueError(f"the tasks {sorted(waiting)} wait on each other")
        done.append(min(ready, key=rank))
        del waiting[done[-1]]
    return done


def _function(executor: dict[str, Any]) -> str:
    """The component's function name; empty for a container component."""
    args = executor.get("container", {}).get("args", [])
    if "--function_to_execute" not in args:
        return ""
    return str(args[args.index("--function_to_execute") + 1])


def _value(source: dict[str, Any], values: dict[str, Any]) -> Any:
    if "componentInputParameter" in source:
        return values[source["componentInputParameter"]]
    if "taskOutputParameter" in source:
        out = source["taskOutputParameter"]
        return Output(out["producerTask"], out["outputParameterKey"])
    if "runtimeValue" in source:
        return source["runtimeValue"]["constant"]
    raise ValueError(f"an input the in-process runner cannot resolve: {source}")


def _artifact(source: dict[str, Any], artifacts: dict[str, Output]) -> Output:
    if "componentInputArtifact" in source:
        return artifacts[source["componentInputArtifact"]]
    out = source["taskOutputArtifact"]
    return Output(out["producerTask"], out["outputArtifactKey"])


def _typed(value: Any, kind: str) -> Any:
    return {"NUMBER_INTEGER": int, "NUMBER_DOUBLE": float, "BOOLEAN": bool}.get(kind, str)(value)


_CHANNEL = re.compile(r"inputs\.parameter_values\['([^']+)'\]")
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}  # fmt: skip
_CASTS = {"int": int, "double": float, "string": str, "bool": bool}


def _holds(condition: str, values: dict[str, Any]) -> bool:
    """A kfp trigger condition (the CEL subset `dsl.If` compiles to) on known parameter values."""
    expression = _CHANNEL.sub(lambda m: repr(values[m.group(1)]), condition)
    expression = re.sub(r"!(?!=)", " not ", expression.replace("&&", " and ").replace("||", " or "))
    return bool(_evaluate(ast.parse(expression.strip(), mode="eval").body))


def _evaluate(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _evaluate(node.operand)
    if isinstance(node, ast.BoolOp):
        results = [_evaluate(v) for v in node.values]
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _evaluate(node.left), _evaluate(node.comparators[0])
        return _COMPARE[type(node.ops[0])](left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and len(node.args) == 1:
        return _CASTS[node.func.id](_evaluate(node.args[0]))
    raise ValueError(f"a pipeline condition the in-process runner cannot read: {ast.dump(node)}")
