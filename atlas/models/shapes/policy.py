"""ShapePolicy: a planning-only stand-in with the parameter shapes and the forward's saved tensors of a
published VLA (pi0, pi0.5, pi0-FAST, SmolVLA, OpenVLA-7B), so `atlas doctor` and `atlas plan` can size memory
for the model a launch command really trains.

It cannot train: there are no pretrained weights, no tokenizer and no data pipeline of the original, and a
randomly initialised 3-7 B model is not a fine-tune. Building it for training raises a ConfigError naming this;
the planner builds it on the meta device or under FakeTensorMode only (`load_weights=False`).

Forward, by kind:
  flow  (pi0, pi0.5, SmolVLA): prefix [image tokens, text tokens] through the VLM stack, suffix [state token
        (pi0), action tokens] through the action-expert stack, layer by layer; the suffix attends to prefix and
        suffix, the prefix to itself (openpi's block mask, as two unmasked attentions); MSE on the velocity.
  fast  (pi0-FAST): [image tokens, prompt + state + FAST action tokens] through the VLM; cross-entropy over the
        vocabulary on the text positions.
  l1    (OpenVLA-OFT): [image tokens, prompt, proprio token, chunk x action-dim empty action tokens] through
        Llama-2 (causal), OFT's MLPResNet L1 head on the action positions.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from atlas.config.errors import ConfigError
from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.base import Policy
from atlas.models.config import ModelConfig
from atlas.models.shapes.blocks import DecoderLayer, DecoderShape, TowerShape, ViTTower, attend


@dataclass(frozen=True)
class VLAShape:
    """Everything that sets a published VLA's parameter count and activation footprint."""

    kind: str  # flow | fast | l1
    towers: tuple[TowerShape, ...]  # several towers are concatenated feature-wise (OpenVLA: DINOv2 + SigLIP)
    vlm: DecoderShape
    expert: DecoderShape | None = None
    text_tokens: int = 48  # prompt (+ state, + FAST action) tokens padded to this length
    projector: tuple[int, ...] = ()  # hidden widths of the vision projector MLP; () = one linear
    state_token: bool = False  # pi0: the state is a continuous token of the suffix
    adarms: bool = False  # pi0.5: the expert's norms are modulated by the time embedding
    cross_every: int = 0  # SmolVLA: expert layers i % n != 0 cross-attend to the VLM's keys/values
    action_dim: int = 32  # padded action size the model predicts
    state_dim: int = 32
    chunk: int | None = None  # action tokens (None: model.action_horizon)
    head_hidden: int = 0  # OFT's L1 MLPResNet width (0: a linear head)
    lm_head: bool = False  # an untied LM head is part of the checkpoint (unused by flow / L1 losses)
    frozen: tuple[str, ...] = ()  # top-level modules the tool freezes by default (SmolVLA: the VLM)
    lora_vlm: int = 0  # LoRA ranks of the -lora variant (the tool's own)
    lora_expert: int = 0
    lora_frozen: tuple[str, ...] = ()  # what the tool's LoRA recipe freezes besides the adapted bases
    # Frozen weights are bf16: openpi scripts/train.py:103-104 casts frozen params to bfloat16; OFT
    # finetune.py:837 and LeRobot smolvlm_with_expert.py:94 load the VLM with torch_dtype bfloat16.
    source: str = ""
    published: dict = field(default_factory=dict)  # {"parameters": N, "source": "..."}

    def with_lora(self) -> VLAShape:
        from dataclasses import replace

        return replace(self, frozen=self.frozen + self.lora_frozen)


class ShapePolicy(Policy):
    accepts_memory_options = True
    planning_only = True
    spec: VLAShape  # set by each registered variant (atlas/models/shapes/presets.py)
    lora: bool = False  # the tool's own LoRA recipe (ranks and what it freezes in the spec)

    def __init__(self, cfg: ModelConfig, meta: DatasetMeta, normalizer: Normalizer, gradient_checkpointing: bool = False,
                 memory_efficient_attention: bool = False, load_weights: bool = True) -> None:
        if load_weights:
            raise ConfigError(
                f"model.preset={cfg.preset} is a planning-only shape of a published model (parameter counts and "
                "memory for `atlas doctor` / `atlas plan`): it has no pretrained weights, tokenizer or the original's "
                "data pipeline, so `atlas train` cannot fine-tune it; train it with its own tool (openpi, LeRobot, "
                "OpenVLA-OFT) or pick an Atlas preset (atlas-small, atlas-base, rdt-1b)")
        super().__init__(cfg, meta, normalizer)
        lora = self.lora
        self.shape = self.spec.with_lora() if lora else self.spec
        s = self.shape
        depth = cfg.fusion.depth  # the stacks' depth (reduced by the planner's depth probes)
        vlm_rank = s.lora_vlm if lora else 0
        expert_rank = s.lora_expert if lora else 0
        # The planner probes reduced depths (model.vision.depth): every tower then takes that depth, so OpenVLA's
        # 24-layer DINOv2 is extrapolated as 27 layers like SigLIP (3 extra layers: < 1 % of its activations).
        full_vision = max(t.depth for t in s.towers)
        vision_depth = cfg.vision.depth if cfg.vision.depth not in (None, full_vision) else None
        self.towers = nn.ModuleList(ViTTower(t, min(vision_depth, t.depth) if vision_depth else None) for t in s.towers)
        feat = sum(t.out_dim for t in s.towers)
        widths = (feat, *s.projector, s.vlm.width)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers += [nn.Linear(a, b)] + ([nn.GELU()] if i < len(widths) - 2 else [])
        self.projector = nn.Sequential(*layers)
        self.embed = nn.Embedding(s.vlm.vocab, s.vlm.width)
        self.vlm = nn.ModuleList(DecoderLayer(s.vlm, vlm_rank) for _ in range(depth))
        self.vlm_norm = nn.Parameter(torch.ones(s.vlm.width))
        out_width = s.vlm.width
        if s.expert is not None:
            e = s.expert
            cond = e.width if s.adarms else 0
            kv_in = s.vlm.kv_heads * s.vlm.head_dim
            self.expert = nn.ModuleList(
                DecoderLayer(e, expert_rank, cond, kv_in if s.cross_every and i % s.cross_every else None)
                for i in range(depth))
            self.expert_norm = nn.Linear(e.width, 3 * e.width) if s.adarms else nn.Parameter(torch.ones(e.width))
            self.action_in = nn.Linear(s.action_dim, e.width)
            self.time_mlp = nn.Sequential(nn.Linear(e.width if s.adarms else 2 * e.width, e.width), nn.SiLU(),
                                          nn.Linear(e.width, e.width))
            if s.state_token:
                self.state_proj = nn.Linear(s.state_dim, e.width)
            out_width = e.width
        if s.kind == "l1":
            self.proprio = nn.Sequential(nn.Linear(s.state_dim, s.vlm.width), nn.GELU(), nn.Linear(s.vlm.width, s.vlm.width))
            h = s.head_hidden
            self.action_head = nn.ModuleDict({
                "fc1": nn.Linear(s.vlm.width * s.action_dim, h), "norm": nn.LayerNorm(h),
                "blocks": nn.ModuleList(nn.Sequential(nn.LayerNorm(h), nn.Linear(h, h), nn.ReLU()) for _ in range(2)),
                "fc2": nn.Linear(h, s.action_dim)})
        elif s.kind == "flow":
            self.action_out = nn.Linear(out_width, s.action_dim)
        if s.lm_head:
            self.lm_head = nn.Linear(s.vlm.width, s.vlm.vocab, bias=False)
        for name in s.frozen:
            getattr(self, name).requires_grad_(False)
        if lora:  # adapted bases stay frozen even inside modules the recipe trains
            for module in self.modules():
                if getattr(module, "rank", 0):
                    module.base.requires_grad_(False)
        for param in self.parameters():  # frozen weights are held in bf16, as each tool loads them
            if not param.requires_grad:
                param.data = param.data.to(torch.bfloat16)
        self.gradient_checkpointing = gradient_checkpointing
        self.set_gradient_checkpointing(gradient_checkpointing)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.gradient_checkpointing = enabled
        for tower in self.towers:
            tower.gradient_checkpointing = enabled

    # -- forward ------------------------------------------------------------------------------------
    def _image_tokens(self, batch: dict) -> torch.Tensor:
        images = batch["images"]
        b = images.shape[0]
        flat = images.reshape(-1, *images.shape[-3:])
        feats = []
        for tower in self.towers:
            size = tower.shape.image
            x = flat if flat.shape[-1] == size else F.interpolate(flat, size=(size, size))
            feats.append(tower(x.to(tower.patch.weight.dtype)))
        tokens = self.projector(torch.cat(feats, dim=-1))
        return tokens.reshape(b, -1, tokens.shape[-1])

    def _layer(self, i: int, prefix: torch.Tensor, suffix: torch.Tensor | None, cond: torch.Tensor | None,
               causal: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        vlm = self.vlm[i]
        q, k, v, gate = vlm.qkv(prefix)
        if suffix is None:
            return vlm.finish(prefix, attend(q, k, v, causal), gate), None
        # The expert reads only the VLM's keys/values: the last VLM layer's output feeds nothing, and autograd
        # frees it at once (computing it would leave freed storages in the saved-tensor census).
        last = i == len(self.vlm) - 1
        prefix_out = prefix if last else vlm.finish(prefix, attend(q, k, v, causal), gate)
        layer = self.expert[i]
        cross = self.shape.cross_every and i % self.shape.cross_every
        if cross:  # SmolVLA: the expert's keys/values are projections of the VLM's
            b, _, n, d = k.shape
            source = k.transpose(1, 2).reshape(b, n, -1)
            qs, ks, vs, gs = layer.qkv(suffix, cond, kv_source=source)
            keys, values = ks, vs
        else:
            qs, ks, vs, gs = layer.qkv(suffix, cond)
            keys, values = torch.cat([k, ks], dim=2), torch.cat([v, vs], dim=2)
        return prefix_out, layer.finish(suffix, attend(qs, keys, values), gs, cond)

    def _stack(self, prefix: torch.Tensor, suffix: torch.Tensor | None, cond: torch.Tensor | None, causal: bool):
        for i in range(len(self.vlm)):
            if self.gradient_checkpointing and self.training:
                prefix, suffix = checkpoint(self._layer, i, prefix, suffix, cond, causal, use_reentrant=False)
            else:
                prefix, suffix = self._layer(i, prefix, suffix, cond, causal)
        return prefix, suffix

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        gc.collect()  # free an earlier probe's graph now, not in the middle of this one's saved-tensor census
        device_type = batch["state"].device.type
        # The tools run these models in bf16 (frozen weights are bf16 here): autocast unless the caller already does.
        if torch.is_autocast_enabled(device_type):
            return self._forward(batch)
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return self._forward(batch)

    def _forward(self, batch: dict) -> dict[str, torch.Tensor]:
        s = self.shape
        b = batch["state"].shape[0]
        device = batch["state"].device
        image = self._image_tokens(batch) if "images" in batch else torch.zeros(b, 0, s.vlm.width, device=device)
        text = self.embed(torch.zeros(b, s.text_tokens, dtype=torch.long, device=device))
        horizon = s.chunk or self.cfg.action_horizon
        target = torch.randn(b, horizon, s.action_dim, device=device)
        if s.kind == "flow":
            return self._flow(torch.cat([image, text], dim=1), target)
        if s.kind == "fast":
            hidden, _ = self._stack(torch.cat([image, text], dim=1), None, None, causal=True)
            normed = F.rms_norm(hidden[:, -s.text_tokens:], (s.vlm.width,), self.vlm_norm.to(hidden.dtype))
            logits = normed @ self.embed.weight.T
            loss = F.cross_entropy(logits.float().flatten(0, 1), torch.zeros(logits.shape[0] * logits.shape[1],
                                                                                  dtype=torch.long, device=device))
            return {"loss": loss, "loss_sum": loss, "num_valid": torch.ones((), device=device)}
        proprio = self.proprio(torch.zeros(b, 1, s.state_dim, device=device))
        actions = torch.zeros(b, horizon * s.action_dim, s.vlm.width, device=device)
        hidden, _ = self._stack(torch.cat([image, text, proprio, actions], dim=1), None, None, causal=True)
        hidden = F.rms_norm(hidden[:, -horizon * s.action_dim:], (s.vlm.width,), self.vlm_norm.to(hidden.dtype))
        head = self.action_head
        x = head["norm"](head["fc1"](hidden.reshape(b, horizon, -1)))
        for block in head["blocks"]:
            x = x + block(x)
        per_element = F.l1_loss(head["fc2"](x), target, reduction="none")
        loss_sum = per_element.sum()
        return {"loss": loss_sum.detach() / per_element.numel(), "loss_sum": loss_sum,
                "num_valid": torch.tensor(float(per_element.numel()), device=device)}

    def _flow(self, prefix: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.shape
        b, horizon, _ = target.shape
        t = torch.rand(b, device=prefix.device)
        noisy = t[:, None, None] * torch.randn_like(target) + (1 - t[:, None, None]) * target
        width = s.expert.width
        freqs = torch.arange(width // 2, device=prefix.device, dtype=torch.float32)
        time = torch.cat([torch.sin(t[:, None] * freqs), torch.cos(t[:, None] * freqs)], dim=-1)
        actions = self.action_in(noisy)
        cond = None
        if s.adarms:
            cond = self.time_mlp(time)
            suffix = actions
        else:
            suffix = self.time_mlp(torch.cat([actions, time[:, None].expand(-1, horizon, -1)], dim=-1))
        if s.state_token:
            suffix = torch.cat([self.state_proj(torch.zeros(b, 1, s.state_dim, device=prefix.device)), suffix], dim=1)
        _, out = self._stack(prefix, suffix, cond, causal=False)
        if s.adarms:
            scale, shift, _ = self.expert_norm(cond)[:, None].chunk(3, dim=-1)
            out = F.rms_norm(out, (width,)) * (1 + scale) + shift
        else:
            out = F.rms_norm(out, (width,), self.expert_norm.to(out.dtype))
        velocity = self.action_out(out[:, -horizon:])
        per_element = F.mse_loss(velocity, noisy - target, reduction="none")
        loss_sum = per_element.sum()
        return {"loss": loss_sum.detach() / per_element.numel(), "loss_sum": loss_sum,
                "num_valid": torch.tensor(float(per_element.numel()), device=prefix.device)}

    def sample_actions(self, batch: dict) -> torch.Tensor:
        raise ConfigError(f"model.preset={self.cfg.preset} is planning-only: it has no weights to act with")
