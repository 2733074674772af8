"""Load a backbone's `model.vision.weights` file so that a wrong file is an error, not a random model.

`load_state_dict(strict=False)` of a file whose names match nothing loads nothing and says nothing; here
a file matching no tensor, or matching with the wrong shapes, is a ConfigError naming it, and a partial
match is logged with what was left at random initialisation.
"""

from __future__ import annotations

import logging

from torch import nn

from atlas.config.errors import ConfigError


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    from atlas.engine.checkpoint import CheckpointError, load_weights

    try:
        state = load_weights(path)
    except CheckpointError as err:
        raise ConfigError(f"model.vision.weights: {err}") from None
    mine = backbone.state_dict()
    matched = [k for k in state if k in mine]
    if not matched:
        raise ConfigError(
            f"model.vision.weights: {path} has {len(state)} tensors and none matches a name of the backbone "
            f"(e.g. file: {next(iter(state), '(empty)')}, backbone: {next(iter(mine))}); it is weights of another model"
        )
    wrong = [f"{k}: {list(state[k].shape)} in the file, {list(mine[k].shape)} in the backbone"
             for k in matched if state[k].shape != mine[k].shape]
    if wrong:
        raise ConfigError(f"model.vision.weights: {path} does not fit the configured backbone ({len(wrong)} tensors "
                          f"differ, e.g. {wrong[0]}); check model.vision.size/width/depth/patch_size")
    backbone.load_state_dict({k: state[k] for k in matched}, strict=False)
    left = [k for k in mine if k not in state]
    if left:
        logging.getLogger("atlas").warning(
            f"model.vision.weights: {path} loaded {len(matched)} of {len(mine)} backbone tensors; "
            f"{len(left)} stay randomly initialised (e.g. {left[0]}); {len(state) - len(matched)} in the file unused")
