"""DataLoader workers come from the run plan: sized to the cores on a GPU, the configured number on a CPU."""

from __future__ import annotations

import pytest

from atlas.config import load_config
from atlas.planning.run_plan import Hardware, resolve_run_plan

BASE = ["data.format=synthetic", "model.preset=mlp", "data.batch_size=8"]


@pytest.mark.parametrize(("overrides", "hardware", "expected"), [
    ([], Hardware(world_size=1), 0),  # CPU: as configured
    (["data_loading.num_workers=3"], Hardware(world_size=1, cpu_cores=2), 3),  # CPU: the user's trade
    ([], Hardware(world_size=2, gpu_memory_gb=80, cpu_cores=16), 4),  # GPU, reads from disk: 0 -> 4
    (["data_loading.preload_data=true"], Hardware(world_size=2, gpu_memory_gb=80, cpu_cores=16), 0),  # in memory
    (["data_loading.num_workers=8"], Hardware(world_size=8, gpu_memory_gb=80, cpu_cores=16), 1),  # 16 // 8 - 1
    (["data_loading.num_workers=6"], Hardware(world_size=1, gpu_memory_gb=24, cpu_cores=4), 3),
    ([], Hardware(world_size=4, gpu_memory_gb=24, cpu_cores=4), 0),  # one core each: none spare
])
def test_loader_workers_per_process(overrides, hardware, expected):
    cfg = load_config(None, BASE + overrides)
    plan = resolve_run_plan(cfg, hardware)
    assert plan.loader_workers == expected
    assert plan.resolved_config(cfg).data_loading.num_workers == expected  # what config.yaml records
    if expected != cfg.data_loading.num_workers:
        assert any("data_loading.num_workers" in note for note in plan.notes)
