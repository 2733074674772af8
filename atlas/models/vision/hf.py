"""`hf`: any transformers vision model from a local folder (CLIP/SigLIP take their `vision_model`)."""

from __future__ import annotations

import torch

from atlas.models.vision.backbone import Backbone


class HFVision(Backbone):
    def __init__(self, path: str | None, image_size: int | None = None, frozen: bool = True, load_weights: bool = True):
        from transformers import AutoConfig, AutoModel

        from atlas.models.hf_folder import open_hf_folder

        def load(folder: str):
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True) if load_weights else AutoModel.from_config(config)
            return config, model

        config, model = open_hf_folder("model.vision.path", path, load)
        vision_config = getattr(config, "vision_config", config)
        native = getattr(vision_config, "image_size", None)
        super().__init__(image_size or native, frozen)
        self.model = getattr(model, "vision_model", model)
        self.patch_size = int(getattr(vision_config, "patch_size", 16))
        self.out_dim = int(vision_config.hidden_size)
        self.freeze_if_configured()

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        b, f = images.shape[:2]
        x = images.flatten(0, 1)
        hidden = self.model(pixel_values=x).last_hidden_state
        h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        hidden = hidden[:, -h * w :]  # drop CLS/register tokens if the model has them
        return hidden.reshape(b, f, h * w, -1), (h, w)
