"""Planner: memory formulas, activation probe against a real forward, monotonic micro-batch, batch arithmetic."""

import jsonschema
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from atlas.config.errors import ConfigError
from atlas.config.loader import load_config
from atlas.models.base import Policy, masked_loss
from atlas.models.registry import POLICIES
from atlas.planning.hardware import GIB
from atlas.planning.memory import breakdown, max_micro_batch, state_bytes
from atlas.planning.planner import PlanRequest, make_plan
from atlas.planning.probe import build_model, dataset_meta, make_batch, probe_model, saved_tensor_bytes


class TinyTransformerPolicy(Policy):
    """A small attention model built here so the planner is tested on more than an MLP."""

    def __init__(self, cfg, meta, normalizer) -> None:
        super().__init__(cfg, meta, normalizer)
        self.inp = nn.Linear(meta.state_dim, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True, dropout=0.0)
        self.fusion = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.action_head = nn.Linear(32, meta.action_dim)

    def forward(self, batch):
        x = self.inp(batch["state"]).repeat(1, self.cfg.action_horizon, 1)
        pred = self.action_head(self.fusion(x))
        return masked_loss((pred - batch["action"]).abs(), batch["action_mask"])


POLICIES["test-transformer"] = TinyTransformerPolicy


@pytest.fixture(scope="module")
def cfg():
    return load_config(None, ["model.preset=test-transformer", "training.effective_batch_size=64"])


@pytest.fixture(scope="module")
def probe(cfg):
    return probe_model(cfg)


def test_deepspeed_formulas():
    cfg = load_config(None, ["model.preset=mlp"])
    p = probe_model(cfg)
    psi, n = p.params.trainable, 8
    total = {s: sum(state_bytes(p, s, n, "bf16", False).values()) for s in ("ddp", "zero1", "zero2", "zero3")}
    assert total["ddp"] == 16 * psi
    assert total["zero1"] == pytest.approx(4 * psi + 12 * psi / n)
    assert total["zero2"] == pytest.approx(2 * psi + 14 * psi / n)
    assert total["zero3"] == pytest.approx(16 * psi / n)
    assert state_bytes(p, "ddp", 1, "bf16", True)["ema"] == 4 * psi


def test_frozen_parameters_hold_weights_only():
    cfg = load_config(None, ["model.preset=test-transformer", "training.lr_multipliers={fusion: 0}"])
    p = probe_model(cfg)
    assert p.params.frozen > 0 and p.params.by_module["fusion"]["trainable"] == 0
    s = state_bytes(p, "ddp", 1, "no", False)
    assert s["gradients"] == 4 * p.params.trainable and s["weights"] == 4 * p.params.total


@pytest.mark.parametrize("micro", [16, 32])
def test_probe_predicts_real_saved_bytes(cfg, probe, micro):
    """Fit from fake micro-batches 1 and 2, checked against a real CPU forward at a larger micro-batch."""
    meta = dataset_meta(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, meta, False, False)
    real = saved_tensor_bytes(model, make_batch(meta, cfg, micro))
    assert probe.activation(False, False).predict(micro) == pytest.approx(real, rel=0.15)


def test_flops_counted_three_times_forward_when_all_trainable(probe):
    assert probe.train_flops_per_sample == pytest.approx(3 * probe.forward_flops_per_sample, rel=1e-6)
    assert probe.forward_flops_per_sample > 0


def test_max_micro_batch_fits_and_one_more_does_not(probe):
    budget = 1.2 * GIB
    m = max_micro_batch(probe, budget, "ddp", 1, "no", False, False, False)
    assert m > 0
    assert breakdown(probe, m, "ddp", 1, "no", False, False, False).total <= budget
    assert breakdown(probe, m + 1, "ddp", 1, "no", False, False, False).total > budget


@settings(max_examples=25, deadline=None)
@given(a=st.floats(1.05, 3.0), b=st.floats(1.05, 3.0))
def test_more_memory_never_gives_a_smaller_micro_batch(probe, a, b):
    low, high = sorted((a, b))
    small = max_micro_batch(probe, low * GIB, "ddp", 1, "no", False, False, False)
    large = max_micro_batch(probe, high * GIB, "ddp", 1, "no", False, False, False)
    assert small <= large



def planned(cfg, gpus: int, memory: float, **request):
    """The planner's choice for the config's own effective batch (what `atlas plan` shows under `suggested`)."""
    effective = cfg.training.effective_batch_size
    return make_plan(cfg, gpus, memory, request=PlanRequest(effective_batch_size=effective,
                                                            mixed_precision=cfg.training.mixed_precision, **request))


@settings(max_examples=15, deadline=None)
@given(gpus=st.sampled_from([1, 2, 4, 8]), mem=st.sampled_from([1.1, 1.2, 1.5, 24.0]))
def test_plan_product_equals_effective_batch(cfg, probe, gpus, mem):
    plan = planned(cfg, gpus, mem, probe=probe, cpu_cores=16)
    assert plan.micro_batch_size * plan.gradient_accumulation_steps * gpus == plan.effective_batch_size == 64


def test_plan_monotonic_in_gpu_memory(cfg, probe):
    micro = [planned(cfg, 1, m, probe=probe).micro_batch_size for m in (1.05, 1.1, 1.2, 1.5, 2.0, 24.0)]
    assert micro == sorted(micro)


def test_unreachable_effective_batch_says_what_is_reachable(probe):
    cfg = load_config(None, ["model.preset=test-transformer", "training.effective_batch_size=100"])
    with pytest.raises(ConfigError, match="reachable"):
        planned(cfg, 8, 24, probe=probe)


def test_workers_capped_by_cores(cfg, probe):
    c = load_config(None, ["model.preset=test-transformer", "data_loading.num_workers=8", "training.effective_batch_size=64"])
    plan = planned(c, 8, 24, probe=probe, cpu_cores=16)
    assert plan.workers_per_process == 1 and any("CPU cores" in n for n in plan.notes)


PLAN_SCHEMA = {
    "type": "object",
    "required": ["micro_batch_size", "gradient_accumulation_steps", "world_size", "effective_batch_size", "learning_rate",
                 "memory", "timing", "parameters", "gpu"],
    "properties": {
        "micro_batch_size": {"type": "integer", "minimum": 1},
        "gradient_accumulation_steps": {"type": "integer", "minimum": 1},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
        "memory": {"type": "object", "required": ["weights", "gradients", "optimizer", "ema", "activations",
                                                   "cuda_context", "allocator_margin", "total"]},
        "timing": {"type": "array", "minItems": 4, "items": {"type": "object", "required": ["gpus", "step_s", "speedup", "total_hours"]}},
    },
}


def test_plan_json_matches_schema(cfg, probe, capsys):
    import json

    from atlas.cli import main

    code = main(["plan", "--config", _write(cfg), "--gpus", "2", "--gpu", "A100-80", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    jsonschema.validate(data, PLAN_SCHEMA)
    assert code == 0 and data["world_size"] == 2 and [r["gpus"] for r in data["timing"]] == [1, 2, 4, 8]


def _write(cfg) -> str:
    import tempfile

    import yaml

    path = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    yaml.safe_dump({"model": {"preset": "mlp"}, "training": {"effective_batch_size": 64}}, path)
    path.close()
    return path.name


@pytest.mark.parametrize("device_name, table_name", [
    ("NVIDIA H200", "H200"), ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA A100-SXM4-40GB", "A100-40"),
    ("NVIDIA A100-SXM4-80GB", "A100-80"), ("NVIDIA A800-SXM4-80GB", "A800"), ("NVIDIA GeForce RTX 4090", "4090"),
    ("Tesla V100-SXM2-32GB", "V100"), ("NVIDIA L40S", "L40S")])
def test_the_measuring_gpu_is_found_by_its_cuda_name(device_name, table_name):
    """`atlas plan --measure` reads a rate against the measuring GPU's own peak: on an H200 it once read
    246 TFLOP/s against an A100's 312 (the plan's default 80 GB GPU) and called it MFU 0.79, not 0.25."""
    from atlas.planning.hardware import gpu_from_device_name

    assert gpu_from_device_name(device_name).name == table_name


def test_an_unknown_gpu_name_is_not_guessed():
    from atlas.planning.hardware import gpu_from_device_name

    assert gpu_from_device_name("Some Future Accelerator") is None
