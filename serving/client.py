"""Client for the served model: raw feature rows in, probabilities and decisions out.

    python -m serving.client predict --file rows.csv [--model fraud-classifier]

Talks KServe v2 over HTTP to the public endpoint, the gateway (`make serve`, :8000). Input
names and types are read from the model's metadata; the decision comes from the server, taken
at the threshold of the version that answered, so the client holds no threshold. Every
request carries a request id (`X-Request-ID`): the gateway logs the rows under it, which is
what late labels join on (`<id>` for one row, `<id>.<i>` for row i of a larger request);
`send_labels` posts them to the gateway (`POST /v2/models/{m}/labels`, a key granted labels).
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from configs.cli import UserError, cli_parser, fail, setup_logging
from serving.decision import MISSING_CATEGORY, PROBABILITIES_OUTPUT
from serving.gateway.labels import MAX_LABEL_ROWS

log = logging.getLogger(__name__)

DECISION_OUTPUT = "decision"  # added by the gateway; raw Triton does not decide
LABELS_PER_REQUEST = MAX_LABEL_ROWS  # the most one labels request may carry
LABELS_TIMEOUT_S = 30.0
LABELS_REFUSED_HINTS = {  # what the caller can do when the gateway refuses labels
    403: "the key is not granted labels: post them with a key that is (python -m "
    "serving.gateway keys add --name NAME --labels; make simulate API_KEY=...)",
    409: "this gateway runs --no-log and keeps no inference log to label: restart it with one "
    "(make serve)",
}


class ClientError(UserError, RuntimeError):
    """The request cannot be built or the server refused it; the message says why (and `hint`
    what to do, where the client knows)."""


class ModelUnavailableError(ClientError):
    """The server does not answer, or does not serve the model (`make serve` is the remedy)."""


@dataclass(frozen=True)
class ModelInfo:
    """What the client learns from the server about one model."""

    name: str
    version: str
    inputs: dict[str, str]  # input name -> KServe datatype ("FP32", "BYTES")


class ModelClient:
    """Predict with one served model over KServe v2 HTTP (tritonclient), through the gateway.

    Against a bare Triton (infra validation's private server) it returns probabilities only.
    """

    def __init__(
        self, model: str, url: str = "127.0.0.1:8000", *, api_key: str | None = None
    ) -> None:
        import tritonclient.http as http

        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._base_url = "http://" + url.removeprefix("http://")
        self._client = http.InferenceServerClient(url=url.removeprefix("http://"))
        self.info = self._describe(model)
        self.last_version = self.info.version  # the version that answered the last request
        self.last_request_id = ""

    def _describe(self, model: str) -> ModelInfo:
        try:
            metadata = self._client.get_model_metadata(model, headers=self._headers)
        except Exception as exc:
            raise ModelUnavailableError(f"model '{model}' is not available: {exc}") from exc
        inputs = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        return ModelInfo(model, str(metadata.get("versions", ["?"])[-1]), inputs)

    def predict(
        self,
        rows: pd.DataFrame,
        request_id: str | None = None,
        event_time: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Probability of the positive class and, from the gateway, the decision.

        Args:
            rows: raw feature rows (one column per model input).
            request_id: the request's id (default: a new one); `last_request_id` keeps it.
            event_time: when the rows happened, logged instead of the arrival time (replays).
        """
        missing = [name for name in self.info.inputs if name not in rows.columns]
        if missing:
            raise ClientError(f"rows lack the model's input column(s): {missing}")
        tensors = []
        for name, datatype in self.info.inputs.items():
            values = input_tensor(rows[name], datatype)
            tensor = self._http.InferInput(name, list(values.shape), datatype)
            tensor.set_data_from_numpy(values)
            tensors.append(tensor)
        request_id = request_id or uuid.uuid4().hex
        parameters = {"event_time": pd.Timestamp(event_time).isoformat()} if event_time else None
        try:
            result = self._client.infer(
                self.info.name,
                tensors,
                headers={**self._headers, "X-Request-ID": request_id},
                parameters=parameters,
            )
        except Exception as exc:
            raise ClientError(f"inference failed: {exc}") from exc
        self.last_version, self.last_request_id = _served_version(result), request_id
        predictions = pd.DataFrame(
            {"probability": result.as_numpy(PROBABILITIES_OUTPUT)[:, 1].astype(float)},
            index=rows.index,
        )
        decisions = result.as_numpy(DECISION_OUTPUT)
        if decisions is not None:
            predictions["decision"] = decisions.astype(int)
        return predictions

    def send_labels(self, row_ids: Sequence[str], labels: Sequence[int]) -> int:
        """Post late labels (0/1) of answered rows, keyed by the ids the gateway logged them
        under; returns how many the gateway wrote. The key must be granted labels."""
        import requests

        url = f"{self._base_url}/v2/models/{self.info.name}/labels"
        rows = [{"id": str(i), "label": int(v)} for i, v in zip(row_ids, labels, strict=True)]
        written = 0
        for begin in range(0, len(rows), LABELS_PER_REQUEST):
            chunk = rows[begin : begin + LABELS_PER_REQUEST]
            try:
                answer = requests.post(url, json={"labels": chunk}, headers=self._headers,
                                       timeout=LABELS_TIMEOUT_S)  # fmt: skip
            except requests.RequestException as exc:
                raise ModelUnavailableError(f"labels not sent to {url}: {exc}") from exc
            if answer.status_code != 200:
                raise ClientError(
                    f"labels refused ({answer.status_code}): {answer.text[:300]}",
                    hint=LABELS_REFUSED_HINTS.get(answer.status_code),
                )
            written += int(answer.json()["written"])
        return written

    def close(self) -> None:
        """Close the connection."""
        self._client.close()


def _served_version(result) -> str:
    """The model version that answered (not the latest known one: they differ during a swap)."""
    response = result.get_response()
    if isinstance(response, dict):
        return str(response["model_version"])
    return str(response.model_version)


def input_tensor(values: pd.Series, datatype: str) -> np.ndarray:
    """One input tensor [n, 1]: numbers as float32 (NaN = missing), text as str ("" = missing)."""
    if datatype == "FP32":
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & numbers.isna()
        if bad.any():
            raise ClientError(
                f"column '{values.name}' has non-numeric values: "
                f"{values[bad].astype(str).unique()[:3].tolist()}"
            )
        return numbers.to_numpy(np.float32).reshape(-1, 1)
    if datatype == "BYTES":
        text = values.astype(object).where(values.notna(), MISSING_CATEGORY).astype(str)
        return text.to_numpy(object).reshape(-1, 1)
    raise ClientError(f"input '{values.name}' has unsupported datatype {datatype}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli_parser(__doc__, prog="python -m serving.client", make="make serve (first)")
    parser.add_argument("command", choices=("predict",), help="predict: score the rows of --file")
    parser.add_argument("--file", type=Path, required=True, help="CSV, TSV or Parquet of raw rows")
    parser.add_argument(
        "--model", default="fraud-classifier", help="served model (default: fraud-classifier)"
    )
    parser.add_argument("--url", default="127.0.0.1:8000", help="the gateway's host:port")
    parser.add_argument("--api-key", help="API key, when the gateway requires one")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    from features.sources import DataSourceError, read_table

    try:
        rows = read_table(args.file)
        client = ModelClient(args.model, args.url, api_key=args.api_key)
        predictions = client.predict(rows)
        client.close()
    except ModelUnavailableError as exc:
        project = args.model.removesuffix("-classifier")
        return fail(exc, f"make serve PROJECT={project}, then make serve-status")
    except (ClientError, DataSourceError) as exc:
        return fail(exc)
    print(
        f"# model {client.info.name} v{client.last_version}, request {client.last_request_id}",
        file=sys.stderr,
    )
    predictions.to_csv(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
