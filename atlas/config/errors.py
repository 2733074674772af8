"""Turn pydantic's validation errors into one clear message that names the key (with did-you-mean)."""

from __future__ import annotations

import difflib
import re
import typing
from types import UnionType
from typing import Any

from pydantic import BaseModel, ValidationError

from atlas.errors import AtlasError


class ConfigError(AtlasError, ValueError):
    """A config problem the user can fix; the CLI prints it and exits with code 2, no traceback."""


def _members(annotation: Any) -> list[Any]:
    """The non-None members of a union (`LoRAConfig | None` -> [LoRAConfig]); a plain annotation alone."""
    if typing.get_origin(annotation) in (typing.Union, UnionType):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _section(annotation: Any) -> type[BaseModel] | None:
    """The Section an annotation holds, also an optional one (`model.lora`), else None."""
    members = _members(annotation)
    if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
        return members[0]
    return None


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """Field names of the section at `path` (so a typo is compared with its neighbours only)."""
    current: type[BaseModel] | None = model
    for part in path:
        field = current.model_fields.get(str(part))
        current = _section(getattr(field, "annotation", None))
        if current is None:
            return []
    return list(current.model_fields)


def _user_loc(model: type[BaseModel], loc: tuple) -> tuple:
    """pydantic's error location without the union-member tags it inserts (`data.normalization.str`,
    `data.val_episodes.0.int`): the path the user wrote, so each field is named as it is in the config."""
    out: list = []
    annotation: Any = model
    for part in loc:
        members = _members(annotation) if annotation is not None else []
        if len(members) > 1:  # a union: this part is the member's tag, not a key
            annotation = None
            continue
        current = members[0] if members else None
        out.append(part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            annotation = field.annotation if field is not None else None
        elif typing.get_origin(current) in (list, tuple, dict):
            args = typing.get_args(current)
            if typing.get_origin(current) is tuple and isinstance(part, int) and args and args[-1] is not Ellipsis:
                annotation = args[part] if part < len(args) else None
            else:
                annotation = args[-1] if args else None
        else:
            annotation = None
    return tuple(out)


def _elsewhere(model: type[BaseModel], name: str, exclude: str = "") -> list[str]:
    """Sections that declare exactly `name` (a top-level `val_interval:` means `training.val_interval`,
    `data.learning_rate` means `training.learning_rate`): a stronger hint than a similar spelling."""
    found = []
    for section, field in model.model_fields.items():
        annotation = _section(field.annotation)
        if annotation is not None and section != exclude and name in annotation.model_fields:
            found.append(f"{section}.{name}")
    return found[:1]


def _names_own_path(message: str, key: str) -> bool:
    """A section's rule whose message already starts with a field below it (`training.warmup_steps=...`):
    prefixing `training: ` would name the section beside the field."""
    return re.match(rf"{re.escape(key)}\.\w", message) is not None if key else False


def describe_validation_error(err: ValidationError, model: type[BaseModel], source: str,
                              written_as: dict[str, str] | None = None) -> ConfigError:
    """One line per field at fault, naming it by the dotted path the user wrote (`written_as` maps a
    setting's canonical place to the seeds' place it was given in, `data_loading.num_workers` ->
    `memory_optimization.num_workers`); a union's alternatives are one line."""
    lines: dict[str, list[str]] = {}
    got_of: dict[str, str] = {}
    for item in err.errors():
        loc = _user_loc(model, tuple(item["loc"]))
        key = ".".join(str(p) for p in loc)
        key = next((seed + key[len(canonical):] for canonical, seed in (written_as or {}).items()
                    if key == canonical or key.startswith(canonical + ".")), key)
        if item["type"] == "extra_forbidden":
            parent, name = loc[:-1], str(loc[-1])
            candidates = _fields_at(model, parent)
            prefix = ".".join(str(p) for p in parent)
            full = [f"{prefix}.{c}" if prefix else c for c in candidates]
            guess = _elsewhere(model, name, exclude=prefix) or difflib.get_close_matches(key, full, n=1, cutoff=0.6)
            hint = f"; did you mean {guess[0]}?" if guess else (f"; valid keys here: {', '.join(candidates)}" if candidates else "")
            lines.setdefault(f"unknown key {key}{hint}", [])
        elif item["type"] == "value_error":
            message = str(item.get("ctx", {}).get("error", item["msg"]))
            lines.setdefault(message if not loc or _names_own_path(message, key) else f"{key}: {message}", [])
        else:
            got = item.get("input")
            got_of[key] = f" (got {got!r})" if not isinstance(got, dict) else ""
            lines.setdefault(key, []).append(item["msg"])
    text = []
    for head, messages in lines.items():
        if not messages:
            text.append(head)
            continue
        alternatives = [messages[0]] + [m.removeprefix("Input should be ") for m in messages[1:]]
        text.append(f"{head}: {' or '.join(dict.fromkeys(alternatives))}{got_of[head]}")
    return ConfigError(f"invalid config {source}:\n  " + "\n  ".join(text))
