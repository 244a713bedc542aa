"""Late labels posted to the gateway (`POST /v2/models/{m}/labels`), checked before any write.

Pure code: no I/O. The body names each labelled row by its id in the inference log, the
request id the gateway answered with (`X-Request-ID`, `parameters.request_id`), or
`<request id>.<i>` for row i of a multi-row request (`serving.gateway.edge_log.row_ids`)::

    {"labels": [{"id": "3f2a...", "label": 1}, {"id": "batch-7.0", "label": 0}]}
"""

from __future__ import annotations

import re

import orjson

from serving.gateway.contract import Rejected

MAX_LABEL_ROWS = 10_000
# A request id (1-128 characters, app._REQUEST_ID_RE) plus a row suffix ".<i>".
_ROW_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,160}$")


def parse_labels_request(
    body: bytes, max_rows: int = MAX_LABEL_ROWS
) -> tuple[list[str], list[int]]:
    """The (row ids, labels) of a labels body, in order.

    Raises:
        Rejected: 400 naming the first field (and row index) at fault.
    """
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, "json", f"body is not valid JSON: {exc}") from None
    rows = request.get("labels") if isinstance(request, dict) else None
    if not isinstance(rows, list) or not rows:
        raise Rejected(
            400, "labels", 'body needs \'labels\': a non-empty list of {"id": ..., "label": 0|1}'
        )
    if len(rows) > max_rows:
        raise Rejected(400, "labels", f"'labels' has {len(rows)} rows; at most {max_rows}")
    ids: list[str] = []
    values: list[int] = []
    first_at: dict[str, int] = {}
    for index, row in enumerate(rows):
        row_id, label = _checked_row(row, index)
        if row_id in first_at:
            raise Rejected(400, "label_id",
                           f"labels[{index}].id repeats labels[{first_at[row_id]}].id")  # fmt: skip
        first_at[row_id] = index
        ids.append(row_id)
        values.append(label)
    return ids, values


def _checked_row(row: object, index: int) -> tuple[str, int]:
    if not isinstance(row, dict):
        raise Rejected(400, "labels", f"labels[{index}] must be an object with 'id' and 'label'")
    row_id, label = row.get("id"), row.get("label")
    if not isinstance(row_id, str) or not _ROW_ID_RE.match(row_id):
        raise Rejected(
            400,
            "label_id",
            f"labels[{index}].id must be a request id the gateway returned: a string of 1-160 "
            "letters, digits, '.', '_', ':', '-'",
        )
    if type(label) is not int or label not in (0, 1):  # not a bool, not 1.0
        raise Rejected(400, "label_value", f"labels[{index}].label must be 0 or 1, got {label!r}")
    return row_id, label
