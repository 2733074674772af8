"""Run under torchrun: count DDP gradient all-reduces per optimizer step in the loop's own `accumulate`."""

from __future__ import annotations

import contextlib
import json
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist

from atlas.config import load_config
from atlas.data.collate import collate_samples
from atlas.data.device_copies import DeviceCopies
from atlas.data.registry import build_data
from atlas.data.sampler import EffectiveBatchSampler, SampleStream
from atlas.engine import distributed as D
from atlas.engine.clock import StepClock
from atlas.engine.nonfinite import NonFiniteWatch
from atlas.engine.strategies import Strategy
from atlas.loop.step import accumulate
from atlas.models.registry import build_policy

torch.set_num_threads(1)
ctx = D.init_distributed()
cfg = load_config(None, ["data.num_episodes=8", "data.episode_length=12", "model.hidden_dim=32"])
data = build_data(cfg.data, cfg.data_loading, cfg.model.action_horizon, 0)
counts = {}
for accumulation in (1, 4):
    torch.manual_seed(0)
    policy = build_policy(cfg.model, data.meta, data.normalizer)
    model = D.wrap_model(policy, ctx)
    calls = [0]

    def counting_hook(state, bucket):
        state[0] += 1
        tensor = bucket.buffer().div_(dist.get_world_size())
        return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])

    model.register_comm_hook(calls, counting_hook)
    sampler = EffectiveBatchSampler(SampleStream(len(data.train), 0), 2, accumulation, ctx.world_size, ctx.rank)
    # the parts of a run `accumulate` reads, around this hand-built DDP model
    parts = SimpleNamespace(ctx=ctx, strategy=Strategy(ctx), model=model, autocast=contextlib.nullcontext,
                            data=data, objects=SimpleNamespace(scaler=None), cfg=cfg,
                            device_copies=DeviceCopies(ctx.device),
                            guard=SimpleNamespace(watch=NonFiniteWatch(StepClock(0))))
    steps = 3
    for step in range(steps):
        micro_batches = [collate_samples([data.train[i] for i in mb]) for mb in sampler.step_indices(step * 4 * accumulation)]
        accumulate(parts, micro_batches, stop_requested=False)
        model.zero_grad()
    counts[accumulation] = calls[0] / steps
if ctx.is_main:
    json.dump(counts, open(sys.argv[1], "w"))
D.shutdown(ctx)
