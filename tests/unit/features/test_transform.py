"""The preprocessor per input scaling: standardised numbers for linear models and the MLP,
imputed raw numbers for trees (`ModelFamily.scaled_inputs`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.transform import build_preprocessor, fit_preprocessor


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [1.0, 2.0, 3.0, np.nan, 5.0, 7.0],
            "age": [20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
            "channel": ["pos", "online", "pos", np.nan, "online", "pos"],
        }
    )


def test_unscaled_numbers_are_imputed_only_and_named_as_scaled_ones():
    train = frame()
    raw = build_preprocessor(["amount", "age"], ["channel"], scaled=False).fit(train)
    scaled = build_preprocessor(["amount", "age"], ["channel"]).fit(train)
    assert [n for n, _ in raw.named_transformers_["numeric"].steps] == ["impute"]
    assert [n for n, _ in scaled.named_transformers_["numeric"].steps] == ["impute", "scale"]
    out = raw.transform(train)
    np.testing.assert_array_equal(out[:, 0], [1.0, 2.0, 3.0, 3.0, 5.0, 7.0])  # NaN -> median
    np.testing.assert_array_equal(out[:, 1], train["age"].to_numpy())
    # same columns (names, order, categories) either way: explanations group them alike
    assert list(raw.get_feature_names_out()) == list(scaled.get_feature_names_out())
    np.testing.assert_array_equal(out[:, 2:], scaled.transform(train)[:, 2:])


def test_fit_preprocessor_passes_the_scaling_on(fraud_config, fraud_splits):
    train = fraud_splits[0].head(500)
    for scaled, steps in ((True, ["impute", "scale"]), (False, ["impute"])):
        preprocess, X, y = fit_preprocessor(fraud_config, train, scaled=scaled)
        assert [n for n, _ in preprocess.named_transformers_["numeric"].steps] == steps
        assert len(X) == len(y) == 500
