"""Config of the instruction encoder: the `model.language:` block."""

from __future__ import annotations

from pydantic import Field

from atlas.config.base import Section


class LanguageConfig(Section):
    name: str = Field(
        "none", description="Encoder registry key: none, task_embedding, minilm, hf; the rdt policy takes per-token "
        "embeddings from task_embedding, minilm, hf (a T5 folder runs its encoder) or precomputed."
    )
    path: str | None = Field(
        None, description="hf: local folder of a transformers text model (never downloaded); precomputed: folder "
        "of RDT's .pt instruction embeddings (scripts/encode_lang.py)."
    )
    freeze: bool = Field(True, description="Freeze the text encoder; frozen embeddings are cached per instruction string.")
    dim: int = Field(64, gt=0, description="task_embedding: embedding size.")
    max_length: int = Field(64, gt=0, description="minilm/hf: truncate instructions to this many tokens.")
