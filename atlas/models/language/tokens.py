"""Per-token instruction encoders (what RDT conditions on): list[str] → tokens [B, L, D] and a mask [B, L]
(True = a real token), instead of the one pooled vector AtlasPolicy's encoders give.

- `hf` / `minilm`: a local transformers text model's last hidden states (a T5 folder runs its encoder
  only, as RDT's T5Embedder does); frozen, each instruction's tokens are computed once and cached.
- `precomputed`: RDT's saved embeddings, a folder of `.pt` files (`torch.load(weights_only=True)`):
  scripts/encode_lang.py's `{"name", "instruction", "embeddings" [1, L, D]}` (found by the instruction
  text), or encode_lang_batch.py's bare `[L, D]` tensors (found by file name: the instruction is the
  file's name or path, as RDT's HDF5 episodes store it).
- `task_embedding`: one learned token per task (the cheapest; tests and CPU runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from atlas.config.errors import ConfigError
from atlas.data.episodes import DatasetMeta
from atlas.models.language.config import LanguageConfig
from atlas.registry import registrar

Tokens = tuple[torch.Tensor, torch.Tensor]
Builder = Callable[[LanguageConfig, DatasetMeta, bool, int], nn.Module]
TOKEN_ENCODERS: dict[str, Builder] = {}
register_token_encoder = registrar(TOKEN_ENCODERS)


def pad_tokens(items: list[torch.Tensor]) -> Tokens:
    """[L_i, D] tensors → [B, max L, D] zero-padded and the [B, max L] mask of real tokens."""
    length = max(t.shape[0] for t in items)
    out = items[0].new_zeros(len(items), length, items[0].shape[-1])
    mask = torch.zeros(len(items), length, dtype=torch.bool, device=items[0].device)
    for i, t in enumerate(items):
        out[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return out, mask


class CachedTokens(nn.Module):
    """Frozen encoders: each instruction's tokens once, kept in a plain dict (never in the state dict)."""

    frozen = True

    def __init__(self) -> None:
        super().__init__()
        self._cache: dict[str, torch.Tensor] = {}

    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, instructions: list[str], task_index: torch.Tensor | None = None) -> Tokens:
        if not self.frozen:
            return pad_tokens(self.encode(list(instructions)))
        missing = sorted({s for s in instructions if s not in self._cache})
        if missing:
            with torch.no_grad():
                for text, tokens in zip(missing, self.encode(missing)):
                    self._cache[text] = tokens.detach()
        return pad_tokens([self._cache[s] for s in instructions])

    def _apply(self, fn, recurse: bool = True):
        self._cache.clear()  # moved or cast: recompute on the new device/dtype
        return super()._apply(fn, recurse)


class TokenTextEncoder(CachedTokens):
    """`path=None` (planning without MiniLM's package): MiniLM's shape, random weights, every instruction
    `max_length` tokens (atlas/models/language/text.py's shape-only stand-in)."""

    def __init__(self, path: str | None, freeze: bool, max_length: int, load_weights: bool = True) -> None:
        super().__init__()
        from atlas.models.language.text import MINILM_SHAPE, load_text_model, require_transformers

        if path is None:
            transformers = require_transformers("model.language.name=minilm")
            self.tokenizer = None
            self.model = transformers.AutoModel.from_config(transformers.BertConfig(**MINILM_SHAPE))
        else:
            self.tokenizer, self.model = load_text_model(path, load_weights)
        self.out_dim = int(getattr(self.model.config, "d_model", None) or self.model.config.hidden_size)
        self.frozen = freeze
        self.max_length = max_length
        if freeze:
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> TokenTextEncoder:
        return super().train(mode and not self.frozen)

    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        """Each text's real tokens [L_i, D]; the lengths come from the tokenizer's Python lists, so no step
        depends on tensor values (the planner runs this under FakeTensorMode)."""
        device = next(self.model.parameters()).device
        if self.tokenizer is None:
            enc = {"input_ids": [[1] * self.max_length] * len(texts), "attention_mask": [[1] * self.max_length] * len(texts)}
        else:
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length)
        ids = torch.tensor(enc["input_ids"], dtype=torch.long, device=device)
        attention = torch.tensor(enc["attention_mask"], dtype=torch.long, device=device)
        hidden = self.model(input_ids=ids, attention_mask=attention).last_hidden_state
        spans = [(row.index(1), len(row) - row[::-1].index(1)) for row in enc["attention_mask"]]
        return [hidden[i, start:end] for i, (start, end) in enumerate(spans)]


class PrecomputedTokens(CachedTokens):
    def __init__(self, folder: str | None, max_length: int, load_weights: bool = True, dim: int | None = None) -> None:
        super().__init__()
        if not folder or not Path(folder).is_dir():
            raise ConfigError(f"model.language.path: {folder!r} is not a folder of RDT's precomputed .pt embeddings")
        self.folder = Path(folder)
        self.max_length = max_length
        self._by_text: dict[str, Path] = {}
        self._files = sorted(self.folder.glob("*.pt"))
        if not self._files:
            raise ConfigError(f"model.language.path: {self.folder} has no .pt embedding files")
        first = self._read(self._files[0])
        self.out_dim = int(first.shape[-1])
        self.register_buffer("_device_probe", torch.zeros(0), persistent=False)
        for path in self._files:
            text = self._instruction(path)
            self._by_text[path.name] = self._by_text[path.stem] = self._by_text[str(path)] = path
            if text is not None:
                self._by_text[text] = path

    def _load(self, path: Path):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - a damaged or unsafe file, named
            raise ConfigError(f"{path}: not a readable embeddings file ({type(err).__name__})") from None

    def _instruction(self, path: Path) -> str | None:
        data = self._load(path)
        return str(data["instruction"]) if isinstance(data, dict) and "instruction" in data else None

    def _read(self, path: Path) -> torch.Tensor:
        data = self._load(path)
        tensor = data.get("embeddings") if isinstance(data, dict) else data
        if not isinstance(tensor, torch.Tensor) or tensor.dim() not in (2, 3):
            raise ConfigError(f"{path}: expected `embeddings` [1, L, D] or a tensor [L, D] (RDT's encode_lang scripts)")
        return tensor.reshape(-1, tensor.shape[-1])[: self.max_length].float()

    def encode(self, texts: list[str]) -> list[torch.Tensor]:
        out = []
        for text in texts:
            path = self._by_text.get(text) or self._by_text.get(Path(text).name)
            if path is None:
                raise ConfigError(f"model.language.path: no embedding in {self.folder} for instruction {text!r} "
                                  f"(encode it with RDT's scripts/encode_lang.py)")
            out.append(self._read(path).to(self._device_probe.device))
        return out


class TaskToken(nn.Module):
    """One learned token per task (AtlasPolicy's task embedding, as a sequence of length 1)."""

    def __init__(self, cfg: LanguageConfig, meta: DatasetMeta) -> None:
        super().__init__()
        from atlas.models.language.task import TaskEmbedding

        self.embedding = TaskEmbedding(meta.tasks, meta.instructions, cfg.dim)
        self.out_dim = cfg.dim

    def forward(self, instructions: list[str], task_index: torch.Tensor | None = None) -> Tokens:
        tokens = self.embedding(instructions, task_index).unsqueeze(1)
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


@register_token_encoder("task_embedding")
def _task(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool, max_length: int) -> nn.Module:
    return TaskToken(cfg, meta)


@register_token_encoder("minilm")
def _minilm(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool, max_length: int) -> nn.Module:
    from atlas.models.language.text import minilm_path

    return TokenTextEncoder(minilm_path(required=load_weights), cfg.freeze, max_length, load_weights)


@register_token_encoder("hf")
def _hf(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool, max_length: int) -> nn.Module:
    if not cfg.path:
        raise ConfigError("model.language.path: the hf encoder needs a local folder of a transformers model (e.g. T5)")
    return TokenTextEncoder(cfg.path, cfg.freeze, max_length, load_weights)


@register_token_encoder("precomputed")
def _precomputed(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool, max_length: int) -> nn.Module:
    return PrecomputedTokens(cfg.path, max_length, load_weights)


def build_token_encoder(cfg: LanguageConfig, meta: DatasetMeta, load_weights: bool, max_length: int) -> nn.Module:
    if cfg.name not in TOKEN_ENCODERS:
        raise ConfigError(f"model.language.name: {cfg.name!r} gives no language tokens for the rdt policy; valid: "
                          f"{', '.join(sorted(TOKEN_ENCODERS))}")
    return TOKEN_ENCODERS[cfg.name](cfg, meta, load_weights, min(cfg.max_length, max_length))
