"""The configuration reference, generated from the schema so it cannot go stale.

python -m configs.reference            # write docs/configuration.md (make docs)
python -m configs.reference --check    # exit 1 if the file differs from the schema
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from configs import schema
from configs.cli import cli_parser, fail, setup_logging

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
HEADER = """# Configuration reference

Generated from `configs/schema.py` by `make docs`; a test fails when this file is stale.
One YAML file describes one project (see `configs/fraud.yaml`, `configs/churn.yaml`); an
unknown key or a bad value stops everything before any work, naming the key and what is
allowed. Keys are listed as `section.key`; a dash means "no default: required".
"""


def _models(annotation: object) -> list[type[BaseModel]]:
    """The schema models inside an annotation (`X`, `X | None`, `dict[str, X]`)."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _type(annotation: object) -> str:
    text = getattr(annotation, "__name__", None) if inspect.isclass(annotation) else None
    text = text or str(annotation).replace("typing.", "").replace("configs.schema.", "")
    return text.replace("NoneType", "None").replace("|", "\\|")


def _default(field: typing.Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "-"
    value = field.default_factory() if field.default is PydanticUndefined else field.default
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{value!r}`"


def _limits(field: typing.Any) -> str:
    names = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "pattern": "matches"}
    return ", ".join(
        f"{symbol} {getattr(m, key)}"
        for m in field.metadata
        for key, symbol in names.items()
        if getattr(m, key, None) is not None
    )


def _sections(model: type[BaseModel], prefix: str) -> Iterator[str]:
    rows, nested = [], []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        section = next(iter(_models(field.annotation)), None)
        summary = (section.__doc__ or "").strip().splitlines()[0] if section else ""
        about = " ".join(filter(None, [field.description or summary, _limits(field)]))
        rows.append(f"| `{key}` | {_type(field.annotation)} | {_default(field)} | {about} |")
        for sub in _models(field.annotation):
            is_map = typing.get_origin(field.annotation) is dict
            nested.append((sub, f"{key}.<name>." if is_map else f"{key}."))
    title = prefix.rstrip(".") or "top level"
    doc = inspect.cleandoc(model.__doc__ or "")
    yield f"\n## `{title}`\n\n{doc}\n\n| key | type | default | meaning |\n|---|---|---|---|"
    yield from rows
    for sub, sub_prefix in nested:
        yield from _sections(sub, sub_prefix)


def render() -> str:
    """The whole reference as Markdown."""
    return HEADER + "\n".join(_sections(schema.ProjectConfig, "")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = cli_parser(__doc__, prog="python -m configs.reference", make="make docs")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the schema"
    )
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    text = render()
    if args.check:
        if not REFERENCE.exists() or REFERENCE.read_text() != text:
            return fail(f"{REFERENCE} is stale (configs/schema.py changed)", "make docs", code=1)
        return 0
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
