"""The device mesh, shardings and the multi-process runtime: the one module that owns the mesh.

One mesh axis, ``data``, spans every device of every process. Batches are sharded along it; parameters are
replicated (the class-sharded classifier also shards along it). ``initialize_distributed`` starts
``jax.distributed`` when the job is multi-process (explicit coordinator flags, or SLURM / Open MPI / k8s
auto-detection by JAX).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"

# Environment variables by which a cluster scheduler tells a process it is one of several.
_LAUNCHER_VARS = {
    "SLURM": ("SLURM_NTASKS",),
    "Open MPI": ("OMPI_COMM_WORLD_SIZE",),
    "MPI (PMI)": ("PMI_SIZE",),
    "k8s / torchrun-style": ("JAX_COORDINATOR_ADDRESS",),
}


def _launched_multi_process() -> str | None:
    """The name of the launcher that started this process as one of several, if any."""
    for name, variables in _LAUNCHER_VARS.items():
        for var in variables:
            value = os.environ.get(var)
            if value is None:
                continue
            if var == "JAX_COORDINATOR_ADDRESS" or (value.isdigit() and int(value) > 1):
                return name
    return None


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> bool:
    """Start ``jax.distributed`` for a multi-process job; return whether it was started.

    Explicit arguments win; otherwise a SLURM / MPI / k8s launch with more than one task is auto-detected
    by JAX's cluster plugins. A single-process run starts nothing.
    """
    explicit = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(explicit) and not all(explicit):
        raise ValueError("--coordinator, --num_processes and --process_id must be given together "
                         f"(got coordinator={coordinator!r}, num_processes={num_processes}, process_id={process_id})")
    if all(explicit):
        if num_processes < 1:
            raise ValueError(f"--num_processes={num_processes} must be >= 1 (the number of processes of the job)")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"--process_id={process_id} is outside [0, {num_processes}) (--num_processes="
                             f"{num_processes})")
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--coordinator={coordinator!r} must be host:port (process 0's host and a free port, "
                             "e.g. host0:12345)")
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
        return True
    launcher = _launched_multi_process()
    if launcher is None:
        return False
    logging.info("multi-process launch detected (%s): initializing jax.distributed", launcher)
    jax.distributed.initialize()
    return True


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D ``data`` mesh over all devices of all processes (or the first ``num_devices``), Auto axes."""
    n = num_devices or jax.device_count()
    if n > jax.device_count():
        raise ValueError(f"asked for a mesh of {n} devices but only {jax.device_count()} exist")
    if n == jax.device_count():
        return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,))
    return jax.sharding.Mesh(np.asarray(jax.devices()[:n]), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
    """Leading (batch) axis split over ``data``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_divisible(global_batch: int, mesh: jax.sharding.Mesh, process_count: int) -> None:
    """Fail early (before any compilation) when the global batch does not split evenly."""
    n = mesh.devices.size
    if global_batch % n:
        raise ValueError(
            f"config.batch_size={global_batch} is not divisible by the {n} devices of the mesh; "
            f"use a multiple of {n} (e.g. {max(n, global_batch // n * n)})"
        )
    if global_batch % process_count:
        raise ValueError(f"config.batch_size={global_batch} is not divisible by the {process_count} processes")


def global_batch(local: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """Assemble each process's slice of the batch (``{name: [b, ...]}`` host arrays) into global arrays
    [b * process_count, ...] sharded over ``data``."""
    sharding = batch_sharded(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def describe(mesh: jax.sharding.Mesh) -> str:
    """One line naming the processes and devices the job runs on."""
    kinds = sorted({d.device_kind for d in jax.devices()})
    return (f"JAX {jax.__version__}, process {jax.process_index()}/{jax.process_count()}, "
            f"{jax.local_device_count()} local / "
            f"{jax.device_count()} global devices ({', '.join(kinds)}), mesh {dict(mesh.shape)}")
