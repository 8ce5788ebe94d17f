"""A head that draws random numbers (ElasticFace) draws them from the step's head key: the same seed gives the
same losses on 1 device, on 8 simulated devices and with the class centres sharded over those 8; another seed
gives other losses, and every step draws anew.

Why the tolerance holds on any CPU: the three runs compute in float64 (parameters, statistics and embeddings) and
differ only in summation order (a batch split over 8 devices, class sums split over 8 shards), which moves a loss
by ~1e-16 of its magnitude; 1e-10 is far above that and far below a wrong draw (another key moves the loss by
percents, see the last assertion).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jsphere import heads, parallel, trainers
from jsphere.heads.sharded import ShardedHead
from tests import tiny_model

C, B, D = 37, 16, 8


def _losses(devices: int, sharded: bool, seed: int = 0) -> list[float]:
    with jax.enable_x64(True):
        mesh = parallel.make_mesh(devices)
        head = heads.build("elastic_cosface", s=16.0, std=0.1, plus=True)
        if sharded:
            head = ShardedHead(head, mesh, C, D)
        setup = trainers.build_setup(lambda: tiny_model.TinyNet(D, rngs=nnx.Rngs(0), dtype=jnp.float64), head,
                                     optax.sgd(0.05), num_classes=C, mesh=mesh, seed=seed)
        state = trainers.init_state(setup)
        step = trainers.make_step(setup)
        losses = []
        for i in range(3):
            state, metrics = step(state, parallel.global_batch(tiny_model.batch(B, C, seed=i), mesh))
            losses.append(float(metrics["loss"]))
        return losses


def test_a_sampling_head_gives_the_same_losses_on_1_and_8_devices_and_class_sharded():
    one = _losses(1, sharded=False)
    np.testing.assert_allclose(_losses(8, sharded=False), one, rtol=1e-10)
    np.testing.assert_allclose(_losses(8, sharded=True), one, rtol=1e-10)
    other = _losses(1, sharded=False, seed=1)
    assert all(abs(a - b) > 1e-3 * abs(a) for a, b in zip(one, other, strict=True))


def test_every_step_draws_new_margins():
    """lr 0 and the same batch twice: only the margins can make the two losses differ."""
    head = heads.build("elastic_arcface", s=16.0, std=0.1)
    setup = trainers.build_setup(lambda: tiny_model.TinyNet(D, rngs=nnx.Rngs(0)), head, optax.sgd(0.0),
                                 num_classes=C, mesh=parallel.make_mesh(1))
    state, step = trainers.init_state(setup), trainers.make_step(setup)
    batch = tiny_model.batch(B, C)
    state, first = step(state, batch)
    state, second = step(state, batch)
    assert float(first["head/margin_mean"]) != float(second["head/margin_mean"])
    assert abs(float(first["loss"]) - float(second["loss"])) > 1e-4
