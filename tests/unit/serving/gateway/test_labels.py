"""Late-label bodies: each client mistake is a 400 naming the field and the row at fault."""

from __future__ import annotations

import orjson
import pytest

from serving.gateway.contract import Rejected
from serving.gateway.labels import parse_labels_request


def test_ids_and_labels_come_back_in_order():
    body = orjson.dumps({"labels": [{"id": "req-1", "label": 1}, {"id": "batch.0", "label": 0}]})
    assert parse_labels_request(body) == (["req-1", "batch.0"], [1, 0])


@pytest.mark.parametrize(
    ("body", "rule", "words"),
    [
        (b"{not json", "json", "not valid JSON"),
        (b"[]", "labels", "body needs 'labels'"),
        (b"{}", "labels", "body needs 'labels'"),
        (b'{"labels": []}', "labels", "non-empty list"),
        (b'{"labels": {"id": "a", "label": 1}}', "labels", "non-empty list"),
        (b'{"labels": [1]}', "labels", "labels[0] must be an object"),
        (b'{"labels": [{"label": 1}]}', "label_id", "labels[0].id"),
        (b'{"labels": [{"id": "", "label": 1}]}', "label_id", "labels[0].id"),
        (b'{"labels": [{"id": 7, "label": 1}]}', "label_id", "labels[0].id"),
        (b'{"labels": [{"id": "a/../b", "label": 1}]}', "label_id", "labels[0].id"),
        (orjson.dumps({"labels": [{"id": "x" * 161, "label": 1}]}), "label_id", "1-160"),
        (b'{"labels": [{"id": "a", "label": 1}, {"id": "b"}]}', "label_value",
         "labels[1].label must be 0 or 1, got None"),
        (b'{"labels": [{"id": "a", "label": 2}]}', "label_value", "got 2"),
        (b'{"labels": [{"id": "a", "label": true}]}', "label_value", "got True"),
        (b'{"labels": [{"id": "a", "label": 1.0}]}', "label_value", "got 1.0"),
        (b'{"labels": [{"id": "a", "label": "1"}]}', "label_value", "got '1'"),
        (b'{"labels": [{"id": "a", "label": 1}, {"id": "a", "label": 0}]}', "label_id",
         "labels[1].id repeats labels[0].id"),
    ],
)  # fmt: skip
def test_each_mistake_is_a_400_naming_the_field(body, rule, words):
    with pytest.raises(Rejected) as caught:
        parse_labels_request(body)
    assert (caught.value.status, caught.value.rule) == (400, rule)
    assert words in caught.value.message


def test_a_body_over_the_row_limit_is_refused_before_any_row_is_read():
    body = orjson.dumps({"labels": [{"id": str(i), "label": 1} for i in range(4)]})
    assert len(parse_labels_request(body, max_rows=4)[0]) == 4
    with pytest.raises(Rejected, match="'labels' has 4 rows; at most 3"):
        parse_labels_request(body, max_rows=3)
