"""What several stages measure alike: the device's allocator figures, XLA's FLOP count of a compiled step, and
the loop recipe's compiled train step (``recipe_step``) with its timing (``time_steps``), which ``train5`` and
``loop`` both report. Imported by the stages only, inside the stage process.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from benchmarks.common import timed
from benchmarks.gpu_check import loop_config
from benchmarks.gpu_check.profiles import Profile
from jsphere import parallel, trainers


def device_memory() -> dict[str, float]:
    """The device's allocator figures (GiB) when the backend reports them (GPUs do, CPUs may not)."""
    stats = jax.devices()[0].memory_stats() or {}
    return {k: round(stats[k] / 2**30, 3) for k in ("peak_bytes_in_use", "bytes_in_use") if k in stats}


def cost_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def recipe_step(profile: Profile, seed: int = 0) -> tuple[Any, dict, dict, dict[str, Any]]:
    """(compiled step, state holder, batch, facts) of the loop's recipe on a random batch of its shapes."""
    config = loop_config.get_config(f"{profile.name},")
    mesh = parallel.make_mesh(config.num_devices or None)
    setup = trainers.make_setup(config, mesh, profile.identities)
    holder = {"state": trainers.init_state(setup)}
    step = trainers.make_step(setup)
    rng = np.random.default_rng(seed)
    b = config.batch_size
    batch = parallel.global_batch({"image": rng.uniform(-1, 1, (b, 112, 112, 3)).astype(np.float32),
                                   "label": rng.integers(0, profile.identities, b).astype(np.int32)}, mesh)
    start = time.perf_counter()
    compiled = step.lower(holder["state"], batch).compile()
    facts = {"compile_s": round(time.perf_counter() - start, 2), "flops_per_step": cost_flops(compiled),
             "arch": config.model.name, "batch": b, "classes": profile.identities, "dtype": config.model.dtype}
    jax.block_until_ready(holder["state"])
    return compiled, holder, batch, facts


def time_steps(compiled, holder: dict, batch: dict, steps: int) -> float:
    """Median seconds of ``steps`` steps (after one untimed)."""

    def run():
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready(metrics)

    return timed(run, steps, warmup=1)[0]
