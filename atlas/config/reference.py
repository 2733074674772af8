"""Generate the README's config reference from the schema (`python -m atlas.config.reference`).

The README holds the output between two markers; a test fails when they drift apart, so the reference
is never hand-written.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from atlas.config.schema import AtlasConfig

BEGIN = "<!-- config-reference:begin -->"
END = "<!-- config-reference:end -->"


def _type_name(annotation) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    return text.replace("typing.", "").replace("NoneType", "None").replace("|", "\\|")


def _is_section(annotation) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _optional_section(annotation) -> type[BaseModel] | None:
    """The section of an optional one (`lora: LoRAConfig | None`): its own row, then its fields' rows."""
    return next((a for a in typing.get_args(annotation) if _is_section(a)), None)


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows, nested = [], []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if _is_section(field.annotation):
            nested.append((field.annotation, key))
            continue
        default = field.get_default(call_default_factory=True)
        shown = f"`{default!r}`" if default is not None else "`None`"
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_type_name(field.annotation)} | {shown} | {description} |")
        if _optional_section(field.annotation) is not None:
            nested.append((_optional_section(field.annotation), key))
    for sub, key in nested:
        rows += _rows(sub, key + ".")
    return rows


def generate() -> str:
    lines = []
    for name, field in AtlasConfig.model_fields.items():
        if not _is_section(field.annotation):
            lines += [f"**`{name}`**: {field.description}", ""]
            continue
        lines += [f"#### `{name}:` {field.description}", "", "| key | type | default | what it does |",
                  "|---|---|---|---|", *_rows(field.annotation, f"{name}."), ""]
    return "\n".join(lines).rstrip() + "\n"


def replace_in(text: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + generate() + text[end:]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--write":
        readme = Path(argv[1] if len(argv) > 1 else "README.md")
        readme.write_text(replace_in(readme.read_text()))
    else:
        sys.stdout.write(generate())
    return 0


if __name__ == "__main__":
    sys.exit(main())
