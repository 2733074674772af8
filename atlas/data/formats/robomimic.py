"""robomimic / LIBERO / Atlas Meta-World layout: one HDF5 per task file with
`data/demo_<i>/{actions, obs/<key>, dones?}`; a folder of such files is several tasks.

Task: per-demo attr `task`, else the file stem. Instruction: per-demo attr `language_instruction`, else
`problem_info` (JSON with `language_instruction`, on the file or on `data`), else the task name.

LIBERO's own files (`data` attributes `problem_info`/`bddl_file_name` and an `agentview_rgb` camera) are
recognised, or forced with `data.format: libero`: their frames are read upright, their state is the 8-d
state the LIBERO env gives and their task is the benchmark's task name (the stem less `_demo`), all as
defined in `libero_spec`, so a policy trained on them evaluates with `--env libero` and no flags.
"""

from __future__ import annotations

import json
import os
import re

import h5py

from atlas.data.checks import BadEpisodes, episode_problem
from atlas.data.config import DataConfig
from atlas.data.errors import DataError, where
from atlas.data.formats import libero_spec
from atlas.data.hdf5source import (
    EpisodeRef,
    HDF5Source,
    KeyLayout,
    find_files,
    list_keys,
    open_file,
    text_attr,
)
from atlas.data.registry import register_format

IMAGE_SUFFIXES = ("_image", "_rgb")


def camera_name(key: str) -> str:
    """`corner2_image` → `corner2`, `agentview_rgb` → `agentview`."""
    for suffix in IMAGE_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)]
    return key


def _demo_order(name: str) -> tuple[int, str]:
    match = re.search(r"(\d+)$", name)
    return (int(match.group(1)) if match else -1, name)


def _file_instruction(handle: h5py.File) -> str | None:
    for attrs in (handle.attrs, handle["data"].attrs):
        raw = text_attr(attrs.get("problem_info"))
        if raw:
            try:
                info = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(info, dict) and info.get("language_instruction"):
                text = info["language_instruction"]
                return " ".join(text) if isinstance(text, list) else str(text)
        text = text_attr(attrs.get("language_instruction"))
        if text:
            return text
    return None


def choose_layout(obs: h5py.Group, cfg: DataConfig, path: str, episode: str, libero: bool = False) -> KeyLayout:
    """Default keys: uint8 ndim-4 obs are cameras, the rest (sorted) is the state; config overrides both.

    For a LIBERO file the defaults are LIBERO's two cameras and its 8-d state (when the file has them).
    """
    have = sorted(k for k in obs if isinstance(obs[k], h5py.Dataset))

    def check(keys: list[str]) -> None:
        for key in keys:
            if key not in have:
                raise DataError(f"{where(path, episode, 'obs/' + key)}: missing; obs has: {', '.join(have) or '(none)'}")

    libero_cameras = [key for key, _ in libero_spec.CAMERAS.values()]
    if cfg.image_keys is not None:
        check(cfg.image_keys)
        image_keys = list(cfg.image_keys)
    elif libero:
        check(libero_cameras)
        image_keys = libero_cameras
    else:
        image_keys = [k for k in have if obs[k].ndim == 4 and obs[k].shape[-1] == 3 and obs[k].dtype.kind in "uf"]
    if cfg.obs_keys is not None:
        check(cfg.obs_keys)
        state_keys = list(cfg.obs_keys)
    elif libero and libero_spec.state_keys(have):
        state_keys = libero_spec.state_keys(have)
    else:
        state_keys = [k for k in have if k not in image_keys and obs[k].dtype.kind in "fiub" and obs[k].ndim <= 2]
    if not state_keys:
        raise DataError(f"{where(path, episode, 'obs')}: no state keys found (obs has: {', '.join(have)}); set data.obs_keys")
    cameras = {camera_name(k): f"obs/{k}" for k in image_keys}
    return KeyLayout(state=[f"obs/{k}" for k in state_keys], action=cfg.action_key or "actions", images=cameras,
                     upside_down=libero)


def _is_libero(data: h5py.Group, obs: h5py.Group) -> bool:
    return libero_spec.is_libero_file(data.attrs, [k for k in obs if isinstance(obs[k], h5py.Dataset)])


@register_format("libero")
def build_libero(cfg: DataConfig, seed: int) -> HDF5Source:
    """LIBERO's demonstration files, read with LIBERO's conventions whatever their attributes say."""
    return build_robomimic(cfg, seed, libero=True)


@register_format("robomimic")
def build_robomimic(cfg: DataConfig, seed: int, libero: bool | None = None) -> HDF5Source:
    """`libero`: None recognises LIBERO's files by their attributes; True/False forces either reading."""
    files = find_files(cfg.path or "")
    layout: KeyLayout | None = None
    episodes: list[EpisodeRef] = []
    bad = BadEpisodes(cfg.skip_bad_episodes)
    env_args: dict[str, str] = {}
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        with open_file(path) as handle:
            data = handle.get("data")
            if not isinstance(data, h5py.Group):
                raise DataError(f"{path}: no 'data' group, not a robomimic/LIBERO file; the file has: {', '.join(list_keys(handle)[:20])}")
            demos = sorted((k for k in data if isinstance(data[k], h5py.Group)), key=_demo_order)
            if not demos:
                raise DataError(f"{where(path, key='data')}: empty dataset, no demo_<i> groups")
            if "env_args" in data.attrs:
                env_args[path] = text_attr(data.attrs["env_args"]) or ""
            file_instruction = _file_instruction(handle)
            for demo in demos:
                group = data[demo]
                name = f"{stem}/{demo}"
                if layout is None:
                    obs = group.get("obs")
                    if not isinstance(obs, h5py.Group):
                        raise DataError(f"{where(path, demo, 'obs')}: missing; the episode has: {', '.join(list_keys(group))}")
                    libero = _is_libero(data, obs) if libero is None else libero
                    layout = choose_layout(obs, cfg, path, demo, libero)
                length, problem = episode_problem(group, layout, path, demo, bad.widths)
                if problem:
                    bad.report(problem)
                    continue
                task = text_attr(group.attrs.get("task")) or (libero_spec.task_name(stem) if libero else stem)
                instruction = text_attr(group.attrs.get("language_instruction")) or file_instruction
                episodes.append(EpisodeRef(path, f"data/{demo}", name, length, task, instruction or task.replace("_", " ")))
    if not episodes or layout is None:
        raise DataError(f"{cfg.path}: empty dataset, no usable episodes ({len(bad.skipped)} skipped as bad)")
    source = HDF5Source(episodes, layout, {"env_args": env_args})
    source.notes += bad.log_lines()
    return source
