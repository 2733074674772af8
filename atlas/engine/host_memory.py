"""Keep freed host memory for reuse in a CPU training process (glibc's malloc).

A step on the CPU frees its gradients and activations and allocates blocks of the same sizes again at the
next step. glibc serves blocks above its mmap threshold with a fresh mmap and gives them back with munmap,
and trims the top of its heap once more than the trim threshold is free, so every step faults the same
megabytes back in, page by page, and the kernel zeroes each page first. Its own dynamic threshold does not
always rise far enough to stop that: which process keeps faulting depends on the order of its first frees
(a DDP-wrapped model's gradient buckets avoid it; the same loop without DDP does not). Setting both
thresholds once at the start keeps those blocks in the heap, where the next step reuses them: the peak
resident memory is the same (it was in use at that size), only the give-back between steps stops.
Figures in benchmarks/RESULTS.md ("host_memory.py — page faults between CPU steps").

A user who chose their own allocator settings (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_, or a
preloaded jemalloc, tcmalloc or mimalloc) is left alone, as is any C library other than glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# glibc's own ceiling for its dynamic mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): blocks up to
# this size come from the heap; larger ones still get their own mapping
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30  # free memory at the heap's top kept before it is given back
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
OTHER_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")


def _left_alone_because() -> str | None:
    """Why this process's allocator settings are not Atlas's to change (None: they are)."""
    chosen = [name for name in USER_SETTINGS if os.environ.get(name)]
    if chosen:
        return f"{', '.join(chosen)} set in the environment"
    preloaded = os.environ.get("LD_PRELOAD", "")
    other = next((name for name in OTHER_ALLOCATORS if name in preloaded), None)
    if other:
        return f"{other} preloaded"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return f"not glibc ({platform.system()} {platform.libc_ver()[0] or 'libc'})"
    return None


def mallopt(param: int, value: int) -> bool:
    """glibc's `mallopt(param, value)` for this process; whether glibc took it."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return libc.mallopt(param, value) == 1


def keep_freed_host_memory() -> str:
    """Set glibc's mmap and trim thresholds for this process (once, before the first step); the log line
    that says what was done or why nothing was."""
    reason = _left_alone_because()
    if reason is not None:
        return f"host memory: allocator settings left as they are ({reason})"
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    if not done:
        return "host memory: glibc refused the mmap/trim thresholds; allocator settings left as they are"
    return (f"host memory: freed blocks up to {MMAP_THRESHOLD >> 20} MiB stay in the heap for the next step "
            f"(glibc mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold {TRIM_THRESHOLD >> 30} GiB; "
            "set MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ to choose your own)")
