"""RDT's conditioning pattern: with alternate_cross_attention block i reads language (even i) or vision (odd i)."""

import torch

from atlas.models.config import ModelConfig
from atlas.models.fusion.config import FusionConfig
from atlas.models.fusion.transformer import FusionTransformer


def _fusion(depth: int, alternate: bool) -> FusionTransformer:
    torch.manual_seed(0)
    cfg = FusionConfig(width=32, depth=depth, num_heads=4, cross_attention=True, alternate_cross_attention=alternate)
    return FusionTransformer(cfg).eval()


def test_first_block_reads_only_the_language_token():
    condition, tokens = torch.randn(2, 1 + 10, 32), torch.randn(2, 5, 32)
    other = condition.clone()
    other[:, 1:] += 1.0  # change only the vision tokens
    one = _fusion(1, alternate=True)
    assert torch.allclose(one(condition, tokens), one(other, tokens))
    two = _fusion(2, alternate=True)
    assert not torch.allclose(two(condition, tokens), two(other, tokens))
    both = _fusion(1, alternate=False)
    assert not torch.allclose(both(condition, tokens), both(other, tokens))


def test_rdt_preset_is_rdts_own_wiring_and_atlas_presets_do_not_alternate():
    """rdt-1b is built by the rdt policy (RDT's blocks alternate by construction: tests/models/test_rdt_policy.py)."""
    from atlas.models.rdt.policy import RDTPolicy
    from atlas.models.registry import POLICIES, _import_builtin

    _import_builtin()
    assert POLICIES["rdt-1b"] is RDTPolicy and POLICIES["rdt"] is RDTPolicy
    assert ModelConfig(preset="rdt-1b").fusion.alternate_cross_attention  # what the planner's depth probes read
    assert not ModelConfig(preset="atlas-base").fusion.alternate_cross_attention
