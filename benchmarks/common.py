"""Shared benchmark plumbing: device/thread set-up, timing, and the machine description."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable

import jax

from jsphere.errors import UserError
from jsphere.models import cpu_conv


def setup_threads(device: str) -> int:
    """Use every core for both frameworks; pin JAX to the requested platform (call before JAX's first
    computation). A ``gpu`` that JAX cannot see is refused in one line."""
    cores = os.cpu_count() or 1
    if device == "cpu":
        if not jax.config.jax_platforms:  # a platform named by JAX_PLATFORMS is kept
            jax.config.update("jax_platforms", "cpu")
    else:
        try:
            jax.devices(device)
        except RuntimeError:
            raise UserError(f"--device {device}: JAX sees no GPU (its devices: "
                            f"{', '.join(sorted({d.platform for d in jax.devices()}))}); on a GPU host install "
                            "jsphere[cuda12] (and unset JAX_PLATFORMS=cpu), or use --device cpu") from None
    return cores


def torch_device(device: str):
    """The ``torch.device`` of ``--device``; a GPU that PyTorch cannot use is refused in one line."""
    import torch  # optional (jsphere[torch]): imported only where PyTorch is timed

    if device == "gpu" and not torch.cuda.is_available():
        raise UserError("--device gpu: this PyTorch build sees no CUDA GPU (torch.cuda.is_available() is False); "
                        "install a CUDA build of torch, pass --no-torch where offered, or use --device cpu")
    return torch.device("cuda" if device == "gpu" else "cpu")


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


def interleaved(runners: dict[str, Callable[[], object]], rounds: int, warmup: int = 2,
                settle: int = 1) -> dict[str, float]:
    """Median seconds per call of each runner, timed in turns (one block per runner per round), so that the
    drift of a shared machine's load hits every runner alike. Each block first makes ``settle`` untimed calls:
    the first call after another framework's pays for its thread pool still spinning and its evicted caches,
    which a training loop never does."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            for _ in range(settle):
                fn()
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


@contextlib.contextmanager
def xla_convolutions(enabled: bool = True):
    """Trace jsphere models with XLA's own CPU convolution (the baseline of ``jsphere.models.cpu_conv``)."""
    previous = os.environ.get(cpu_conv.ENV_SWITCH)
    if enabled:
        os.environ[cpu_conv.ENV_SWITCH] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(cpu_conv.ENV_SWITCH, None)
        else:
            os.environ[cpu_conv.ENV_SWITCH] = previous


def isa() -> str:
    """The widest x86 vector extension of this CPU (AVX512-BF16 / AVX-512 / AVX2 / SSE), or the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next(line for line in f if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return platform.machine()
    for flag, name in (("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2")):
        if flag in flags:
            return name
    return "SSE"


def machine() -> str:
    devices = jax.devices()
    kind = devices[0].device_kind if devices else "?"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu} ({isa()}), {os.cpu_count()} cores; JAX {jax.__version__} on {len(devices)} x {kind}"
