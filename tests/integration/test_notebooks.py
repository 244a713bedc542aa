"""Every notebook in notebooks/ runs top to bottom on the small config (nbclient, this venv).

The kernel is this interpreter (a kernel spec written to a temp JUPYTER_PATH), the working
directory and the MLflow/Optuna stores are temporary, and notebooks 02-04 share one
NOTEBOOK_WORKDIR so that 03 and 04 reuse the pipeline run of 02, as a reader's session would.
Notebook 03 starts a real Triton and the gateway for `/explain` (`make triton-env`, which
`make test` runs first) and stops them; the fixture stops them too if a cell failed before.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, write_config

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
kernelspec = pytest.importorskip("ipykernel.kernelspec")

pytestmark = pytest.mark.integration

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory):
    """Env vars of the kernel: small config, shared workdir, temp MLflow store, Agg plots."""
    root = tmp_path_factory.mktemp("notebooks")
    kernelspec.write_kernel_spec(path=root / "jupyter" / "kernels" / "python3")
    config = write_config(
        root / "notebooks.yaml",
        name="notebooks",
        data={"rows": 10_000},  # half the small config's rows: 02 runs the pipeline twice
        tuning={"n_trials": 2},
        gate={"min_gain_over_baseline": -1.0},
        explain={"background_rows": 50, "explain_rows": 50, "local_examples": 2},
        # 04 replays a week: two weekly windows instead of eight daily ones, each of which
        # costs an Evidently report (seconds each, whatever its size)
        monitoring={"window": "7D"},
    )
    env = {
        "JUPYTER_PATH": str(root / "jupyter"),
        "NOTEBOOK_CONFIG": str(config),
        "NOTEBOOK_WORKDIR": str(root / "work"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(REPO),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        try:
            yield root
        finally:
            _stop_servers(root / "work")


def _stop_servers(workdir: Path) -> None:
    """Notebook 03 starts Triton and the gateway (run dirs under its WORKDIR) and stops them in
    its last cells; a cell failing before those would leave them running. Nothing if none runs."""
    from serving.gateway import cli
    from serving.launcher import TritonServer

    cli.main(["stop", "--run-dir", str(workdir / "gateway")])
    TritonServer(run_dir=workdir / "triton").stop()


def _failure(notebook, name: str, error: Exception) -> str:
    """The failing cell's source and error, or the exception if no cell holds one."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return (
                    f"{name}: cell {index} failed\n--- source ---\n{cell.source}\n--- error ---\n"
                    f"{output['ename']}: {output['evalue']}"
                )
    return f"{name}: {type(error).__name__}: {error}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, notebook_env: Path, tmp_path: Path):
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.perf_counter()
    try:
        client.execute()
    except Exception as error:  # noqa: BLE001 - reported with the failing cell
        pytest.fail(_failure(notebook, path.name, error), pytrace=False)
    print(f"{path.name}: {time.perf_counter() - started:.1f}s on {sys.executable}")
