"""Turn pydantic's validation errors into one clear message that names the key (with did-you-mean)."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError

from atlas.errors import AtlasError


class ConfigError(AtlasError, ValueError):
    """A config problem the user can fix; the CLI prints it and exits with code 2, no traceback."""


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """Field names of the section at `path` (so a typo is compared with its neighbours only)."""
    current: type[BaseModel] = model
    for part in path:
        field = current.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(current.model_fields)


def _elsewhere(model: type[BaseModel], name: str) -> list[str]:
    """Sections that declare `name` (a top-level `val_interval:` means `training.val_interval`)."""
    found = []
    for section, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and name in annotation.model_fields:
            found.append(f"{section}.{name}")
    return found[:1]


def describe_validation_error(err: ValidationError, model: type[BaseModel], source: str) -> ConfigError:
    lines = []
    for item in err.errors():
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc)
        if item["type"] == "extra_forbidden":
            parent, name = loc[:-1], str(loc[-1])
            candidates = _fields_at(model, parent)
            prefix = ".".join(str(p) for p in parent)
            full = [f"{prefix}.{c}" if prefix else c for c in candidates]
            guess = difflib.get_close_matches(key, full, n=1, cutoff=0.6) or _elsewhere(model, name)
            hint = f"; did you mean {guess[0]}?" if guess else (f"; valid keys here: {', '.join(candidates)}" if candidates else "")
            lines.append(f"unknown key {key}{hint}")
        elif item["type"] == "value_error" and not loc:
            lines.append(str(item.get("ctx", {}).get("error", item["msg"])))
        elif item["type"] == "value_error":
            lines.append(f"{key}: {item.get('ctx', {}).get('error', item['msg'])}")
        else:
            got = item.get("input")
            shown = f" (got {got!r})" if not isinstance(got, dict) else ""
            lines.append(f"{key}: {item['msg']}{shown}")
    return ConfigError(f"invalid config {source}:\n  " + "\n  ".join(lines))
