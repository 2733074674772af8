"""The published VLAs' shapes, each with where its numbers come from, registered as planning-only presets
(`pi0`, `pi05`, `pi0-fast`, `smolvla`, `openvla-7b`, and `<name>-lora` with the tool's own LoRA recipe).

Parameter counts of these builds against the published figures: benchmarks/vla_shapes.py and
benchmarks/RESULTS.md; tests/models/test_shapes.py keeps them within 5 %.
"""

from __future__ import annotations

from atlas.models.registry import register_policy
from atlas.models.shapes.blocks import DecoderShape, TowerShape
from atlas.models.shapes.policy import ShapePolicy, VLAShape

# openpi src/openpi/models/siglip.py So400m/14 at 224 px (PaliGemma's image encoder): 256 tokens per image.
SIGLIP_SO400M_224 = TowerShape(width=1152, depth=27, heads=16, mlp=4304, patch=14, image=224)
# openpi src/openpi/models/gemma.py get_config("gemma_2b") / ("gemma_300m"); PaliGemma's vocabulary 257,152.
GEMMA_2B = DecoderShape(width=2048, depth=18, heads=8, kv_heads=1, head_dim=256, mlp=16_384, vocab=257_152)
GEMMA_300M = DecoderShape(width=1024, depth=18, heads=8, kv_heads=1, head_dim=256, mlp=4096)
PI0_SOURCE = ("openpi src/openpi/models/pi0.py + gemma.py (gemma_2b VLM, gemma_300m expert, So400m/14); "
              "LoRA: gemma.py gemma_2b_lora rank 16, gemma_300m_lora rank 32; pi0_config.py get_freeze_filter "
              "freezes the LLM but not the image encoder")
PI0_PUBLISHED = {"parameters": 3.3e9, "source": "pi0 paper (arXiv:2410.24164) sec. IV: 3 B PaliGemma + 300 M "
                 "action expert = 3.3 B"}

SHAPES: dict[str, VLAShape] = {
    "pi0": VLAShape(kind="flow", towers=(SIGLIP_SO400M_224,), vlm=GEMMA_2B, expert=GEMMA_300M, text_tokens=48,
                    state_token=True, lora_vlm=16, lora_expert=32, lora_frozen=("embed",), source=PI0_SOURCE, published=PI0_PUBLISHED),
    # pi0.5: the state is discrete prompt text (max_token_len 200), the expert's norms are adaRMSNorm
    # (openpi pi0_config.py `pi05`, gemma.py RMSNorm cond branch).
    "pi05": VLAShape(kind="flow", towers=(SIGLIP_SO400M_224,), vlm=GEMMA_2B, expert=GEMMA_300M, text_tokens=200,
                     adarms=True, lora_vlm=16, lora_expert=32, lora_frozen=("embed",), source=PI0_SOURCE + "; pi0_config.py pi05=True",
                     published={"parameters": 3.3e9, "source": "pi0.5 (arXiv:2504.16054) keeps pi0's PaliGemma "
                                "+ 300 M expert (openpi pi0_config.py: the same gemma_2b / gemma_300m variants)"}),
    # pi0-FAST: PaliGemma alone, FAST action tokens in the text (openpi pi0_fast.py; config.py pi0_fast_libero
    # max_token_len=180).
    "pi0-fast": VLAShape(kind="fast", towers=(SIGLIP_SO400M_224,), vlm=GEMMA_2B, text_tokens=180, lora_vlm=16, lora_frozen=("embed",),
                         source="openpi src/openpi/models/pi0_fast.py (PaliGemma: So400m/14 + gemma_2b)",
                         published={"parameters": 2.92e9, "source": "FAST paper (arXiv:2501.09747): pi0-FAST is "
                                    "PaliGemma-3B; google/paligemma-3b-pt-224 model card: 2.92 B"}),
    # SmolVLA: SmolVLM2-500M cut to its first 16 text layers (lerobot configuration_smolvla.py num_vlm_layers=16),
    # expert 0.75 x 960 wide with MLP get_intermediate_size(720) = 2048, cross-attention on every other layer
    # (self_attn_every_n_layers=2, smolvlm_with_expert.py); SigLIP-B/16 at 512 px, pixel shuffle 4 -> 64 tokens;
# the VLM's untied 49,280 x 960 LM head is loaded with it (AutoModelForImageTextToText), unused by the loss.
    # LeRobot freezes the VLM by default (freeze_vision_encoder=True, train_expert_only=True).
    "smolvla": VLAShape(kind="flow", towers=(TowerShape(768, 12, 12, 3072, 16, 512, shuffle=4),),
                        vlm=DecoderShape(960, 16, 15, 5, 64, 2560, vocab=49_280),
                        expert=DecoderShape(720, 16, 15, 5, 64, 2048), text_tokens=48, cross_every=2,
                        frozen=("towers", "projector", "embed", "vlm", "lm_head"), lm_head=True, lora_vlm=16,
                        lora_expert=16,
                        source="lerobot src/lerobot/policies/smolvla/configuration_smolvla.py + smolvlm_with_expert.py",
                        published={"parameters": 4.5e8, "source": "SmolVLA blog (huggingface.co/blog/smolvla) and "
                                   "paper arXiv:2506.01844: 450 M"}),
    # OpenVLA-7B as OFT trains it: Llama-2-7B (vocab 32,064) over fused DINOv2-L/14 + SigLIP-So400m/14 features
    # (prismatic fused-gelu-mlp projector 2176 -> 8704 -> 4096 -> 4096), plus OFT's L1 MLPResNet head on
    # 8 x 7 action tokens and proprio projector (openvla-oft prismatic/models/action_heads.py, projectors.py,
    # prismatic/vla/constants.py LIBERO chunk 8, action 7, proprio 8). LoRA: finetune.py lora_rank=32 on
    # all-linear; everything else frozen except the head and projectors.
    "openvla-7b": VLAShape(kind="l1", towers=(TowerShape(1024, 24, 16, 4096, 14, 224), SIGLIP_SO400M_224),
                           vlm=DecoderShape(4096, 32, 32, 32, 128, 11_008, vocab=32_064), text_tokens=32,
                           projector=(8704, 4096), action_dim=7, state_dim=8, chunk=8, head_hidden=4096,
                           lora_vlm=32, lora_frozen=("towers", "projector", "embed", "lm_head"), lm_head=True,
                           source="openvla-oft vla-scripts/finetune.py, prismatic/models/*",
                           published={"parameters": 7.54e9, "source": "openvla/openvla-7b model card: 7.54 B "
                                      "(OpenVLA paper arXiv:2406.09246: a 7 B VLA); OFT's head adds ~0.17 B"}),
}

def _variant(name: str, shape: VLAShape, lora: bool) -> type[ShapePolicy]:
    """A registry entry: ShapePolicy with this shape (and the tool's LoRA recipe when `lora`)."""
    return type(f"ShapePolicy[{name}]", (ShapePolicy,), {"spec": shape, "lora": lora})


for _name, _shape in SHAPES.items():
    register_policy(_name)(_variant(_name, _shape, False))
    register_policy(f"{_name}-lora")(_variant(f"{_name}-lora", _shape, True))
