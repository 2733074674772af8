"""ALOHA / RDT fine-tuning layout: a folder (of task folders) of per-episode HDF5 files with `/action`,
`/observations/qpos` and `/observations/images/<camera>` as uint8 frames or JPEG byte strings.

Task: file attr `task`, else the episode's folder name. Instruction: file attr `instruction`, else
`instructions.json` or `expanded_instruction_gpt-4-turbo.json` beside the episode, else the task name.
"""

from __future__ import annotations

import json
import os

import h5py

from atlas.data.checks import BadEpisodes, episode_problem
from atlas.data.config import DataConfig
from atlas.data.errors import DataError, where
from atlas.data.hdf5source import EpisodeRef, HDF5Source, KeyLayout, find_files, open_file, text_attr
from atlas.data.registry import register_format

INSTRUCTION_FILES = ("instructions.json", "expanded_instruction_gpt-4-turbo.json")


def _pick(value: object, stem: str) -> str | None:
    """The instruction inside a JSON file's content: a string, a list's first entry, or a known key."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        return _pick(value[0], stem) if value else None
    if isinstance(value, dict):
        for key in (stem, "instruction", "instructions", "language_instruction", "expanded_instruction"):
            if key in value:
                return _pick(value[key], stem)
    return None


def folder_instruction(folder: str, stem: str, cache: dict[str, str | None]) -> str | None:
    if folder not in cache:
        cache[folder] = None
        for name in INSTRUCTION_FILES:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                try:
                    content = json.loads(open(path, encoding="utf-8").read())
                except (OSError, json.JSONDecodeError) as err:
                    raise DataError(f"{path}: not readable JSON: {err}") from None
                if isinstance(content, dict) and stem in content:
                    return _pick(content[stem], stem)
                cache[folder] = _pick(content, stem)
                break
    return cache[folder]


def choose_layout(handle: h5py.File, cfg: DataConfig, path: str) -> KeyLayout:
    images = handle.get("observations/images")
    cameras = sorted(images) if isinstance(images, h5py.Group) else []
    if cfg.image_keys is not None:
        for cam in cfg.image_keys:
            if cam not in cameras:
                raise DataError(f"{where(path, key='observations/images/' + cam)}: missing; cameras in the file: {', '.join(cameras) or '(none)'}")
        cameras = list(cfg.image_keys)
    state = [f"observations/{k}" for k in (cfg.obs_keys or ["qpos"])]
    return KeyLayout(state=state, action=cfg.action_key or "action", images={c: f"observations/images/{c}" for c in cameras})


@register_format("aloha")
def build_aloha(cfg: DataConfig, seed: int) -> HDF5Source:
    files = find_files(cfg.path or "")
    root = cfg.path if os.path.isdir(cfg.path or "") else os.path.dirname(files[0])
    layout: KeyLayout | None = None
    episodes: list[EpisodeRef] = []
    bad = BadEpisodes(cfg.skip_bad_episodes)
    cache: dict[str, str | None] = {}
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        folder = os.path.dirname(path)
        name = os.path.splitext(os.path.relpath(path, root))[0]
        with open_file(path) as handle:
            if layout is None:
                layout = choose_layout(handle, cfg, path)
            length, problem = episode_problem(handle, layout, path, name, bad.widths)
            if problem:
                bad.report(problem)
                continue
            task = text_attr(handle.attrs.get("task")) or os.path.basename(folder)
            instruction = text_attr(handle.attrs.get("instruction")) or folder_instruction(folder, stem, cache)
            episodes.append(EpisodeRef(path, "", name, length, task, instruction or task.replace("_", " ")))
    if not episodes or layout is None:
        raise DataError(f"{cfg.path}: empty dataset, no usable episodes ({len(bad.skipped)} skipped as bad)")
    source = HDF5Source(episodes, layout)
    source.notes += bad.log_lines()
    return source
