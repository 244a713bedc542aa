"""One graph, two runners: the in-process plan is read from the spec the kfp pipeline compiles to,
and agrees with the stage list and with each step's signature."""

import importlib
import inspect
import re

import pytest

from pipelines import components
from pipelines.inprocess import Output, plan
from pipelines.stages import STAGES

RUN = {"n_trials": 3, "primary_metric": "pr_auc", "min_gain_over_baseline": 0.0,
       "noninferiority_margin": 0.01, "min_gain_over_champion": 0.0}  # fmt: skip
LOCAL = {"config_yaml": "name: x", **RUN}  # what `make pipeline` and the tests pass
PRODUCTION = LOCAL | {"triton_validation": "production"}


def test_the_in_process_order_is_the_stage_list():
    assert [call.stage for call in plan(LOCAL)] == list(STAGES)


def test_every_input_comes_from_an_earlier_call_as_the_pipeline_wires_it():
    calls = plan(LOCAL)
    done: set[str] = set()
    for call in calls:
        sources = [*call.artifacts.values(), *call.parameters.values()]
        assert {s.task for s in sources if isinstance(s, Output)} <= done, call.task
        done.add(call.task)
    by_stage = {call.stage: call for call in calls}
    # The renames only training.py states: the challenger is the evaluate step's selection.
    assert by_stage["gate"].artifacts["tuned"] == Output("train-model", "model")
    for stage in ("explain", "export", "register", "gate", "deploy"):
        assert by_stage[stage].artifacts["model"] == Output("evaluate-model", "selected")
    assert by_stage["deploy"].parameters["serving_repository"] == ""


def test_the_production_branch_and_parallel_tuning_run_only_under_kfp():
    calls = plan(PRODUCTION)
    assert [c.function for c in calls[-4:]] == ["gate_model", "stage_candidate", "", "deploy_model"]
    assert calls[-1].artifacts["production_report"] == Output(calls[-2].task, "report")
    with pytest.raises(ValueError, match="kfp loop"):
        plan(LOCAL | {"tune_workers": 2})
    with pytest.raises(ValueError, match="not parameters of the pipeline"):
        plan(LOCAL | {"no_such": 1})


def test_the_run_parameters_are_required_and_every_step_runs_with_the_loads_config():
    """The settings runs are compared by sit beside the config; the load step applies them and
    hands the resulting config to every later step, so no step reads the raw parameter."""
    with pytest.raises(ValueError, match=r"parameter '\w+' has no default: pass it"):
        plan({"config_yaml": "name: x"})
    calls = plan(LOCAL)
    load, *later = calls
    assert {k: load.parameters[k] for k in RUN} == RUN
    for call in later:
        assert call.parameters["config_yaml"] == Output(load.task, "config_yaml"), call.task
        assert call.parameters["run_id"] == Output(load.task, "run_id"), call.task


def test_each_component_takes_the_signature_and_stage_name_of_the_step_it_calls():
    for call in (c for c in plan(PRODUCTION) if c.function):
        body = getattr(components, call.function).python_func
        found = re.search(r"from (pipelines\.steps\.\w+) import (\w+)", inspect.getsource(body))
        assert found, f"{call.function} imports no step"
        step = getattr(importlib.import_module(found[1]), found[2])
        expected = list(inspect.signature(step).parameters)
        assert list(inspect.signature(body).parameters) == expected, call.function
        if call.stage in STAGES:  # its timing is the MLflow metric `stage_seconds.<stage>`
            assert f'stage("{call.stage}"' in inspect.getsource(step), call.function
