"""Mesh and multi-process plumbing: Auto-axis data mesh, global batches, early errors."""

import jax
import numpy as np
import pytest
from jax.sharding import AxisType

from jsphere import parallel


def test_mesh_spans_all_devices_with_auto_data_axis():
    mesh = parallel.make_mesh()
    assert mesh.devices.size == jax.device_count() == 8
    assert mesh.axis_names == ("data",)
    assert tuple(mesh.axis_types) == (AxisType.Auto,)
    assert parallel.make_mesh(2).devices.size == 2


def test_global_batch_is_sharded_along_data():
    mesh = parallel.make_mesh()
    batch = parallel.global_batch({"x": np.arange(16.0).reshape(16, 1)}, mesh)
    assert batch["x"].shape == (16, 1)
    assert batch["x"].sharding.spec == jax.sharding.PartitionSpec("data")
    assert len(batch["x"].addressable_shards) == 8
    np.testing.assert_array_equal(np.asarray(batch["x"]), np.arange(16.0).reshape(16, 1))


def test_batch_not_divisible_by_devices_is_refused_with_a_suggestion():
    with pytest.raises(ValueError, match="batch_size=12 is not divisible by the 8 devices.*multiple of 8"):
        parallel.check_batch_divisible(12, parallel.make_mesh(), 1)


def test_partial_distributed_flags_are_refused():
    with pytest.raises(ValueError, match="must be given together"):
        parallel.initialize_distributed("localhost:1234", None, None)
    with pytest.raises(ValueError, match="outside"):
        parallel.initialize_distributed("localhost:1234", 2, 2)


def test_single_process_launch_starts_nothing(monkeypatch):
    for var in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "JAX_COORDINATOR_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert parallel.initialize_distributed() is False
