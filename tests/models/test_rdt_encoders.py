"""RDT's encoders from local folders, never downloaded: a tiny random T5 (encoder only, per-token
embeddings with a mask), RDT's precomputed `.pt` embeddings, and a tiny random SigLIP (patch tokens with
its own pixel statistics), all saved with transformers into temp folders; with the rdt_tiny fixture's
shapes they complete a release into a policy that samples."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from extras import require_extra

from atlas.config.errors import ConfigError
from atlas.data.episodes import DatasetMeta
from atlas.data.normalize import Normalizer
from atlas.models.config import ModelConfig
from atlas.models.language.config import LanguageConfig
from atlas.models.language.tokens import build_token_encoder
from atlas.models.rdt.release import load_release_state_dict
from atlas.models.registry import build_policy
from atlas.models.vision.hf import HFVision

transformers = require_extra("hf")
FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "rdt_tiny"
WORDS = "pick up the red block open drawer put cup on plate".split()
META = DatasetMeta(state_dim=8, action_dim=8, cameras=["front"], image_size=(24, 24), tasks=["t0", "t1"],
                   instructions={"t0": "pick up the red block", "t1": "open the drawer"})


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory) -> Path:
    """A T5 (encoder-decoder, as t5-v1_1-xxl ships) with a 24-d model and a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    folder = tmp_path_factory.mktemp("t5")
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                         unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=len(vocab), d_model=24, d_kv=6, d_ff=32, num_layers=1, num_heads=4,
                                   decoder_start_token_id=0)
    transformers.T5Model(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def siglip_folder(tmp_path_factory) -> Path:
    """A SigLIP vision tower with the fixture's image tokens: 20-d, 24 px / patch 8 = 9 patches."""
    folder = tmp_path_factory.mktemp("siglip")
    torch.manual_seed(1)
    config = transformers.SiglipVisionConfig(hidden_size=20, intermediate_size=32, num_hidden_layers=1,
                                             num_attention_heads=4, image_size=24, patch_size=8)
    transformers.SiglipVisionModel(config).save_pretrained(folder)
    transformers.SiglipImageProcessor(size={"height": 24, "width": 24}).save_pretrained(folder)
    return folder


def test_t5_gives_per_token_embeddings_with_a_mask(t5_folder):
    enc = build_token_encoder(LanguageConfig(name="hf", path=str(t5_folder)), META, True, 1024)
    assert type(enc.model).__name__ == "T5EncoderModel" and enc.out_dim == 24  # the decoder is not loaded
    texts = ["pick up the red block", "open the drawer"]
    tokens, mask = enc(texts)
    assert tokens.shape == (2, 6, 24) and mask.tolist() == [[True] * 6, [True] * 4 + [False] * 2]
    direct = transformers.T5EncoderModel.from_pretrained(t5_folder).eval()
    ids = torch.tensor([[3 + WORDS.index(w) for w in texts[0].split()] + [1]])  # the words, then </s>
    with torch.no_grad():
        expected = direct(input_ids=ids).last_hidden_state[0]
    assert torch.allclose(tokens[0], expected, atol=1e-6)
    assert (tokens[1, 4:] == 0).all() and not torch.allclose(tokens[1, 0], tokens[1, 1])


def test_precomputed_embeddings_as_rdts_scripts_write_them(tmp_path):
    folder = tmp_path / "lang"
    folder.mkdir()
    a = torch.randn(1, 7, 24)
    torch.save({"name": "t0", "instruction": "pick up the red block", "embeddings": a}, folder / "t0.pt")  # encode_lang.py
    b = torch.randn(3, 24)
    torch.save(b, folder / "lang_embed_0.pt")  # encode_lang_batch.py: a bare [L, D] tensor, found by file name
    enc = build_token_encoder(LanguageConfig(name="precomputed", path=str(folder)), META, True, 1024)
    tokens, mask = enc(["pick up the red block", str(folder / "lang_embed_0.pt")])
    assert torch.equal(tokens[0], a[0]) and torch.equal(tokens[1, :3], b) and mask.sum(1).tolist() == [7, 3]
    with pytest.raises(ConfigError, match="no embedding .* for instruction 'fly'"):
        enc(["fly"])


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/atlas_rdt_lang_pickle_ran",))


def test_precomputed_embeddings_refuse_pickled_code(tmp_path):
    marker = Path("/tmp/atlas_rdt_lang_pickle_ran")
    marker.unlink(missing_ok=True)
    torch.save({"instruction": "x", "embeddings": _RunsCode()}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="bad.pt"):
        build_token_encoder(LanguageConfig(name="precomputed", path=str(tmp_path)), META, True, 1024)
    assert not marker.exists()


def test_siglip_patch_tokens_with_its_pixel_statistics(siglip_folder):
    vision = HFVision(str(siglip_folder))
    images = torch.rand(2, 3, 3, 24, 24)
    tokens, grid = vision(images)
    assert tokens.shape == (2, 3, 9, 20) and grid == (3, 3)
    direct = transformers.SiglipVisionModel.from_pretrained(siglip_folder).eval()
    with torch.no_grad():
        expected = direct(pixel_values=(images.flatten(0, 1) - 0.5) / 0.5).last_hidden_state
    assert torch.allclose(tokens.flatten(0, 1), expected, atol=1e-5)


@pytest.mark.skipif(not FIXTURE.is_dir(), reason="no rdt_tiny fixture")
def test_release_plus_local_encoders_is_a_policy_that_trains_and_samples(t5_folder, siglip_folder):
    cfg = ModelConfig(preset="rdt", pretrained=str(FIXTURE), language={"name": "hf", "path": str(t5_folder)},
                      vision={"name": "hf", "path": str(siglip_folder), "image_size": None})
    policy = build_policy(cfg, META, Normalizer({}))
    result = policy.load_state_dict(load_release_state_dict(FIXTURE), strict=False)
    assert result.unexpected_keys == [] and {k.split(".")[0] for k in result.missing_keys} == {"vision", "language"}
    assert all(not p.requires_grad for n, p in policy.named_parameters() if n.startswith(("vision.", "language.")))
    batch = {"state": torch.randn(2, 2, 8), "action": torch.randn(2, 8, 8), "action_mask": torch.ones(2, 8, dtype=torch.bool),
             "instruction": ["pick up the red block", "open the drawer"], "images": torch.rand(2, 2, 1, 3, 24, 24)}
    out = policy(batch)
    out["loss_sum"].backward()
    assert torch.isfinite(out["loss"]) and policy.model.blocks[0].attn.qkv.weight.grad is not None
    assert policy.sample_actions(batch).shape == (2, 8, 8)


def test_missing_transformers_names_the_extra(monkeypatch):
    from atlas.models.language.text import require_transformers

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ConfigError, match=r"pip install 'atlas-vla\[hf\]'"):
        require_transformers("model.language.path=x")
