"""monitoring.drift against Evidently's own DataDriftPreset on the same frames."""

from __future__ import annotations

import evidently.presets  # noqa: F401 - import once at collection, not inside a timed test
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from evidently import Dataset

from benchmarks.bench_monitor import evidently_drift
from monitoring.drift import (
    DriftResult,
    column_drift,
    detect_drift,
    detect_drift_parquet,
    infer_kinds,
)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def assert_matches_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]
) -> DriftResult:
    ours = detect_drift(reference, current, numeric, categorical)
    theirs = evidently_drift(reference, current, numeric, categorical)
    assert [c.column for c in ours.columns] == [c.column for c in theirs.columns]
    for mine, ev in zip(ours.columns, theirs.columns, strict=True):
        assert (mine.method, mine.threshold, mine.drifted) == (
            ev.method,
            ev.threshold,
            ev.drifted,
        ), mine
        assert mine.score == pytest.approx(ev.score, rel=1e-6, abs=1e-9), mine
    assert (ours.drift_share, ours.dataset_drift) == (theirs.drift_share, theirs.dataset_drift)
    return ours


def methods(result: DriftResult) -> dict[str, tuple[str, bool]]:
    return {c.column: (c.method, c.drifted) for c in result.columns}


def frames(n_ref: int, n_cur: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng, pd.DataFrame(index=range(n_ref)), pd.DataFrame(index=range(n_cur))


def test_large_numeric_shift_no_shift_and_low_cardinality():
    rng, ref, cur = frames(3000, 2000)
    ref["same"], cur["same"] = rng.normal(0, 1, 3000), rng.normal(0, 1, 2000)
    ref["shift"], cur["shift"] = rng.normal(0, 1, 3000), rng.normal(0.4, 1, 2000)
    ref["scale"], cur["scale"] = rng.lognormal(0, 1, 3000), 1.5 * rng.lognormal(0, 1, 2000)
    ref["ints"], cur["ints"] = rng.poisson(20, 3000), rng.poisson(20, 2000)
    ref["binary"] = (rng.random(3000) < 0.3).astype(float)
    cur["binary"] = (rng.random(2000) < 0.5).astype(float)
    ref["ordinal"], cur["ordinal"] = rng.integers(0, 4, 3000), rng.integers(0, 5, 2000)
    ref["constant"], cur["constant"] = np.ones(3000), np.ones(2000)
    result = assert_matches_evidently(ref, cur, list(ref.columns), [])
    assert methods(result) == {
        "same": ("wasserstein", False),
        "shift": ("wasserstein", True),
        "scale": ("wasserstein", True),
        "ints": ("wasserstein", False),
        "binary": ("jensenshannon", True),
        "ordinal": ("jensenshannon", True),
        "constant": ("jensenshannon", False),
    }


def test_large_categorical_shift_unseen_value_and_missing():
    rng, ref, cur = frames(2500, 1500, seed=1)
    abc = np.array(["a", "b", "c", None], dtype=object)
    ref["same"], cur["same"] = rng.choice(abc[:3], 2500), rng.choice(abc[:3], 1500)
    ref["shift"] = rng.choice(abc[:3], 2500)
    cur["shift"] = rng.choice(abc[:3], 1500, p=[0.6, 0.3, 0.1])
    ref["unseen"] = rng.choice(abc[:3], 2500)
    cur["unseen"] = np.where(rng.random(1500) < 0.1, "new", rng.choice(abc[:3], 1500))
    ref["missing"] = rng.choice(abc, 2500, p=[0.3, 0.3, 0.2, 0.2])
    cur["missing"] = rng.choice(abc, 1500, p=[0.1, 0.3, 0.2, 0.4])
    ref["ints"], cur["ints"] = rng.integers(0, 3, 2500), rng.integers(0, 3, 1500)
    result = assert_matches_evidently(ref, cur, [], list(ref.columns))
    assert methods(result) == {
        "same": ("jensenshannon", False),
        "shift": ("jensenshannon", True),
        "unseen": ("jensenshannon", True),
        "missing": ("jensenshannon", True),
        "ints": ("jensenshannon", False),
    }


def test_nan_and_inf_are_dropped_before_the_test_is_chosen():
    rng, ref, cur = frames(1050, 800, seed=2)
    ref["x"], cur["x"] = rng.normal(0, 1, 1050), rng.normal(0.3, 1, 800)
    ref.loc[:29, "x"] = np.nan  # 1010 values left: large reference
    ref.loc[30:39, "x"] = np.inf
    ref["y"], cur["y"] = rng.normal(0, 1, 1050), rng.normal(0, 1, 800)
    ref.loc[:59, "y"] = np.nan  # 990 left: small reference, K-S
    cur.loc[:99, "y"] = -np.inf
    cur.loc[100, "y"] = np.nan
    result = assert_matches_evidently(ref, cur, ["x", "y"], [])
    assert methods(result) == {"x": ("wasserstein", True), "y": ("ks", False)}


def test_inf_without_nan_follows_evidentlys_per_column_result():
    """Evidently's ValueDrift drops ±inf always; its DriftedColumnsCount path only from columns
    that also hold a NaN (`is_contains_nans`), so there the count can disagree with its own
    per-column results. The share here follows the per-column results."""
    rng, ref, cur = frames(500, 400, seed=9)
    ref["x"], cur["x"] = rng.normal(0, 1, 500), rng.normal(0, 1, 400)
    cur.loc[:99, "x"] = -np.inf  # K-S on the raw column sees a shift
    ours = detect_drift(ref, cur, ["x"], [])
    theirs = evidently_drift(ref, cur, ["x"], [])
    assert ours.columns[0].score == pytest.approx(theirs.columns[0].score, rel=1e-6)
    assert (ours.columns[0].drifted, theirs.columns[0].drifted) == (False, False)
    assert (ours.drift_share, theirs.drift_share) == (0.0, 1.0)


def test_small_samples_use_ks_chisquare_and_z():
    rng, ref, cur = frames(400, 300, seed=4)
    ref["ks_same"], cur["ks_same"] = rng.normal(0, 1, 400), rng.normal(0, 1, 300)
    ref["ks_shift"], cur["ks_shift"] = rng.normal(0, 1, 400), rng.normal(0.5, 1, 300)
    ref["num_z"] = (rng.random(400) < 0.2).astype(float)
    cur["num_z"] = (rng.random(300) < 0.4).astype(float)
    ref["num_chi"], cur["num_chi"] = rng.integers(0, 4, 400), rng.integers(0, 4, 300)
    ref["num_constant"], cur["num_constant"] = np.full(400, 2.0), np.full(300, 2.0)
    ref["cat_chi"] = rng.choice(["a", "b", "c"], 400)
    cur["cat_chi"] = rng.choice(["a", "b", "c"], 300, p=[0.5, 0.3, 0.2])
    ref["cat_z"], cur["cat_z"] = rng.choice(["no", "yes"], 400), rng.choice(["no", "yes"], 300)
    ref["cat_unseen"] = rng.choice(["a", "b", "c"], 400)
    cur["cat_unseen"] = rng.choice(["a", "b", "c", "d"], 300)
    ref["cat_one_each"], cur["cat_one_each"] = np.full(400, "a"), np.full(300, "b")
    numeric = ["ks_same", "ks_shift", "num_z", "num_chi", "num_constant"]
    categorical = ["cat_chi", "cat_z", "cat_unseen", "cat_one_each"]
    result = assert_matches_evidently(ref, cur, numeric, categorical)
    assert methods(result) == {
        "ks_same": ("ks", False),
        "ks_shift": ("ks", True),
        "num_z": ("z", True),
        "num_chi": ("chisquare", False),
        "num_constant": ("z", False),
        "cat_chi": ("chisquare", True),
        "cat_z": ("z", False),
        "cat_unseen": ("chisquare", True),
        "cat_one_each": ("z", True),
    }
    assert result.column("cat_unseen").score == 0.0  # an unseen category: infinite chi-square
    assert result.column("num_constant").score == 1.0


@pytest.mark.parametrize(("n_ref", "method"), [(1000, "ks"), (1001, "wasserstein")])
def test_reference_size_boundary(n_ref, method):
    rng, ref, cur = frames(n_ref, 500, seed=4)
    ref["x"], cur["x"] = rng.normal(0, 1, n_ref), rng.normal(0.2, 1, 500)
    result = assert_matches_evidently(ref, cur, ["x"], [])
    assert result.columns[0].method == method


@pytest.mark.parametrize(("shifted", "dataset_drift"), [(1, True), (0, False)])
def test_dataset_drift_is_share_at_least_half(shifted, dataset_drift):
    rng, ref, cur = frames(1500, 1500, seed=5)
    ref["a"], cur["a"] = rng.normal(0, 1, 1500), rng.normal(shifted, 1, 1500)
    ref["b"], cur["b"] = rng.normal(0, 1, 1500), rng.normal(0, 1, 1500)
    result = assert_matches_evidently(ref, cur, ["a", "b"], [])
    assert (result.drift_share, result.dataset_drift) == (shifted / 2, dataset_drift)


def test_parquet_streaming_equals_in_memory(tmp_path):
    rng, ref, cur = frames(2000, 1200, seed=6)
    ref["x"], cur["x"] = rng.normal(0, 1, 2000), rng.normal(0.3, 1, 1200)
    ref.loc[:9, "x"] = np.nan
    ref["n"], cur["n"] = rng.integers(0, 50, 2000), rng.integers(0, 60, 1200)
    ref["b"], cur["b"] = rng.integers(0, 2, 2000), rng.integers(0, 2, 1200)
    ref["c"] = rng.choice(np.array(["a", "b", None], dtype=object), 2000)
    cur["c"] = rng.choice(np.array(["a", "b", "z", None], dtype=object), 1200)
    ref["k"] = pd.Categorical(rng.choice(["p", "q"], 2000), categories=["p", "q", "r"])
    cur["k"] = pd.Categorical(rng.choice(["p", "q"], 1200), categories=["p", "q", "r"])
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    args = (["x", "n", "b"], ["c", "k"])
    in_memory = detect_drift(ref, cur, *args)
    assert (
        detect_drift_parquet(tmp_path / "ref.parquet", tmp_path / "cur.parquet", *args) == in_memory
    )
    small = detect_drift(ref.head(500), cur.head(400), *args)
    ref.head(500).to_parquet(tmp_path / "ref_small.parquet")
    cur.head(400).to_parquet(tmp_path / "cur_small.parquet")
    assert (
        detect_drift_parquet(tmp_path / "ref_small.parquet", tmp_path / "cur_small.parquet", *args)
        == small
    )


@pytest.mark.parametrize("side", ["reference", "current"])
def test_missing_column_is_a_clear_error(tmp_path, side):
    ref = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"]})
    cur = ref.copy()
    {"reference": ref, "current": cur}[side].drop(columns="x", inplace=True)
    with pytest.raises(ValueError, match=rf"missing from the {side} data: \['x'\]"):
        detect_drift(ref, cur, ["x"], ["c"])
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    with pytest.raises(ValueError, match=rf"missing from the {side} data: \['x'\]"):
        detect_drift_parquet(tmp_path / "ref.parquet", tmp_path / "cur.parquet", ["x"], ["c"])


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="both numeric and categorical"):
        detect_drift(pd.DataFrame({"x": [1.0]}), pd.DataFrame({"x": [1.0]}), ["x"], ["x"])
    with pytest.raises(ValueError, match="'x' in the reference data has no finite value"):
        column_drift(np.array([np.nan, np.inf]), np.array([1.0]), "num", "x")
    with pytest.raises(ValueError, match="'c' in the current data has no value"):
        column_drift(pd.Series(["a"]), pd.Series([None, np.nan]), "cat", "c")
    with pytest.raises(ValueError, match="not numeric"):
        column_drift(pd.Series(["a"]), pd.Series(["b"]), "num", "s")
    with pytest.raises(ValueError, match="kind"):
        column_drift(np.ones(3), np.ones(3), "text", "x")


def test_column_drift_on_plain_arrays():
    rng = np.random.default_rng(7)
    result = column_drift(rng.normal(0, 1, 5000), rng.normal(1, 1, 4000), "num", "x")
    assert (result.column, result.kind, result.method, result.drifted) == (
        "x",
        "num",
        "wasserstein",
        True,
    )
    assert result.score == pytest.approx(1.0, abs=0.05)
    assert DriftResult((result,), 1.0, True, 0.5).to_dict()["columns"][0]["method"] == "wasserstein"


def test_infer_kinds_matches_evidentlys_inference():
    rng = np.random.default_rng(8)
    frame = pd.DataFrame(
        {
            "f": rng.normal(size=200),
            "i_few": rng.integers(0, 10, 200),
            "i_many": rng.integers(0, 100, 200),
            "flag": rng.random(200) < 0.5,
            "s": rng.choice(["a", "b"], 200).astype(object),
            "text": [f"row {i}" for i in range(200)],
            "cat": pd.Categorical(rng.choice(["x", "y"], 200)),
            "ts": pd.date_range("2026-01-01", periods=200, freq="h"),
        }
    )
    definition = Dataset.from_pandas(frame).data_definition
    numeric, categorical = infer_kinds(frame)
    assert numeric == definition.numerical_columns == ["f", "i_many"]
    assert categorical == definition.categorical_columns == ["i_few", "flag", "s", "cat"]


def test_an_absent_or_empty_current_column_is_drift_when_asked(tmp_path):
    """A window without any value of a feature: drifted (method "missing"), not a crash."""
    rng, ref, cur = frames(3000, 500, seed=9)
    for frame, n in ((ref, 3000), (cur, 500)):
        frame["ok"] = rng.normal(0, 1, n)
        frame["nan"] = rng.normal(0, 1, n)
        frame["none"] = rng.choice(["a", "b"], n).astype(object)
        frame["gone"] = rng.normal(0, 1, n)
        frame["null_obj"] = rng.normal(0, 1, n)
    cur["nan"] = np.nan
    cur["none"] = None
    cur["null_obj"] = pd.Series([None] * 500, dtype=object)  # all-null logged column
    cur = cur.drop(columns="gone")
    numeric, categorical = ["ok", "nan", "gone", "null_obj"], ["none"]
    with pytest.raises(ValueError, match=r"missing from the current data: \['gone'\]"):
        detect_drift(ref, cur, numeric, categorical)
    with pytest.raises(ValueError, match="'nan' in the current data has no value"):
        detect_drift(ref, cur.assign(gone=0.0), numeric, categorical)

    result = detect_drift(ref, cur, numeric, categorical, missing_is_drift=True)
    assert methods(result) == {
        "ok": ("wasserstein", False),
        "nan": ("missing", True),
        "gone": ("missing", True),
        "null_obj": ("missing", True),
        "none": ("missing", True),
    }
    assert result.column("gone").score == 1.0 and result.drift_share == 0.8
    assert result.dataset_drift  # 4 of 5 columns: the dataset drifted

    # Parquet: the absent column and a column written as Arrow's null type
    ref.to_parquet(tmp_path / "ref.parquet")
    cur.to_parquet(tmp_path / "cur.parquet")
    assert pq.read_schema(tmp_path / "cur.parquet").field("null_obj").type == pa.null()
    streamed = detect_drift_parquet(
        tmp_path / "ref.parquet", tmp_path / "cur.parquet", numeric, categorical,
        missing_is_drift=True,
    )  # fmt: skip
    assert methods(streamed) == methods(result)


def test_an_empty_reference_column_stays_an_error():
    rng, ref, cur = frames(100, 100)
    ref["x"], cur["x"] = np.nan, rng.normal(0, 1, 100)
    with pytest.raises(ValueError, match="'x' in the reference data has no value"):
        detect_drift(ref, cur, ["x"], [], missing_is_drift=True)
    with pytest.raises(ValueError, match=r"missing from the reference data: \['y'\]"):
        detect_drift(ref, cur.assign(y=1.0), ["x", "y"], [], missing_is_drift=True)
