"""Stage ``environment``: the device (name, memory) and the versions of JAX, jaxlib, Flax, Optax, PyTorch, CUDA and
cuDNN as both frameworks see them."""

from __future__ import annotations

import importlib.metadata
import os
import platform

import jax

from benchmarks.common import machine
from benchmarks.gpu_check.context import Context
from benchmarks.gpu_check.profiles import Profile


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def jax_cudnn_version() -> str | None:
    """cuDNN as jaxlib's CUDA plugin loaded it (a private module: None when it moves)."""
    try:
        from jax._src.lib import cuda_versions

        return str(cuda_versions.cudnn_get_version()) if cuda_versions else None
    except Exception:  # private API, any failure means "unknown"
        return None


def run(name: str, profile: Profile, ctx: Context) -> None:
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    dists = ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "jax-cuda12-plugin", "flax", "optax",
             "orbax-checkpoint", "grain", "numpy", "torch")
    ctx.record(jax_platform=device.platform, device_kind=device.device_kind, device_count=jax.device_count(),
               device_memory_gib=round(stats["bytes_limit"] / 2**30, 2) if "bytes_limit" in stats else None,
               machine=machine(), python=platform.python_version(), cpus=os.cpu_count(),
               versions={d: _version(d) for d in dists},
               jax_cudnn=jax_cudnn_version() if device.platform == "gpu" else None,
               jax_environment=jax.print_environment_info(return_string=True))
    expected = "gpu" if profile.device == "gpu" else "cpu"
    ctx.check(f"JAX runs on the {expected} (it runs on {device.platform})", device.platform == expected)
    print(f"  {device.device_kind} ({device.platform}), jax {jax.__version__}", flush=True)
    try:
        import torch  # optional here: its absence is this stage's finding, not its error
    except ImportError:
        ctx.check("PyTorch is installed (the converter and speed stages need it)", False)
        return
    facts = {"torch_cuda": torch.version.cuda, "torch_sees_gpu": torch.cuda.is_available(),
             "torch_cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        facts.update(torch_device=props.name, torch_device_memory_gib=round(props.total_memory / 2**30, 2))
    ctx.record(**facts)
    if profile.device == "gpu":
        ctx.check("PyTorch sees the GPU", torch.cuda.is_available())
    print(f"  torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {facts['torch_cudnn']})", flush=True)
