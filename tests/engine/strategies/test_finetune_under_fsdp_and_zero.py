"""A LoRA fine-tune from a real checkpoint under FSDP and ZeRO-2 (torchrun, gloo, 2 CPU ranks): the base is
loaded into the whole policy before the strategy shards it, stays bitwise frozen, and the adapters train as in
one process (to 1e-5; see test_sharded_strategies_match_one_process.py for why Adam's eps is 1e-5 and the head is l1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import assert_close, final_weights, torchrun, train_run

from atlas.models.lora import is_adapter

pytestmark = [pytest.mark.slow]

ATLAS = ["model.preset=atlas-tiny", "model.head.name=l1", "data.image_size=16", "data.episode_length=17",
         "training.adam_eps=1e-5", "training.val_interval=0", "training.learning_rate=3e-3"]
FINETUNE = ["model.lora.rank=4", "training.max_steps=4", "training.warmup_steps=1"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("base") / "run"
    train_run(run, ATLAS + ["training.max_steps=3"])
    return run


@pytest.mark.timeout(300)
@pytest.mark.parametrize("strategy", [["training.strategy=fsdp"],
                                      ["training.strategy=deepspeed", "training.zero_stage=2"]])
def test_lora_finetune_under_sharding_strategies(base, tmp_path, strategy):
    pretrained = [f"model.pretrained={base}"]
    torchrun(tmp_path / "two", ATLAS + FINETUNE + pretrained + strategy + ["data.batch_size=4"])
    train_run(tmp_path / "one", ATLAS + FINETUNE + pretrained + ["data.batch_size=4",
                                                                 "training.gradient_accumulation_steps=2"])
    source = load_file(str(base / "checkpoints" / "latest" / "model.safetensors"))
    two, one = final_weights(tmp_path / "two"), final_weights(tmp_path / "one")
    assert all(torch.equal(two[k], source[k]) for k in source)
    assert sum(v.numel() for k, v in two.items() if is_adapter(k)) == 4 * 2 * 64 * 12
    assert_close(two, one)
