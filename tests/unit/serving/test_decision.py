"""Per-version decision thresholds in Triton's model config: written, read back, refused."""

import pytest

from serving.decision import threshold_parameters, thresholds_from_parameters


def test_thresholds_round_trip_through_written_and_served_forms():
    written = threshold_parameters({3: 0.41, 10: 0.5})
    assert written == {"threshold.v3": "0.41", "threshold.v10": "0.5"}
    served = {key: {"string_value": value} for key, value in written.items()}
    served["registry_version"] = {"string_value": "10"}  # other parameters are ignored
    assert thresholds_from_parameters(served) == {3: 0.41, 10: 0.5}
    assert thresholds_from_parameters(written) == {3: 0.41, 10: 0.5}


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), float("inf")])
def test_a_threshold_outside_0_1_is_refused_on_write(value):
    with pytest.raises(ValueError, match="version 2 must be in"):
        threshold_parameters({2: value})


@pytest.mark.parametrize(
    ("parameters", "words"),
    [
        ({"threshold.vx": "0.5"}, "not a version threshold"),
        ({"threshold.v1": {"string_value": "high"}}, "not a version threshold"),
        ({"threshold.v1": "2"}, "not in \\[0, 1\\]"),
    ],
)
def test_a_malformed_served_threshold_is_an_error(parameters, words):
    with pytest.raises(ValueError, match=words):
        thresholds_from_parameters(parameters)
