"""Heads beyond OpenSphere agree with independent PyTorch implementations (converters/torch_reference/losses.py).

Random inputs; jsphere runs in float32, the PyTorch reference in float64. Loss: relative error <= 1e-5;
gradients w.r.t. embeddings and projected centres: max error <= 1e-5 of the gradient's largest entry.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from converters.torch_reference import losses as ref
from jsphere import heads

B, D, C = 6, 16, 11
RTOL = 1e-5


def _inputs(seed, rows=C):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, D)).astype(np.float32) * 3
    w = rng.normal(size=(rows, D)).astype(np.float32)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    y = rng.integers(0, C, B)
    y[0] = y[1]  # a repeated label
    return x, w, y


def _jax(head, params, state, x, y, step=0):
    def f(x, w):
        return head.loss({**params, "w": w}, state, x, y, step)[0]

    loss, (gx, gw) = jax.value_and_grad(f, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(params["w"]))
    return float(loss), np.asarray(gx), np.asarray(gw)


def _torch(fn, x, w, y, **kw):
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tw = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    loss = fn(tx, tw, torch.tensor(y), **kw)
    loss.backward()
    return float(loss.detach()), tx.grad.numpy(), tw.grad.numpy()


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=RTOL * float(np.max(np.abs(b))))


def _compare(a, b):
    np.testing.assert_allclose(a[0], b[0], rtol=RTOL)
    _close(a[1], b[1])
    _close(a[2], b[2])




@pytest.mark.parametrize("name,hparams,fn,kw", ref.HEAD_CASES,
                         ids=[c[0] + str(i) for i, c in enumerate(ref.HEAD_CASES)])
def test_head_agrees_with_pytorch_reference(name, hparams, fn, kw):
    x, w, y = _inputs(1)
    head = heads.build(name, **hparams)
    params, state = head.init(jax.random.key(0), D, C)
    _compare(_jax(head, {**params, "w": w}, state, x, y), _torch(fn, x, w, y, **kw))


def test_uniface_agrees_with_pytorch_reference_including_bias_gradient():
    x, w, y = _inputs(2)
    head = heads.build("uniface")
    params, state = head.init(jax.random.key(0), D, C)
    np.testing.assert_allclose(float(params["b"][0]), np.log(C * 10.0), rtol=1e-6)
    params = {**params, "w": jnp.asarray(w)}
    loss, grads = jax.value_and_grad(lambda p: head.loss(p, state, jnp.asarray(x), jnp.asarray(y), 0)[0])(params)
    tx, tw = torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(float(params["b"][0]), dtype=torch.float64, requires_grad=True)
    tloss = ref.uniface(tx, tw, torch.tensor(y), tb)
    tloss.backward()
    np.testing.assert_allclose(float(loss), float(tloss.detach()), rtol=RTOL)
    _close(np.asarray(grads["w"]), tw.grad.numpy())
    np.testing.assert_allclose(float(grads["b"][0]), float(tb.grad), rtol=RTOL)


def test_subcenter_arcface_agrees_with_pytorch_reference():
    x, w, y = _inputs(3, rows=C * 3)
    head = heads.build("subcenter_arcface", k=3)
    params, state = head.init(jax.random.key(0), D, C)
    assert params["w"].shape == (C * 3, D)
    _compare(_jax(head, {**params, "w": w}, state, x, y), _torch(ref.subcenter_arcface, x, w, y))


def test_a_softmax_caffe_forward_and_true_gradient_agree_with_pytorch():
    x, w, y = _inputs(4)
    head = heads.build("a_softmax_caffe", caffe_backward=False)
    params, state = head.init(jax.random.key(0), D, C)
    step = 10
    lam = max(5.0, 1000.0 / (1 + 0.12 * (step + 1)))
    _compare(_jax(head, {**params, "w": w}, state, x, y, step=step), _torch(ref.a_softmax_true_gradient, x, w, y,
                                                                             lam=lam))


def test_a_softmax_caffe_backward_rescales_target_coefficients_like_the_caffe_layer():
    """Same loss; non-target x-gradients equal the true ones; the target's differs by the Caffe rescaling."""
    x, w, y = _inputs(5)
    caffe = heads.build("a_softmax_caffe")
    true = heads.build("a_softmax_caffe", caffe_backward=False)
    params, state = caffe.init(jax.random.key(0), D, C)
    params = {**params, "w": jnp.asarray(w)}
    lc, gc = _jax(caffe, params, state, x, y, step=5000)[:2]
    lt, gt = _jax(true, params, state, x, y, step=5000)[:2]
    assert lc == pytest.approx(lt, rel=1e-6)
    assert not np.allclose(gc, gt, rtol=1e-3)
    # Caffe's weight gradient is the plain inner product's: dW = g^T x with g = dL/dlogits.
    logits_grad = jax.grad(lambda z: jnp.mean(jax.nn.logsumexp(z, -1) - z[jnp.arange(B), jnp.asarray(y)]))
    from jsphere.heads.a_softmax_caffe import _logits

    onehot = jax.nn.one_hot(jnp.asarray(y), C)
    lam = caffe.annealed_lambda(5000)
    g = logits_grad(_logits(jnp.asarray(x), jnp.asarray(w), onehot, lam))
    gw = jax.grad(lambda w: caffe.loss({**params, "w": w}, state, jnp.asarray(x), jnp.asarray(y), 5000)[0])(
        params["w"])
    _close(np.asarray(gw), np.asarray(g.T @ jnp.asarray(x)))


def test_a_softmax_caffe_lambda_anneals_from_base_to_lambda_min():
    head = heads.build("a_softmax_caffe")
    assert float(head.annealed_lambda(0)) == pytest.approx(1000 / 1.12, rel=1e-6)
    assert float(head.annealed_lambda(100_000)) == pytest.approx(5.0)


def test_gbcosface_with_alpha_zero_is_cosface_with_double_margin():
    x, w, y = _inputs(6)
    gb = heads.build("gbcosface", alpha=0.0, s=32.0, m=0.16)
    cos = heads.build("cosface", s=32.0, m=0.32)
    params, state = gb.init(jax.random.key(0), D, C)
    a = _jax(gb, {**params, "w": w}, state, x, y)
    b = _jax(cos, {"w": w}, {}, x, y)
    _compare(a, b)


def test_running_state_heads_update_their_state():
    x, w, y = _inputs(7)
    for name, key in [("curricularface", "t"), ("adaface", "batch_mean"), ("gbcosface", "boundary")]:
        head = heads.build(name)
        params, state = head.init(jax.random.key(0), D, C)
        _, new_state, _ = head.loss({**params, "w": jnp.asarray(w)}, state, jnp.asarray(x), jnp.asarray(y), 0)
        assert float(new_state[key]) != float(state[key]), name
