"""One meaning, one source: what a config may name is what the code scores and monitors."""

import numpy as np

from configs.schema import METRICS, Evaluation
from models.evaluate import classification_metrics, score
from monitoring.monitor import QUALITY_METRICS


def test_every_metric_a_config_may_name_is_scored_on_test_and_monitored_in_production():
    assert set(QUALITY_METRICS) == set(METRICS)
    y, p = np.array([0, 1, 0, 1, 1]), np.array([0.1, 0.8, 0.4, 0.6, 0.3])
    tested = classification_metrics(y, p, 0.5)
    for metric in METRICS:
        Evaluation(primary_metric=metric)
        assert tested[metric] == score(metric, y, p, 0.5)
