"""glibc's give-back of freed memory between CPU steps, and Atlas's setting that stops it. Each case runs in
its own process (the setting is process-wide) under a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from train_helpers import torchrun

# a 2.2 M-parameter MLP's training step (the ddp_vs_bare model's size): its gradients and activations are
# freed and allocated again every step; the minor page faults of 20 steps after 5 of warm-up, per step
STEPS = textwrap.dedent("""
    import resource, sys, torch
    from atlas.engine.host_memory import keep_freed_host_memory
    if sys.argv[1] == "keep":
        print(keep_freed_host_memory(), file=sys.stderr)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1024),
                                torch.nn.GELU(), torch.nn.Linear(1024, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 7))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(32, 64), torch.randn(32, 7)
    for step in range(25):
        if step == 5:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
""")
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("MALLOC_", "GLIBC_TUNABLES")) and k != "LD_PRELOAD"}


def faults_per_step(mode: str, env: dict[str, str] | None = None) -> tuple[float, str]:
    proc = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, timeout=120,
                          env={**CLEAN_ENV, "OMP_NUM_THREADS": "1", **(env or {})})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return float(proc.stdout.split()[-1]), proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_kept_memory_stops_the_page_faults_between_steps() -> None:
    given_back, _ = faults_per_step("default")
    if given_back < 100:
        pytest.skip(f"this machine's malloc keeps freed memory by itself ({given_back:.0f} faults a step)")
    kept, said = faults_per_step("keep")
    assert "stay in the heap" in said, said
    # the gradients of 1024x1024 layers are 1,024 pages each (~4,000 faults a step here); what remains (0-90
    # a step measured) is torch's and Python's own small mappings
    assert kept < given_back / 10, (kept, given_back)


def test_a_user_allocator_setting_is_left_alone() -> None:
    faults, said = faults_per_step("keep", {"MALLOC_TRIM_THRESHOLD_": "4096"})
    assert "left as they are (MALLOC_TRIM_THRESHOLD_ set in the environment)" in said, said
    if sys.platform.startswith("linux"):
        assert faults > 100  # a 4 KiB trim threshold: the user's choice, its cost visible


def test_atlas_train_on_cpu_says_what_it_did(tmp_path) -> None:
    proc = torchrun(tmp_path / "run", ["training.max_steps=2", "training.val_interval=0"], nproc=1, timeout=180)
    expected = "stay in the heap" if sys.platform.startswith("linux") else "left as they are"
    assert "host memory: " in proc.stderr and expected in proc.stderr, proc.stderr[-3000:]
