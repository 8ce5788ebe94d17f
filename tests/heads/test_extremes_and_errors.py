"""Heads stay finite at the edges (cos = ±1, theta + m > pi, one-class batches, s = 64 in float32) and
reject bad input with errors that name the problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jsphere import heads

D, C = 8, 5
CLASS_HEADS = [n for n in heads.names() if n not in ("simple", "softmax")]


def _finite(tree):
    return all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(tree))


def _loss_and_grads(head, params, state, x, y):
    """A key for the heads that draw random numbers (ElasticFace's margins); the others ignore it."""
    key = jax.random.key(0)
    return jax.value_and_grad(lambda p, x: head.loss(p, state, x, y, 0, key=key)[0], argnums=(0, 1))(params, x)


@pytest.mark.parametrize("name", CLASS_HEADS)
def test_embeddings_on_and_opposite_their_centres_give_finite_loss_and_gradients(name):
    head = heads.build(name)
    params, state = head.init(jax.random.key(0), D, C)
    w = heads.build("cosface").project({"w": params["w"]})["w"]
    rows = w.shape[0] // C
    y = jnp.array([0, 1, 2, 3])
    x = jnp.stack([w[0] * 20.0, -w[rows] * 20.0, w[2 * rows] * 0.5, w[3 * rows] * 100.0])  # cos = 1, -1, 1, 1
    loss, grads = _loss_and_grads(head, {**params, "w": w}, state, x, y)
    assert bool(jnp.isfinite(loss)) and _finite(grads), name


def test_arcface_target_beyond_pi_saturates_instead_of_wrapping():
    head = heads.build("arcface", s=64.0, m=0.5)
    w = jnp.eye(C, D)
    x = -w[:1] * 3  # theta_y = pi, theta_y + m > pi
    loss, _, _ = head.loss({"w": w}, {}, x, jnp.array([0]), 0)
    cos_mu = np.cos(3.14159)
    expected = -64 * cos_mu * 0 + np.log(np.exp(64 * cos_mu) + 4 * np.exp(0.0)) - 64 * cos_mu
    assert float(loss) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", CLASS_HEADS)
def test_a_batch_of_one_class_is_finite(name):
    head = heads.build(name)
    params, state = head.init(jax.random.key(1), D, C)
    x = jax.random.normal(jax.random.key(2), (6, D))
    loss, grads = _loss_and_grads(head, params, state, x, jnp.full((6,), 2))
    assert bool(jnp.isfinite(loss)) and _finite(grads), name


def test_sphereface_plus_mhe_is_zero_for_one_class_and_positive_otherwise():
    head = heads.build("spherefaceplus", lambda_mhe=1.0)
    params, state = head.init(jax.random.key(0), D, C)
    x = jax.random.normal(jax.random.key(3), (4, D))
    _, _, aux = head.loss(params, state, x, jnp.array([1, 1, 1, 1]), 0)
    assert float(aux["mhe"]) == 0.0
    _, _, aux = head.loss(params, state, x, jnp.array([1, 2, 1, 3]), 0)
    assert float(aux["mhe"]) > 0.0


@pytest.mark.parametrize("name", ["arcface", "cosface", "sphereface", "curricularface", "magface", "adaface",
                                  "combined_margin", "subcenter_arcface", "elastic_arcface", "elastic_cosface"])
def test_float32_at_scale_64_is_stable_for_confident_and_wrong_predictions(name):
    head = heads.build(name, s=64.0)
    params, state = head.init(jax.random.key(0), 512, 1000)
    w = heads.build("cosface").project({"w": params["w"]})["w"]
    rows = w.shape[0] // 1000
    x = jnp.concatenate([w[:8 * rows:rows] * 30.0, -w[8 * rows:16 * rows:rows] * 30.0])
    y = jnp.arange(16)
    loss, grads = _loss_and_grads(head, {**params, "w": w}, state, x.astype(jnp.float32), y)
    assert bool(jnp.isfinite(loss)) and _finite(grads), name


def test_losses_are_jittable_with_traced_step():
    head = heads.build("sphereface_r_s", dm=0.4, steps=(3,))
    params, state = head.init(jax.random.key(0), D, C)
    x, y = jax.random.normal(jax.random.key(1), (4, D)), jnp.array([0, 1, 2, 3])
    f = jax.jit(lambda step: head.loss(params, state, x, y, step)[2]["margin"])
    assert float(f(0)) == pytest.approx(1.0)
    assert float(f(3)) == pytest.approx(1.4)


# ---------------------------------------------------------------------------------------------- errors
@pytest.fixture
def cosface():
    head = heads.build("cosface")
    params, state = head.init(jax.random.key(0), D, C)
    return head, params, state


def test_label_out_of_range_is_named(cosface):
    head, params, state = cosface
    with pytest.raises(ValueError, match="label 5 is outside \\[0, 5\\)"):
        head.loss(params, state, jnp.ones((2, D)), jnp.array([0, 5]), 0)
    with pytest.raises(ValueError, match="label -1"):
        head.loss(params, state, jnp.ones((2, D)), jnp.array([-1, 0]), 0)


def test_float_labels_are_refused(cosface):
    head, params, state = cosface
    with pytest.raises(TypeError, match="labels must be integers, got dtype float32"):
        head.loss(params, state, jnp.ones((2, D)), jnp.array([0.0, 1.0]), 0)


def test_wrong_feature_dim_is_named(cosface):
    head, params, state = cosface
    with pytest.raises(ValueError, match="feature dim 7 but the class centres have 8"):
        head.loss(params, state, jnp.ones((2, 7)), jnp.array([0, 1]), 0)


def test_unknown_head_lists_valid_names():
    with pytest.raises(ValueError, match="unknown head 'arcfce'; valid names: .*arcface"):
        heads.build("arcfce")


def test_unknown_hyper_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown hyper-parameter\\(s\\) margin; valid: m, s"):
        heads.build("cosface", margin=0.3)


def test_invalid_choice_is_named():
    with pytest.raises(ValueError, match="magn_type='B' is not one of"):
        heads.build("sphereface2", magn_type="B")


@pytest.mark.parametrize(("name", "hparams", "fragment"), [
    ("arcface", dict(m=-5), "m=-5 must be a number in [0, 3.14159)"),
    ("cosface", dict(s=0), "s=0 must be a number > 0"),
    ("sphereface", dict(m=0.5), "m=0.5 must be a number >= 1"),
    ("sphereface2", dict(alpha=1.0), "alpha=1.0 must be a number in (0, 1)"),
    ("subcenter_arcface", dict(k=2.5), "k=2.5 must be an integer >= 1"),
    ("combined_margin", dict(m2=float("nan")), "m2=nan must be"),
    ("arcface", dict(m="0.5"), "m='0.5' must be a number"),
    ("magface", dict(l_a=120.0), "needs l_a < u_a"),
    ("gbcosface", dict(min_v=0.8), "min_v=0.8 is above max_v=0.7"),
    ("elastic_arcface", dict(std=-0.1), "std=-0.1 must be a number >= 0"),
    ("elastic_cosface", dict(plus_order="sorted"), "plus_order='sorted' is not one of"),
])
def test_hyper_parameters_outside_their_range_are_refused(name, hparams, fragment):
    with pytest.raises(ValueError) as error:
        heads.build(name, **hparams)
    assert fragment in str(error.value)


def test_every_head_accepts_its_own_defaults():
    for name in heads.names():
        heads.build(name)


def test_aliases_build_the_same_head():
    assert type(heads.build("normface")) is type(heads.build("cocoloss"))
    assert type(heads.build("amsoftmax")) is type(heads.build("cosface"))
