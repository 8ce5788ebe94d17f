"""ElasticFace (a head that draws random numbers): it agrees with an independent PyTorch implementation of the
released code fed the same margins, draws N(m, std) margins from the key it is given (and refuses to run without
one), and draws the same margins class-sharded as dense.

Tolerances: against PyTorch, jsphere in float32 and the reference in float64 on the same float32 margins, as
``test_independent_references.py`` (loss rel 1e-5, gradients 1e-5 of their largest entry: float32 rounding of a
16-term dot product and an 11-class softmax at s = 64 stays near 1e-6). Sharded against dense in float64 as
``tests/test_sharded_head.py``: both draw the same margins from one key; only summation order differs (1e-16).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from converters.torch_reference import losses as ref
from jsphere import heads, parallel
from jsphere.heads.elasticface import elastic_margins, plus_margins
from jsphere.heads.sharded import ShardedHead

B, D, C = 6, 16, 11
RTOL = 1e-5
STD = 0.1  # wider than the default 0.05, so that ElasticFace+'s reordering moves the loss clearly


def _inputs(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, D)).astype(np.float32) * 3
    w = rng.normal(size=(C, D)).astype(np.float32)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    y = rng.integers(0, C, B)
    y[0] = y[1]  # a repeated label
    return x, w, y


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=RTOL * float(np.max(np.abs(b))))


@pytest.mark.parametrize("plus", [None, "released", "ranked"])
@pytest.mark.parametrize(("name", "fn", "m"), [("elastic_arcface", ref.elastic_arcface, 0.5),
                                               ("elastic_cosface", ref.elastic_cosface, 0.35)])
def test_elasticface_agrees_with_the_released_code_on_the_same_margins(name, fn, m, plus):
    x, w, y = _inputs(3)
    head = heads.build(name, m=m, std=STD, plus=plus is not None, plus_order=plus or "released")
    params, state = head.init(jax.random.key(0), D, C)
    key = jax.random.key(42)
    loss, (gx, gw) = jax.value_and_grad(lambda x, w: head.loss({**params, "w": w}, state, x, y, 0, key=key)[0],
                                        argnums=(0, 1))(jnp.asarray(x), jnp.asarray(w))
    margins = np.asarray(elastic_margins(key, m, STD, B, jnp.float32))
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tw = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    tloss = fn(tx, tw, torch.tensor(y), torch.tensor(margins, dtype=torch.float64), plus=plus)
    tloss.backward()
    np.testing.assert_allclose(float(loss), float(tloss.detach()), rtol=RTOL)
    _close(np.asarray(gx), tx.grad.numpy())
    _close(np.asarray(gw), tw.grad.numpy())


def test_plus_orders_hand_out_the_same_draws_and_ranked_gives_the_closest_sample_the_smallest():
    rng = np.random.default_rng(0)
    margins, cos_y = jnp.asarray(rng.normal(0.5, 0.05, 9)), jnp.asarray(rng.uniform(-1, 1, 9))
    order = np.argsort(-np.asarray(cos_y))
    released = np.asarray(plus_margins(margins, cos_y, "released"))
    ranked = np.asarray(plus_margins(margins, cos_y, "ranked"))
    np.testing.assert_array_equal(np.sort(released), np.sort(margins))
    np.testing.assert_array_equal(released, np.sort(margins)[order])
    np.testing.assert_array_equal(ranked[order], np.sort(margins))  # descending cosine, ascending margin
    assert not np.array_equal(released, ranked)  # this draw's order is not its own inverse


def test_margins_are_drawn_from_n_m_std_by_the_key_given():
    draws = np.asarray(elastic_margins(jax.random.key(7), 0.5, 0.05, 20_000, jnp.float32))
    assert abs(draws.mean() - 0.5) < 4 * 0.05 / np.sqrt(len(draws))  # 4 standard errors
    assert abs(draws.std() - 0.05) < 0.002
    np.testing.assert_array_equal(draws, np.asarray(elastic_margins(jax.random.key(7), 0.5, 0.05, 20_000,
                                                                    jnp.float32)))


def test_a_float64_run_draws_the_margins_of_a_float32_run():
    """The float64 references (tests, the GPU check) must see the float32 run's margins, not other draws."""
    single = np.asarray(elastic_margins(jax.random.key(3), 0.5, 0.05, 64, jnp.float32))
    with jax.enable_x64(True):
        double = np.asarray(elastic_margins(jax.random.key(3), 0.5, 0.05, 64, jnp.float64))
    assert double.dtype == np.float64
    np.testing.assert_allclose(double, single, rtol=1e-7)  # float32 rounding of m + std z


def test_the_loss_follows_the_key_and_a_missing_key_is_refused():
    x, w, y = _inputs(4)
    head = heads.build("elastic_arcface", std=STD)
    params, state = head.init(jax.random.key(0), D, C)

    def loss(key):
        return float(head.loss({**params, "w": jnp.asarray(w)}, state, jnp.asarray(x), jnp.asarray(y), 0, key=key)[0])

    assert loss(jax.random.key(1)) == loss(jax.random.key(1))
    assert loss(jax.random.key(1)) != loss(jax.random.key(2))
    with pytest.raises(ValueError, match="head 'elastic_arcface' draws random numbers: pass a PRNG key"):
        head.loss(params, state, jnp.asarray(x), jnp.asarray(y), 0)


@pytest.mark.parametrize("plus", [False, True])
def test_class_sharded_elasticface_draws_what_the_dense_head_draws(plus):
    """37 classes padded to 40 over 8 simulated devices, float64."""
    with jax.enable_x64(True):
        head = heads.build("elastic_arcface", std=STD, plus=plus)
        sharded = ShardedHead(head, parallel.make_mesh(), 37, D)
        params, state = sharded.init(jax.random.key(0))
        params = {"w": params["w"].astype(jnp.float64)}
        x = jax.random.normal(jax.random.key(1), (16, D), jnp.float64) * 3
        y = jax.random.randint(jax.random.key(2), (16,), 0, 37)
        key = jax.random.key(5)
        ls, gs = jax.jit(jax.value_and_grad(lambda p, x: sharded.loss(p, state, x, y, 3, key=key)[0]))(params, x)
        ld, gd = jax.value_and_grad(lambda p, x: head.loss(p, state, x, y, 3, key=key)[0])({"w": params["w"][:37]}, x)
    np.testing.assert_allclose(float(ls), float(ld), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(gs["w"][:37]), np.asarray(gd["w"]), rtol=0,
                               atol=1e-10 * float(np.max(np.abs(np.asarray(gd["w"])))))
