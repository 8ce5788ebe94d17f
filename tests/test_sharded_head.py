"""Class-sharded heads on 8 simulated devices: equal to the dense head at sample rate 1, exact over the sampled
classes below 1, 1/8 of the dense per-device memory, and resumable onto another device count.

Why the tolerances hold on any CPU: the sharded and the dense head are compared in float64 (64-bit JAX, float64
embeddings and centres), where their different summation orders (per-device partial sums over 5 classes, then
a sum over 8 devices, against one sum over 37) move a loss or a gradient entry by ~1e-16 of the largest
magnitude involved and cannot flip a branch (a margin's ``cos > threshold``, CurricularFace's hard examples);
``RTOL`` = 1e-10 is 1e6 above that and far below what a fault gives (a class on the wrong device, a missing
all-reduce, a padded class in the softmax: changes of 1e-3 to 1). Head states that a head stores in float32 are
rounded once from equal float64 values: they may differ by one float32 rounding, 2 eps allows it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jsphere import checkpoint, heads, parallel, train
from jsphere.heads.sharded import ShardedHead
from tests import train_config

C, D, B = 37, 16, 16  # 37 classes: padded to 40 over 8 devices
RTOL = 1e-10


@pytest.fixture(scope="module")
def mesh():
    return parallel.make_mesh()


@pytest.fixture
def float64():
    with jax.enable_x64(True):
        yield


def _float64(params):
    return jax.tree.map(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, params)


def _batch(seed=1):
    x = jax.random.normal(jax.random.key(seed), (B, D), jnp.float64) * 3
    y = jax.random.randint(jax.random.key(seed + 1), (B,), 0, C)
    return x, y


def _close(a, b):
    assert a.dtype == b.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=RTOL * float(np.max(np.abs(b))))


@pytest.mark.parametrize("name", ["arcface", "cosface", "sphereface", "sphereface2", "curricularface", "softmax",
                                  "subcenter_arcface", "combined_margin"])
def test_sample_rate_one_equals_the_dense_head(mesh, float64, name):
    head = heads.build(name)
    sharded = ShardedHead(head, mesh, C, D)
    params, state = sharded.init(jax.random.key(0))
    params = _float64(params)
    assert params["w"].sharding.spec == P("data")
    real = head.centre_rows(C)
    dense = {k: v[:real] if k in sharded.class_params else v for k, v in params.items()}
    x, y = _batch()

    def grads(fn, p):
        return jax.value_and_grad(lambda p, x: fn(p, state, x, y, 3)[0], argnums=(0, 1))(p, x)

    ls, (gps, gxs) = jax.jit(lambda p, x: grads(sharded.loss, p))(params, x)
    ld, (gpd, gxd) = grads(head.loss, dense)
    np.testing.assert_allclose(float(ls), float(ld), rtol=RTOL)
    _close(gxs, gxd)
    for k in gpd:
        _close(gps[k][:real] if k in sharded.class_params else gps[k], gpd[k])
    assert not np.any(np.asarray(gps["w"][real:]))  # padded classes get no gradient
    _, new_s, _ = sharded.loss(params, state, x, y, 3)
    _, new_d, _ = head.loss(dense, state, x, y, 3)
    for k in new_d:
        rtol = RTOL if new_d[k].dtype == jnp.float64 else 2 * float(jnp.finfo(new_d[k].dtype).eps)
        np.testing.assert_allclose(np.asarray(new_s[k]), np.asarray(new_d[k]), rtol=rtol)


def test_sampled_negatives_only_sampled_centres_get_gradient_and_the_loss_is_the_dense_one_over_them(mesh, float64):
    head = heads.build("arcface", s=16.0)
    sharded = ShardedHead(head, mesh, 400, D, sample_rate=0.1)  # 50 classes/device, keep max(5, min(16, 50)) = 16
    params, state = sharded.init(jax.random.key(0))
    params = _float64(params)
    x = jax.random.normal(jax.random.key(1), (B, D), jnp.float64)
    y = jax.random.randint(jax.random.key(2), (B,), 0, 400)
    loss, g = jax.value_and_grad(lambda p: sharded.loss(p, state, x, y, 7)[0])(params)
    touched = np.flatnonzero(np.any(np.asarray(g["w"]) != 0, axis=1))
    assert set(np.asarray(y).tolist()) <= set(touched.tolist())
    assert len(touched) == 8 * 16
    index = {c: i for i, c in enumerate(touched)}
    dense_loss, _, _ = head.loss({"w": params["w"][touched]}, state, x, jnp.asarray([index[int(c)] for c in y]), 7)
    np.testing.assert_allclose(float(loss), float(dense_loss), rtol=RTOL)


def test_per_device_classifier_memory_is_an_eighth_of_the_dense_one(mesh):
    """2M classes x 512: compile-time memory analysis, nothing allocated."""
    head = heads.build("cosface")
    sharded = ShardedHead(head, mesh, 2_000_000, 512)
    batch = NamedSharding(mesh, P("data"))
    x = jax.ShapeDtypeStruct((64, 512), jnp.float32, sharding=batch)
    y = jax.ShapeDtypeStruct((64,), jnp.int32, sharding=batch)
    ws = jax.ShapeDtypeStruct((sharded.rows, 512), jnp.float32, sharding=batch)
    wd = jax.ShapeDtypeStruct((2_000_000, 512), jnp.float32, sharding=parallel.replicated(mesh))
    compiled = {
        "sharded": jax.jit(jax.grad(lambda w, x, y: sharded.loss({"w": w}, {}, x, y, 0)[0])).lower(ws, x, y),
        "dense": jax.jit(jax.grad(lambda w, x, y: head.loss({"w": w}, {}, x, y, 0)[0])).lower(wd, x, y),
    }
    memory = {k: v.compile().memory_analysis() for k, v in compiled.items()}
    if memory["dense"] is None:
        pytest.skip("this backend reports no memory analysis")
    ratio = memory["sharded"].argument_size_in_bytes / memory["dense"].argument_size_in_bytes
    assert 0.12 < ratio < 0.13
    assert memory["sharded"].temp_size_in_bytes < memory["dense"].temp_size_in_bytes / 8


def test_bad_sharding_requests_are_refused(mesh):
    with pytest.raises(ValueError, match="at least one class per device: 5 classes < 8 devices"):
        ShardedHead(heads.build("arcface"), mesh, 5, D)
    with pytest.raises(ValueError, match="sample_rate must be in \\(0, 1\\], got 1.5"):
        ShardedHead(heads.build("arcface"), mesh, 40, D, sample_rate=1.5)
    with pytest.raises(ValueError, match="cannot be class-sharded"):
        ShardedHead(heads.build("simple"), mesh, 40, D)


def test_sharded_training_resumes_on_any_device_count(tmp_path, synthetic_data):
    """12 classes on 8 devices are padded to 16 rows; 4 devices split that padding and keep it; 6 devices cannot,
    so the head re-pads the saved centres (and their momentum) to its own 12 rows, keeping the 12 real ones."""
    config = train_config.get_config(str(synthetic_data))
    config.head.sharded = True
    config.head.sample_rate = 0.5
    config.batch_size = 24
    config.total_steps = 3
    config.optim.milestones = ()  # constant lr: the milestone of train_config lies past the end
    train.train_and_evaluate(config, str(tmp_path))
    meta = checkpoint.load_meta(tmp_path)["head"]
    assert meta["rows"] == 12 and meta["padded_rows"] == 16
    saved = checkpoint.load_weights(tmp_path).head["params"]["w"]
    assert saved.shape == (12, 16)
    config.total_steps, config.num_devices = 6, 4
    assert np.isfinite(train.train_and_evaluate(config, str(tmp_path))["train/loss"])
    assert checkpoint.load_meta(tmp_path)["head"]["padded_rows"] == 16
    before = checkpoint.load_weights(tmp_path).head["params"]["w"]
    config.total_steps, config.num_devices = 7, 6
    config.optim.lr = 0.0  # no update: the re-padded centres must come back as they were saved (projected)
    config.optim.weight_decay = 0.0
    assert np.isfinite(train.train_and_evaluate(config, str(tmp_path))["train/loss"])
    assert checkpoint.load_meta(tmp_path)["head"]["padded_rows"] == 12
    after = checkpoint.load_weights(tmp_path).head["params"]["w"]
    exact = before.astype(np.float64) / np.linalg.norm(before.astype(np.float64), axis=1, keepdims=True)
    # the step's float32 projection of a 16-d row, in any summation order: 16 roundings of 6e-8 in its sum of
    # squares (halved by the square root), 2 in rsqrt and the product: <= 6e-7 from the exact one on any CPU
    np.testing.assert_allclose(after, exact, rtol=1e-6)
