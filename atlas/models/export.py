"""`atlas export --merge-lora RUN OUT`: a LoRA run's policy as a plain checkpoint folder.

Each weight file of the checkpoint (model.safetensors and, when present, ema/model.safetensors) gets its adapters
folded into the base weights (W + (alpha / r) B A, `merge_lora_state`), and config.json loses its `model.lora`
block, so `Policy.from_pretrained(OUT)`, `atlas eval --checkpoint OUT` and `model.pretrained: OUT` see an ordinary
policy that gives the same actions as the adapters over the base (up to float rounding).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import save_file

from atlas.config.errors import ConfigError
from atlas.engine.checkpoint import load_weights
from atlas.models.base import CONFIG_NAME, NORMALIZATION_NAME, WEIGHTS_NAME
from atlas.models.lora import merge_lora_state
from atlas.models.pretrained import resolve_source


def export_merged(run: str | Path, out: str | Path) -> Path:
    """Write OUT (refusing a non-empty folder) from RUN's checkpoint (a run's best, else latest)."""
    source = resolve_source(run, "best", "raw")
    folder, out = source.directory, Path(out)
    if source.kind not in ("atlas-run", "atlas-checkpoint"):
        raise ConfigError(f"atlas export: {run} is not an Atlas run or checkpoint folder")
    config = json.loads((folder / CONFIG_NAME).read_text())
    lora = config["model"].get("lora")
    if not lora:
        raise ConfigError(f"atlas export --merge-lora: {folder / CONFIG_NAME} has no model.lora (nothing to merge)")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"atlas export: {out} is not empty; choose a new folder")
    for rel in (WEIGHTS_NAME, f"ema/{WEIGHTS_NAME}"):
        if (folder / rel).is_file():
            merged = merge_lora_state(load_weights(folder / rel), float(lora["alpha"]))
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            save_file({k: v.contiguous() for k, v in merged.items()}, str(out / rel))
    config["model"]["lora"] = None
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    shutil.copyfile(folder / NORMALIZATION_NAME, out / NORMALIZATION_NAME)
    if (folder / "config.yaml").is_file():  # the run's config: `atlas eval` reads its eval/data settings
        shutil.copyfile(folder / "config.yaml", out / "config.yaml")
    return folder


def command(args: argparse.Namespace) -> int:
    folder = export_merged(args.run, args.out)
    print(f"atlas export: {folder} with LoRA merged -> {args.out}")
    return 0
