"""Test-wide settings: offline, headless rendering; tests/ on sys.path for the shared helpers."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests use tiny models: one intra-op thread avoids OpenMP spin-waits that make a busy 2-core machine
# (CI, or several test processes at once) 10-100x slower, and keeps results independent of core count.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
