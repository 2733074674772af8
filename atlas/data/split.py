"""Validation split by episode, stable across runs: episodes are ranked by a hash of their name
(`file_stem/demo_3`), not by the seed or the file order, so the same episodes stay held out when the
seed changes or files are added. The split is per task, so every task with 2+ episodes is validated."""

from __future__ import annotations

import hashlib

from atlas.data.errors import DataError


def _rank(name: str) -> str:
    return hashlib.sha1(f"atlas-val:{name}".encode()).hexdigest()


def resolve_episodes(wanted: list[int | str], names: list[str]) -> list[int]:
    """`data.val_episodes` entries (index, full name, or a name's unique last part) → episode indices."""
    out = []
    for item in wanted:
        if isinstance(item, int):
            if not 0 <= item < len(names):
                raise DataError(f"data.val_episodes: episode index {item} out of range [0, {len(names)})")
            out.append(item)
            continue
        matches = [i for i, n in enumerate(names) if n == item] or [
            i for i, n in enumerate(names) if n.rsplit("/", 1)[-1] == item
        ]
        if len(matches) != 1:
            what = "matches no episode" if not matches else f"is ambiguous ({len(matches)} episodes)"
            raise DataError(f"data.val_episodes: {item!r} {what}; episodes are named like {names[0]!r}")
        out.append(matches[0])
    return sorted(set(out))


def split_by_name(
    names: list[str], tasks: list[str], selected: list[int], val_ratio: float, val_episodes: list[int | str] | None
) -> tuple[list[int], list[int]]:
    """(train, val) episode indices among `selected`."""
    if val_episodes is not None:
        val = resolve_episodes(val_episodes, names)
        outside = [names[i] for i in val if i not in set(selected)]
        if outside:
            raise DataError(f"data.val_episodes: {outside} are not among the trained tasks' episodes")
        return [i for i in selected if i not in set(val)], val
    val: list[int] = []
    for task in sorted({tasks[i] for i in selected}):
        mine = sorted((i for i in selected if tasks[i] == task), key=lambda i: _rank(names[i]))
        n_val = int(round(len(mine) * val_ratio))
        if val_ratio > 0 and n_val == 0 and len(mine) > 1:
            n_val = 1
        val += mine[: min(n_val, len(mine) - 1)]
    val = sorted(val)
    return [i for i in selected if i not in set(val)], val
