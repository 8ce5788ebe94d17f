"""A-Softmax exactly as the original SphereFace Caffe layer (``MarginInnerProduct``, type QUADRUPLE, m = 4).

Liu et al., "SphereFace", CVPR 2017 (wy1iu/sphereface). Features are *not* normalised; centres are (the
training step projects them, as the layer does in place). With c = cos theta, lambda annealed per step::

    lambda = max(lambda_min, base (1 + gamma it)^-power),   it = step + 1
    psi(c) = sign3 (8c^4 - 8c^2 + 1) + sign4,  sign3 = sign(c) sign(2c^2 - 1),  sign4 = 2 sign(c) + sign3 - 3
    f_j = ||x|| c_j (j != y),   f_y = (lambda ||x|| c_y + ||x|| psi(c_y)) / (1 + lambda),   loss = CE(f, y)

``caffe_backward=True`` (default) reproduces the layer's backward with a custom VJP: the gradient w.r.t. the
centres is that of the plain inner product (x^T top_diff), and the target column's x-gradient
``coeff_w w + coeff_x x`` has (coeff_w, coeff_x) rescaled to unit length; ``False`` uses the true gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jsphere.heads.bounds import NON_NEGATIVE
from jsphere.heads.margin_softmax import Margined, MarginSoftmax


def _parts(x, w, onehot):
    norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
    inner = x @ w.T
    c = inner / norm
    sign0 = jnp.sign(c)
    sign3 = sign0 * jnp.sign(2.0 * c**2 - 1.0)
    sign4 = 2.0 * sign0 + sign3 - 3.0
    return norm, inner, c, sign3, sign4


def _logits(x, w, onehot, lam):
    norm, inner, c, sign3, sign4 = _parts(x, w, onehot)
    psi = sign3 * (8.0 * c**4 - 8.0 * c**2 + 1.0) + sign4
    return jnp.where(onehot > 0, (lam * inner + norm * psi) / (1.0 + lam), inner)


@jax.custom_vjp
def caffe_margin_logits(x, w, onehot, lam):
    return _logits(x, w, onehot, lam)


def _fwd(x, w, onehot, lam):
    return _logits(x, w, onehot, lam), (x, w, onehot, lam)


def _bwd(res, g):
    x, w, onehot, lam = res
    norm, _, c, sign3, sign4 = _parts(x, w, onehot)
    coeff_w = sign3 * (32.0 * c**3 - 16.0 * c)
    coeff_x = -(sign3 * (24.0 * c**4 - 8.0 * c**2 - 1.0) - sign4) / norm
    scale = jnp.sqrt(coeff_w**2 + coeff_x**2)
    coeff_w, coeff_x = coeff_w / scale, coeff_x / scale
    g_t = jnp.sum(g * onehot, axis=-1, keepdims=True)
    cw_t = jnp.sum(coeff_w * onehot, axis=-1, keepdims=True)
    cx_t = jnp.sum(coeff_x * onehot, axis=-1, keepdims=True)
    w_t = onehot @ w
    dx = (g * (1.0 - onehot)) @ w + (lam / (1.0 + lam)) * g_t * w_t + g_t / (1.0 + lam) * (cw_t * w_t + cx_t * x)
    dw = g.T @ x
    return dx, dw, jnp.zeros_like(onehot), jnp.zeros_like(lam)


caffe_margin_logits.defvjp(_fwd, _bwd)


class ASoftmaxCaffe(MarginSoftmax):
    name = "a_softmax_caffe"
    defaults = {"base": 1000.0, "gamma": 0.12, "power": 1.0, "lambda_min": 5.0, "caffe_backward": True}
    bounds = {"base": NON_NEGATIVE, "gamma": NON_NEGATIVE, "power": NON_NEGATIVE, "lambda_min": NON_NEGATIVE}
    class_shardable = False  # the Caffe layer's backward is written for the whole class axis

    def annealed_lambda(self, step):
        it = jnp.asarray(step, jnp.float32) + 1.0
        return jnp.maximum(self.lambda_min, self.base * (1.0 + self.gamma * it) ** (-self.power))

    def cosines(self, params, x):
        """Only for the aux metric: the logits are computed from the unnormalised features."""
        return (x @ self.unit_centres(params["w"]).T) / jnp.linalg.norm(x, axis=-1, keepdims=True)

    def margined(self, cos, onehot, ctx):
        w = self.unit_centres(ctx.params["w"])
        lam = self.annealed_lambda(ctx.step).astype(ctx.x.dtype)
        margin_logits = caffe_margin_logits if self.caffe_backward else _logits
        return Margined(margin_logits(ctx.x, w, onehot, lam), aux={"lambda": lam})
