"""Every OpenSphere head reproduces the reference losses and gradient sums of OpenSphere's own code (below).

The references were computed in float64 with OpenSphere's own v1 modules (x[i,j] = 3 sin(8i + j + 1),
W[j,k] = cos(10j + k + 1) in v1's [D, C] layout, y = [0, 3, 5, 9]); Σ|∂W| is taken w.r.t. the projected
centres. Tolerance: relative error <= 1e-6.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jsphere import heads

B, D, C = 4, 8, 10
LABELS = np.array([0, 3, 5, 9])

# (name, hparams, loss, sum|dL/dx|, sum|dL/dW|)
REFERENCE = [
    ("cocoloss", dict(s=30), 5.8281248991, 17.4674320808, 129.1950903073),
    ("sphereface", dict(s=30, m=1.5), 26.7807436844, 17.9988036745, 136.3526332104),
    ("sphereface", dict(s=30, m=1.7), 31.7712757604, 17.9988036751, 136.3526332185),
    ("cosface", dict(s=30, m=0.35), 16.2723897532, 17.9987861227, 136.3523949150),
    ("arcface", dict(s=30, m=0.5), 19.9212359890, 17.9988033953, 136.3526294885),
    ("sphereface2", dict(magn_type="C", alpha=0.7, r=40, m=0.4, t=3, lw=10), 6.6550797458, 4.9141836380,
     34.5657767886),
    ("sphereface2", dict(magn_type="A", alpha=0.7, r=40, m=0.5, t=3, lw=10), 2.4257839373, 4.9140025666,
     34.5643941357),
    ("sphereface2", dict(magn_type="M", alpha=0.7, r=40, m=1.7, t=3, lw=10), 2.6431574702, 4.9141387546,
     34.5654539610),
    ("spherefaceplus", dict(s=30, m=1.5, lambda_mhe=0.1), 26.9590752056, 17.9988036745, 138.2161767956),
    ("gasoftmax", dict(s=30, m=1.5), 19.5602558476, 11.0960251324, 83.0255245552),
    ("sphereface_r_h", dict(magn_type="v0", s=60, m=1.4, lw=50), 38.0893042955, 30.3866125007, 234.1981794757),
    ("sphereface_r_h", dict(magn_type="v1", s=60, m=1.4, lw=50), 38.0893042955, 30.3866125007, 234.1981794757),
    ("sphereface_r_h", dict(magn_type="v2", s=60, m=1.4, lw=50), 28.2790673842, 30.2811641599, 230.6421716718),
    ("sphereface_r_s", dict(magn_type="v2", s=30, dm=1.5, steps=(), t=0.01, lw=50), 4.7113469896, 4.7620956826,
     31.6916818279),
    ("sphereface_r_s", dict(magn_type="v2", s=30, dm=0.4, steps=(0,), t=0.01, lw=50), 8.7610946942, 5.4237950393,
     32.0502399148),
]


def _inputs():
    i, j = np.meshgrid(np.arange(B), np.arange(D), indexing="ij")
    x = 3.0 * np.sin(8 * i + j + 1)
    jj, k = np.meshgrid(np.arange(D), np.arange(C), indexing="ij")
    w_v1 = np.cos(10 * jj + k + 1)  # [D, C]
    return jnp.asarray(x), jnp.asarray(w_v1.T), jnp.asarray(LABELS)


def _loss_and_grads(head, params, state, x, y, **kw):
    def f(x, params):
        return head.loss(params, state, x, y, 0, **kw)[0]

    loss, (gx, gp) = jax.value_and_grad(f, argnums=(0, 1))(x, params)
    return float(loss), gx, gp


@pytest.mark.parametrize("name,hparams,ref_loss,ref_gx,ref_gw", REFERENCE,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(REFERENCE)])
def test_head_matches_opensphere_reference(name, hparams, ref_loss, ref_gx, ref_gw):
    with jax.enable_x64(True):
        x, w, y = _inputs()
        head = heads.build(name, **hparams)
        params, state = head.init(jax.random.key(0), D, C)
        params = {**params, "w": w}
        loss, gx, gp = _loss_and_grads(head, params, state, x, y)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
        np.testing.assert_allclose(float(jnp.sum(jnp.abs(gx))), ref_gx, rtol=1e-6)
        np.testing.assert_allclose(float(jnp.sum(jnp.abs(gp["w"]))), ref_gw, rtol=1e-6)


def test_plain_softmax_matches_reference_with_raw_weights():
    with jax.enable_x64(True):
        x, w, y = _inputs()
        head = heads.build("softmax")
        params = {"w": w, "b": jnp.zeros((C,), jnp.float64)}
        loss, gx, gp = _loss_and_grads(head, params, {}, x, y)
        np.testing.assert_allclose(loss, 3.2831015056, rtol=1e-6)
        np.testing.assert_allclose(float(jnp.sum(jnp.abs(gx))), 6.1506652594, rtol=1e-6)
        np.testing.assert_allclose(float(jnp.sum(jnp.abs(gp["w"]))), 22.1234509374, rtol=1e-6)


@pytest.mark.parametrize("num_classes,hparams,b0", [
    (8631, dict(magn_type="C", alpha=0.7, r=40, m=0.4, t=3), 5.78456848752958),
    (8631, dict(magn_type="A", alpha=0.7, r=40, m=0.5, t=3), 21.78456843718707),
    (8631, dict(magn_type="M", alpha=0.7, r=40, m=1.7, t=3), 21.784568475087895),
    (85742, dict(magn_type="C", alpha=0.8, r=64, m=0.5, t=3), 6.027254611083219),
    (10, dict(magn_type="C", alpha=0.7, r=40, m=0.4, t=3), 12.950177875501316),
])
def test_sphereface2_bias_initialisation_formula(num_classes, hparams, b0):
    from jsphere.heads.sphereface2 import initial_bias

    assert initial_bias(num_classes, **hparams) == pytest.approx(b0, rel=1e-12)


def test_sphereface2_bias_gradient_matches_reference():
    with jax.enable_x64(True):
        x, w, y = _inputs()
        head = heads.build("sphereface2", magn_type="C", alpha=0.7, r=40, m=0.4, t=3, lw=10)
        params, state = head.init(jax.random.key(0), D, C)
        np.testing.assert_allclose(float(params["b"][0]), 12.9501781464, rtol=1e-9)
        _, _, gp = _loss_and_grads(head, {**params, "w": w}, state, x, y)
        np.testing.assert_allclose(float(gp["b"][0]), 0.1042321946, rtol=1e-6)


def test_simple_matches_reference_with_a_polarlike_bank():
    with jax.enable_x64(True):
        x, _, y = _inputs()
        i, j = np.meshgrid(np.arange(12), np.arange(D), indexing="ij")
        bank = jnp.asarray(np.cos(0.7 * i + 0.3 * j))
        bank_labels = jnp.asarray([0, 3, 5, 9, 0, 3, 1, 2, 9, 9, 4, 5])
        head = heads.build("simple", wrap="polarlike", b_theta=0.3, alpha=0.001, r=2, m=0, lw=500, init_bias=-10)
        params, state = head.init(jax.random.key(0), D, C)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        loss, gx, gp = _loss_and_grads(head, params, state, x, y, bank_features=bank, bank_labels=bank_labels,
                                       self_offset=0)
        np.testing.assert_allclose(loss, 2.5039281338, rtol=1e-6)
        np.testing.assert_allclose(float(jnp.sum(jnp.abs(gx))), 0.0565497133, rtol=1e-6)
        np.testing.assert_allclose(float(gp["bias"][0]), -0.2483248379, rtol=1e-6)
