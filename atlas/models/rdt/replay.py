"""`python -m atlas.models.rdt.replay CHECKPOINT_DIR INPUTS.safetensors OUT.safetensors`

Loads an RDT release folder into Atlas's RDT network (every tensor must match: none missing, none
unexpected) and writes, for the inputs RDT's own code takes (`lang_tokens`, `lang_mask`, `img_tokens`,
`state_tokens`, `action_mask`, `ctrl_freqs`, `noisy_action`, `timesteps`, `initial_noise`):
  pred     the denoiser's output for `noisy_action` at `timesteps` (as RDTRunner.compute_loss runs it)
  actions  RDTRunner.predict_action's chunk when its initial noise is `initial_noise`
in float32 on the CPU. Bad input is one line naming the file and what was expected (exit 2, or 1 for
unreadable weights).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from atlas.errors import AtlasError

INPUT_NAMES = ("lang_tokens", "lang_mask", "img_tokens", "state_tokens", "action_mask", "ctrl_freqs",
               "noisy_action", "timesteps", "initial_noise")


def load_runner(folder: str | Path):
    """An RDTRunner with the release's weights, strictly (no missing, no unexpected tensors)."""
    from atlas.engine.checkpoint import CheckpointError
    from atlas.models.rdt.release import load_release_state_dict, read_release_config, weights_file
    from atlas.models.rdt.runner import RDTRunner

    runner = RDTRunner(read_release_config(folder))
    state = load_release_state_dict(folder)
    result = runner.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{weights_file(folder)}: does not match its config.json: missing "
                              f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}")
    return runner.float().eval()


def replay(runner, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """{"pred", "actions"} for the fixture's inputs (see the module docstring)."""
    f = {k: v.float() if v.is_floating_point() else v for k, v in inputs.items()}
    with torch.no_grad():
        conditions = runner.condition(f["lang_tokens"], f["lang_mask"], f["img_tokens"], f["state_tokens"],
                                      f["action_mask"], f["ctrl_freqs"])
        pred = runner.denoise(conditions, f["noisy_action"], f["timesteps"])
        actions = runner.sample_chunk(conditions, f["initial_noise"])
    return {"pred": pred.contiguous(), "actions": actions.contiguous()}


def read_inputs(path: str | Path) -> dict[str, torch.Tensor]:
    from atlas.config.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: inputs file does not exist")
    try:
        from safetensors.torch import load_file

        inputs = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - a damaged file, named
        raise ConfigError(f"{path}: not a readable safetensors file ({type(err).__name__})") from None
    missing = [n for n in INPUT_NAMES if n not in inputs]
    if missing:
        raise ConfigError(f"{path}: missing input tensors {', '.join(missing)} (expected {', '.join(INPUT_NAMES)})")
    return inputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m atlas.models.rdt.replay", description=__doc__.split("\n\n")[1])
    parser.add_argument("checkpoint_dir", help="RDT release folder: config.json + pytorch_model.bin or model.safetensors")
    parser.add_argument("inputs", help="safetensors file with RDT's inputs")
    parser.add_argument("out", help="safetensors file to write pred and actions to")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        runner = load_runner(args.checkpoint_dir)
        out = replay(runner, read_inputs(args.inputs))
        from safetensors.torch import save_file

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        save_file(out, args.out)
    except AtlasError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    print(f"wrote pred {tuple(out['pred'].shape)} and actions {tuple(out['actions'].shape)} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
