"""Reduced-depth probing (depth.py) against probing the whole model, and the attention-kernel rule."""

import pytest

from atlas.config.loader import load_config
from atlas.planning.planner import PlanRequest, default_kernel_is_efficient, make_plan
from atlas.planning.probe import probe_model
from atlas.planning.recipes import get_recipe

ALTERNATING = ["model.preset=atlas-tiny", "model.fusion.depth=6", "model.fusion.cross_attention=true",
               "model.fusion.alternate_cross_attention=true", "data.image_size=32", "data.num_cameras=2",
               "data.obs_horizon=2", "training.mixed_precision=bf16"]


def _close(scaled, full, rel):
    assert scaled.params.total == full.params.total and scaled.params.trainable == full.params.trainable
    assert scaled.forward_flops_per_sample == pytest.approx(full.forward_flops_per_sample, rel=rel)
    assert scaled.train_flops_per_sample == pytest.approx(full.train_flops_per_sample, rel=rel)
    for option in ((False, False), (False, True), (True, False)):
        a, b = scaled.activation(*option), full.activation(*option)
        assert a.per_sample_bytes == pytest.approx(b.per_sample_bytes, rel=rel), option
        assert a.fixed_bytes == pytest.approx(b.fixed_bytes, rel=rel, abs=1 << 20), option


def test_depth_extrapolation_matches_full_probe_small():
    cfg = load_config(None, ALTERNATING)
    scaled, full = probe_model(cfg), probe_model(cfg, full_depth=True)
    assert scaled.depths == [{"fusion": 2}, {"fusion": 4}] and full.depths == [{}]
    _close(scaled, full, 0.02)


@pytest.mark.slow
def test_depth_extrapolation_matches_full_probe_rdt_1b():
    cfg = load_config(None, get_recipe("rdt-1b-finetune").atlas)
    scaled, full = probe_model(cfg), probe_model(cfg, full_depth=True)
    assert len(scaled.depths) == 3
    _close(scaled, full, 0.02)


def test_kernel_rule_follows_precision_and_pinning():
    cfg = load_config(None, ALTERNATING)
    probe = probe_model(cfg)
    assert probe.attention.calls > 0 and not probe.attention.masked
    assert not probe.attention.math_pinned  # memory_efficient_attention=false leaves SDPA's own dispatch
    assert default_kernel_is_efficient(probe, "bf16")[0] is True
    assert default_kernel_is_efficient(probe, "bf16", sdpa_default=True)[0] is True
    assert default_kernel_is_efficient(probe, "no", sdpa_default=True)[0] is False
    plan = make_plan(cfg, 1, 24, request=PlanRequest(probe=probe, sdpa_default=True))
    assert plan.notes[0].startswith("attention kernel: memory_efficient_attention=false lets SDPA choose")
    efficient, math = probe.activation(False, True), probe.activation(False, False)
    assert plan.memory.activations == pytest.approx(efficient.predict(plan.micro_batch_size))
    assert efficient.per_sample_bytes < math.per_sample_bytes
