"""`atlas plan --measure`: time a few real training steps on this device and calibrate the MFU."""

from __future__ import annotations

import time
from dataclasses import replace

import torch

from atlas.config.schema import AtlasConfig
from atlas.engine.optim import adamw_kernel
from atlas.engine.precision import autocast_factory
from atlas.planning.hardware import gpu_from_device_name
from atlas.planning.planner import Plan
from atlas.planning.probe import build_model, dataset_meta, make_batch
from atlas.planning.timing import scaling_table


def time_steps(cfg: AtlasConfig, micro_batch: int, steps: int = 3) -> float:
    """Seconds per micro-batch step (forward under the config's autocast, backward, AdamW) after one warm-up step."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    meta = dataset_meta(cfg)
    model = build_model(cfg, meta, False, False).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, **adamw_kernel(params))  # as the loop builds it
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in make_batch(meta, cfg, micro_batch).items()}
    autocast = autocast_factory(device, cfg.training.mixed_precision)  # the loop's arithmetic, bf16 or not
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with autocast():
            loss = model(batch)["loss_sum"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def calibrate(cfg: AtlasConfig, plan: Plan, steps: int = 3) -> Plan:
    """Replace the assumed MFU with the one measured here: the FLOP rate over this device's own peak, applied to
    the planned GPU (a share of peak transfers between GPUs roughly; a rate does not)."""
    micro = min(plan.micro_batch_size, cfg.data.batch_size)
    seconds = time_steps(cfg, micro, steps)
    rate = plan.probe.train_flops_per_sample * micro / seconds
    device = "cuda" if torch.cuda.is_available() else "cpu"
    notes = list(plan.notes) + [f"measured on {device}: {seconds:.3g} s per micro-batch {micro} step = {rate / 1e12:.3g} TFLOP/s"]
    if device != "cuda":
        notes.append("CPU rate does not transfer to GPUs; GPU step times keep the assumed MFU")
        return replace(plan, notes=notes)
    name = torch.cuda.get_device_name()
    here = gpu_from_device_name(name)
    if here is None:
        here = plan.gpu
        notes.append(f"{name} is not in the GPU table: MFU read against the planned {plan.gpu.name}'s peak")
    mfu = rate / (here.bf16_tflops * 1e12)  # this device's share of its own peak; the plan's GPU keeps its peak
    timing = scaling_table(plan.probe, plan.gpu, mfu, plan.effective_batch_size, plan.micro_batch_size,
                           cfg.training.max_steps, plan.strategy, plan.gradient_checkpointing)
    return replace(plan, mfu=mfu, timing=timing,
                   notes=notes + [f"calibrated MFU {mfu:.2f} ({name}, peak {here.bf16_tflops:g} TFLOP/s), applied to the {plan.gpu.name}"])
