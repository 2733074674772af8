"""Validation on the held-out episodes: is it my step, and the mean loss over valid elements."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from atlas.data.collate import collate_samples
from atlas.data.sampler import shard_sequential
from atlas.engine import distributed as D
from atlas.loop.parts import RunParts


class Validator:
    def __init__(self, parts: RunParts) -> None:
        self.parts = parts
        self.interval = parts.cfg.training.val_interval

    def due(self, step: int, last: bool) -> bool:
        return bool(self.interval) and self.parts.data.val is not None and (step % self.interval == 0 or last)

    @torch.no_grad()
    def run(self, step: int) -> float:
        """Mean loss over valid elements of the held-out episodes, split across ranks and reduced.

        When a forward is a collective (FSDP, ZeRO-3), ranks with fewer batches repeat their first one,
        uncounted, until they have run as many forwards as rank 0 (which has the most)."""
        parts = self.parts
        ctx, dataset, policy = parts.ctx, parts.data.val, parts.policy
        micro, cap = parts.plan.micro_batch_size, parts.cfg.training.val_batches
        with parts.timers.phase("validation"):
            policy.eval()
            batches = shard_sequential(len(dataset), micro, ctx.world_size, ctx.rank)[: cap or None]
            counted = len(batches)
            if parts.strategy.collective_forward:
                most = len(shard_sequential(len(dataset), micro, ctx.world_size, 0)[: cap or None])
                batches += [batches[0] if batches else [0]] * (most - counted)
            loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate_samples,
                                generator=torch.Generator())
            totals = torch.zeros(2, device=ctx.device)
            for i, batch in enumerate(loader):
                with parts.autocast():
                    out = policy(parts.data.transform(batch, ctx.device, train=False))
                if i < counted:
                    totals[0] += out["loss_sum"].float()
                    totals[1] += out["num_valid"].float()
            D.all_reduce_sum(totals, ctx)
            policy.train()
        loss = (totals[0] / totals[1].clamp_min(1.0)).item()
        parts.metrics.log({"val_loss": loss}, step)
        parts.log.info(f"step {step}: val_loss {loss:.5f}")
        return loss
