"""Doctor on seed 000's scripts with the rdt-1b preset measured by the planner, the traps, JSON and zh output."""

import json
from pathlib import Path

import jsonschema
import pytest

from atlas.config.loader import load_config
from atlas.planning.doctor import FAIL, OK, WARN, run_doctor
from atlas.planning.probe import probe_model
from atlas.planning.recipes import get_recipe
from atlas.planning.render import render_report
from atlas.planning.setup import setup_from_script

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def rdt_probe():
    return probe_model(load_config(None, get_recipe("rdt-1b-finetune").atlas))


@pytest.fixture(scope="module")
def reports(rdt_probe):
    out = {}
    for name in ("seed000_32x1x8.sh", "seed000_4x8x8.sh", "seed000_full_modification.sh"):
        out[name] = run_doctor(setup_from_script((FIXTURES / name).read_text()), cpu_cores=128, probe=rdt_probe)
    return out


def _verdict(report, size):
    return next(m for m in report.memory if m.gpu_memory_gb == size)


def test_seed000_both_scripts_effective_256(reports):
    for name in ("seed000_32x1x8.sh", "seed000_4x8x8.sh"):
        r = reports[name]
        assert r.recipe == "rdt-1b-finetune" and "= 256" in r.arithmetic
        assert next(f for f in r.findings if f.parameter == "effective_batch_size").status == OK


def test_seed000_32_per_gpu_flagged_on_24_and_48(reports):
    r = reports["seed000_32x1x8.sh"]
    assert _verdict(r, 24).status != OK and _verdict(r, 48).status != OK


def test_seed000_small_micro_batch_needs_less_memory(reports):
    big, small = reports["seed000_32x1x8.sh"], reports["seed000_4x8x8.sh"]
    for size in (24, 48, 80):
        assert _verdict(small, size).total_gb < _verdict(big, size).total_gb
    assert _verdict(small, 80).status == OK


def test_seed000_32_per_gpu_fits_80(reports):
    """Seed 000 calls 32/GPU fine on 80 GB, and it fits. The stand-in is RDT's own network (atlas/models/rdt):
    its RMSNorms keep one bf16 input per norm for backward (CUDA's fused kernel does the same), where the
    earlier LayerNorm stand-in kept float32 ones, so the probe's activations at 32 are ~31 GiB, not the ~48
    that an H200 measured for that stand-in (benchmarks/RESULTS.md, CUDA checks; not yet re-measured on a
    GPU for the rdt policy). RDT passes a language mask: SDPA then runs the memory-efficient kernel."""
    v = _verdict(reports["seed000_32x1x8.sh"], 80)
    assert v.status in (OK, WARN) and v.total_gb <= v.budget_gb and v.breakdown["activations"] > 25
    assert v.strategy == "ddp" and "memory-efficient kernel" in v.attention_kernel


def test_seed000_4_per_gpu_fine_on_48_and_80(reports):
    assert _verdict(reports["seed000_4x8x8.sh"], 48).status == OK
    assert _verdict(reports["seed000_4x8x8.sh"], 80).status == OK


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="not supported by the faithful numbers: these scripts run DDP (no --deepspeed; "
                   "main.py's default is None), and the stand-in holds fp32 master weights + grads + Adam (16 B x 1.20 B "
                   "trainable = 17.8 GiB) + frozen SigLIP (1.6 GiB) + 1 GiB CUDA context = 20.5 GiB of the 22.8 GiB usable "
                   "before activations (2.2 GiB bf16 weight casts + 1.44 GiB/sample as a GPU saves them), ~31.2 GiB at 4/GPU. "
                   "RDT's own main.py "
                   "keeps weights/Adam in bf16 but, without --precomp_lang_embed, also loads T5-XXL (~9.5 GB bf16) on every "
                   "GPU (RDT README: 4090 may be too small). Only ZeRO-2, checkpointing or precomputed embeddings fit 24 GB")
def test_seed000_claims_4_fine_on_24(reports):
    assert _verdict(reports["seed000_4x8x8.sh"], 24).status == OK


GIB = 2**30


@pytest.mark.parametrize(("script", "size", "fits"), [("seed000_4x8x8.sh", 24, False), ("seed000_4x8x8.sh", 48, True),
                                                     ("seed000_32x1x8.sh", 48, False), ("seed000_32x1x8.sh", 80, True)])
def test_memory_verdicts_by_hand(reports, rdt_probe, script, size, fits):
    """The verdict's parts that follow from parameter counts, and its fit, redone by hand rather than read
    from the planner. DDP with AdamW: fp32 weights (4 B x every parameter, frozen encoders included),
    fp32 gradients (4 B x trainable) and two fp32 Adam moments (8 B x trainable). rdt-1b-finetune has
    1,220,717,696 trainable and 435,700,464 frozen parameters (the RDT network and adaptors; SigLIP and the
    language stand-in frozen), so the states are 6.171 + 4.548 + 9.095 = 19.81 GiB on every GPU, and with
    the 1 GiB CUDA context 20.81 GiB before any activation. The budget is max_memory_usage 0.95 x the card."""
    trainable, frozen = 1_220_717_696, 435_700_464
    assert (rdt_probe.params.trainable, rdt_probe.params.frozen) == (trainable, frozen)
    v = _verdict(reports[script], size)
    parts = v.breakdown
    assert parts["weights"] == pytest.approx(4 * (trainable + frozen) / GIB, abs=1e-3)  # 6.171
    assert parts["gradients"] == pytest.approx(4 * trainable / GIB, abs=1e-3)  # 4.548
    assert parts["optimizer"] == pytest.approx(8 * trainable / GIB, abs=1e-3)  # 9.095
    assert parts["cuda_context"] == 1.0 and parts["ema"] == 0.0
    total = sum(value for key, value in parts.items() if key not in ("total", "unit"))
    assert v.total_gb == pytest.approx(total, abs=0.01) and v.budget_gb == pytest.approx(0.95 * size)
    assert (total <= 0.95 * size) is fits and (v.status != FAIL) is fits


def test_seed000_scripts_are_ddp_because_main_py_deepspeed_defaults_to_none(reports):
    r = reports["seed000_32x1x8.sh"]
    finding = next(f for f in r.findings if f.parameter == "strategy")
    assert finding.yours == "ddp" and "default is None" in finding.why and finding.status != OK


def test_deepspeed_config_switches_the_memory_strategy(rdt_probe):
    text = (FIXTURES / "seed000_32x1x8.sh").read_text().replace("main.py \\", 'main.py --deepspeed="./configs/zero2.json" \\')
    r = run_doctor(setup_from_script(text), cpu_cores=128, probe=rdt_probe, gpu_memory_gb=80)
    ddp = _verdict(run_doctor(setup_from_script((FIXTURES / "seed000_32x1x8.sh").read_text()), cpu_cores=128,
                              probe=rdt_probe, gpu_memory_gb=80), 80)
    assert r.memory[0].strategy == "zero2" and r.memory[0].total_gb < ddp.total_gb


def test_constant_scheduler_ignores_warmup(reports):
    f = next(f for f in reports["seed000_32x1x8.sh"].findings if f.parameter == "lr_scheduler")
    assert f.status == FAIL and "constant_with_warmup" in f.why
    assert reports["seed000_32x1x8.sh"].exit_code == 1
    assert "--lr_scheduler=constant_with_warmup" in reports["seed000_32x1x8.sh"].corrected


def test_full_modification_caught_and_corrected(reports):
    r = reports["seed000_full_modification.sh"]
    script = [f for f in r.findings if f.parameter == "script"]
    assert script and all(f.status == FAIL for f in script)
    assert any("--gradient_accumulation_steps=8" in f.why for f in script)
    assert "#" not in r.corrected and "--gradient_accumulation_steps=" in r.corrected
    opt_batches = {o["effective_batch_size"] for o in r.options}
    assert opt_batches == {256}


def test_workers_times_processes_vs_cores(rdt_probe):
    setup = setup_from_script((FIXTURES / "seed000_4x8x8.sh").read_text())
    r = run_doctor(setup, cpu_cores=16, probe=rdt_probe, gpu_memory_gb=80)
    assert next(f for f in r.findings if f.parameter == "num_workers").status != OK


REPORT_SCHEMA = {
    "type": "object",
    "required": ["recipe", "findings", "memory", "options", "corrected", "score", "score_rule", "exit_code", "arithmetic"],
    "properties": {
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "exit_code": {"enum": [0, 1]},
        "findings": {"type": "array", "items": {"type": "object", "required": ["parameter", "recipe", "yours", "status", "why"],
                                                "properties": {"status": {"enum": ["ok", "warn", "fail"]}}}},
        "memory": {"type": "array", "items": {"type": "object", "required": ["gpu_memory_gb", "total_gb", "budget_gb", "status"]}},
    },
}


def test_json_and_chinese_output(reports):
    r = reports["seed000_4x8x8.sh"]
    jsonschema.validate(json.loads(render_report(r, "json")), REPORT_SCHEMA)
    zh = render_report(r, "markdown", "zh")
    assert "有效 batch" in zh and "| 参数 |" in zh and "评分" in zh
