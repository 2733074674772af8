"""The RDT denoiser (models/rdt/model.py): [timestep, control frequency, state, noisy actions] tokens
plus trainable position tables initialised with RDT's sin-cos embeddings, `depth` blocks that
cross-attend to the language tokens (even blocks, with the language mask) and the image tokens (odd
blocks), and a final RMSNorm + MLP read out at the action tokens. Initialisation as RDT's: Xavier
linears, N(0, 0.02) embedder MLPs, a zero final projection."""

from __future__ import annotations

import torch
from torch import nn

from atlas.models.layers import maybe_checkpoint
from atlas.models.rdt.blocks import FinalLayer, RDTBlock, TimestepEmbedder
from atlas.models.rdt.pos_embed import condition_table, input_table
from atlas.models.rdt.shape import RDTShape


class RDTTransformer(nn.Module):
    def __init__(self, shape: RDTShape) -> None:
        super().__init__()
        hidden = shape.hidden_size
        self.shape = shape
        self.horizon = shape.pred_horizon
        self.t_embedder = TimestepEmbedder(hidden)
        self.freq_embedder = TimestepEmbedder(hidden)
        self.x_pos_embed = nn.Parameter(torch.zeros(1, shape.pred_horizon + 3, hidden))
        self.lang_cond_pos_embed = nn.Parameter(torch.zeros(1, shape.max_lang_cond_len, hidden))
        self.img_cond_pos_embed = nn.Parameter(torch.zeros(1, shape.img_cond_len, hidden))
        self.blocks = nn.ModuleList(RDTBlock(hidden, shape.num_heads) for _ in range(shape.depth))
        self.final_layer = FinalLayer(hidden, shape.action_dim)
        self.gradient_checkpointing = False
        if not self.x_pos_embed.is_meta:
            self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        s = self.shape
        self.x_pos_embed.copy_(input_table(s.hidden_size, s.pred_horizon).unsqueeze(0))
        self.lang_cond_pos_embed.copy_(
            condition_table(s.hidden_size, s.max_lang_cond_len, s.lang_pos_embed_config).unsqueeze(0))
        self.img_cond_pos_embed.copy_(condition_table(s.hidden_size, s.img_cond_len, s.img_pos_embed_config).unsqueeze(0))
        for embedder in (self.t_embedder, self.freq_embedder):
            nn.init.normal_(embedder.mlp[0].weight, std=0.02)
            nn.init.normal_(embedder.mlp[2].weight, std=0.02)
        nn.init.zeros_(self.final_layer.ffn_final.fc2.weight)
        nn.init.zeros_(self.final_layer.ffn_final.fc2.bias)

    def forward(self, x: torch.Tensor, freq: torch.Tensor, t: torch.Tensor, lang_c: torch.Tensor,
                img_c: torch.Tensor, lang_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, 1+H, W] (adapted state and actions), freq [B], t [B] or [1], conditions [B, L, W] → [B, H, out]."""
        b = x.shape[0]
        t_tok = self.t_embedder(t.reshape(-1)).unsqueeze(1).to(x.dtype).expand(b, -1, -1)
        f_tok = self.freq_embedder(freq.reshape(-1)).unsqueeze(1).to(x.dtype).expand(b, -1, -1)
        x = torch.cat([t_tok, f_tok, x], dim=1) + self.x_pos_embed.to(x.dtype)
        lang_c = lang_c + self.lang_cond_pos_embed[:, : lang_c.shape[1]].to(lang_c.dtype)
        img_c = img_c + self.img_cond_pos_embed.to(img_c.dtype)
        conditions = ((lang_c, lang_mask), (img_c, None))
        for i, block in enumerate(self.blocks):
            context, mask = conditions[i % 2]
            x = maybe_checkpoint(block, x, context, mask, enabled=self.gradient_checkpointing and self.training)
        return self.final_layer(x)[:, -self.horizon :]
