"""Client for the served model: raw feature rows in, probabilities and decisions out.

    python -m serving.client predict --file rows.csv [--model fraud-classifier]

Input names, types and the decision threshold are read from the server (model metadata and
the `threshold` parameter of its config), so the client needs no registry access.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from configs.console import cli_parser, fail, setup_logging
from serving.onnx_export import MISSING_CATEGORY, PROBABILITIES_OUTPUT

if TYPE_CHECKING:
    from monitoring.inference_log import InferenceLogger

log = logging.getLogger(__name__)

PROTOCOLS = ("http", "grpc")


class ClientError(RuntimeError):
    """The request cannot be built or the server refused it; the message says why."""


class ModelUnavailableError(ClientError):
    """The server does not answer, or does not serve the model (`make serve` is the remedy)."""


@dataclass(frozen=True)
class ModelInfo:
    """What the client learns from the server about one model."""

    name: str
    version: str
    inputs: dict[str, str]  # input name -> Triton datatype ("FP32", "BYTES")
    threshold: float


class TritonModelClient:
    """Predict with one model on a Triton server over HTTP or gRPC (tritonclient).

    With an `InferenceLogger`, every prediction is also handed to the inference log (without
    waiting on it: logging never fails or slows a prediction).
    """

    def __init__(
        self,
        model: str,
        url: str = "127.0.0.1:8000",
        protocol: str = "http",
        logger: InferenceLogger | None = None,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ClientError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
        self._module, self._protocol = module, protocol
        self._client = module.InferenceServerClient(url=url)
        self.info = self._describe(model)
        self.logger = logger
        self.last_version = self.info.version  # the version that answered the last request

    def _describe(self, model: str) -> ModelInfo:
        try:
            metadata = self._client.get_model_metadata(model)
            config = self._client.get_model_config(model)
        except Exception as exc:
            raise ModelUnavailableError(f"model '{model}' is not available: {exc}") from exc
        if self._protocol == "grpc":  # protobuf messages -> the same dicts HTTP returns
            from google.protobuf.json_format import MessageToDict

            metadata = MessageToDict(metadata, preserving_proto_field_name=True)
            config = MessageToDict(config, preserving_proto_field_name=True)["config"]
        parameters = config.get("parameters", {})
        threshold = float(parameters.get("threshold", {}).get("string_value", 0.5))
        inputs = {i["name"]: i["datatype"] for i in metadata["inputs"]}
        return ModelInfo(model, str(metadata.get("versions", ["?"])[-1]), inputs, threshold)

    def predict(
        self,
        rows: pd.DataFrame,
        request_ids: Iterable[str] | None = None,
        timestamps: Iterable[pd.Timestamp] | None = None,
    ) -> pd.DataFrame:
        """Probability of the positive class and the decision at the model's threshold.

        `request_ids` and `timestamps` (default: new ids, now) key the inference log rows.
        """
        missing = [name for name in self.info.inputs if name not in rows.columns]
        if missing:
            raise ClientError(f"rows lack the model's input column(s): {missing}")
        tensors = []
        for name, datatype in self.info.inputs.items():
            values = _column(rows[name], datatype)
            tensor = self._module.InferInput(name, list(values.shape), datatype)
            tensor.set_data_from_numpy(values)
            tensors.append(tensor)
        try:
            result = self._client.infer(self.info.name, tensors)
        except Exception as exc:
            raise ClientError(f"inference failed: {exc}") from exc
        probability = result.as_numpy(PROBABILITIES_OUTPUT)[:, 1].astype(float)
        predictions = pd.DataFrame(
            {
                "probability": probability,
                "decision": (probability >= self.info.threshold).astype(int),
            },
            index=rows.index,
        )
        self.last_version = _served_version(result)
        if self.logger is not None:
            self._log(self.logger, rows, predictions, self.last_version, request_ids, timestamps)
        return predictions

    def _log(
        self, logger: InferenceLogger, rows, predictions, version, request_ids, timestamps
    ) -> None:
        from monitoring.inference_log import prediction_frame

        try:
            logger.log(
                prediction_frame(
                    model=self.info.name,
                    version=version,
                    features=rows[list(self.info.inputs)],
                    scores=predictions["probability"].to_numpy(),
                    decisions=predictions["decision"].to_numpy(),
                    request_ids=request_ids,
                    timestamps=timestamps,
                )
            )
        except Exception as exc:  # noqa: BLE001 - a logging fault never fails a prediction
            log.error("inference log: rows of %s not logged: %s", self.info.name, exc)

    def close(self) -> None:
        """Close the connection."""
        self._client.close()


def _served_version(result) -> str:
    """The model version that answered (not the latest known one: they differ during a swap)."""
    response = result.get_response()
    if isinstance(response, dict):
        return str(response["model_version"])
    return str(response.model_version)


def _column(values: pd.Series, datatype: str) -> np.ndarray:
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
    parser.add_argument("--file", type=Path, required=True, help="CSV or Parquet of raw rows")
    parser.add_argument(
        "--model", default="fraud-classifier", help="served model (default: fraud-classifier)"
    )
    parser.add_argument("--url", default="127.0.0.1:8000", help="host:port (8001 for gRPC)")
    parser.add_argument(
        "--protocol", choices=PROTOCOLS, default="http", help="KServe v2 protocol (default http)"
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    from features.sources import DataSourceError, read_table

    try:
        rows = read_table(args.file)
        client = TritonModelClient(args.model, args.url, args.protocol)
        predictions = client.predict(rows)
        client.close()
    except ModelUnavailableError as exc:
        project = args.model.removesuffix("-classifier")
        return fail(exc, f"make serve PROJECT={project}, then make serve-status")
    except (ClientError, DataSourceError) as exc:
        return fail(exc)
    print(
        f"# model {client.info.name} v{client.info.version}, threshold {client.info.threshold:.4f}",
        file=sys.stderr,
    )
    predictions.to_csv(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
