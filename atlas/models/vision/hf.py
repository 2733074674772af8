"""`hf`: any transformers vision model from a local folder (CLIP/SigLIP take their `vision_model`), its
patch tokens from the last hidden state (what RDT feeds its image adaptor). Pixels are normalized with the
folder's own image processor statistics (`preprocessor_config.json`: SigLIP's mean = std = 0.5) where it
has them, else ImageNet's."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from atlas.models.vision.backbone import Backbone


class HFVision(Backbone):
    def __init__(self, path: str | None, image_size: int | None = None, frozen: bool = True, load_weights: bool = True):
        from atlas.models.hf_folder import open_hf_folder
        from atlas.models.language.text import require_transformers

        transformers = require_transformers(f"model.vision.path={path}")

        def load(folder: str):
            config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
            if load_weights:
                return config, transformers.AutoModel.from_pretrained(folder, local_files_only=True)
            return config, transformers.AutoModel.from_config(config)

        config, model = open_hf_folder("model.vision.path", path, load)
        vision_config = getattr(config, "vision_config", config)
        native = getattr(vision_config, "image_size", None)
        super().__init__(image_size or native, frozen)
        self.model = getattr(model, "vision_model", model)
        self.patch_size = int(getattr(vision_config, "patch_size", 16))
        self.out_dim = int(vision_config.hidden_size)
        self._use_processor_statistics(Path(path) / "preprocessor_config.json")
        self.freeze_if_configured()

    def _use_processor_statistics(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            mean, std = [float(x) for x in data["image_mean"]], [float(x) for x in data["image_std"]]
        except (OSError, ValueError, KeyError, TypeError):
            return  # no processor config: ImageNet statistics
        if len(mean) == 3 and len(std) == 3:
            self.pixel_mean.copy_(torch.tensor(mean).view(1, 3, 1, 1))
            self.pixel_std.copy_(torch.tensor(std).view(1, 3, 1, 1))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        b, f = images.shape[:2]
        x = images.flatten(0, 1)
        hidden = self.model(pixel_values=x).last_hidden_state
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        hidden = hidden[:, -h * w :]  # drop CLS/register tokens if the model has them
        return hidden.reshape(b, f, h * w, -1), (h, w)
