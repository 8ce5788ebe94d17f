"""Shared benchmark plumbing: device/thread set-up, timing, and the machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable


def setup_threads(device: str) -> int:
    """Use every core for both frameworks; pin JAX to the requested platform (call before importing jax)."""
    cores = os.cpu_count() or 1
    if device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return cores


def timed(fn: Callable[[], object], steps: int, warmup: int = 1) -> tuple[float, list[float]]:
    """(median seconds per call, all timings) of ``fn`` (which must block until its work is done)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def machine() -> str:
    import jax

    devices = jax.devices()
    kind = devices[0].device_kind if devices else "?"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores; JAX {jax.__version__} on {len(devices)} x {kind}"
