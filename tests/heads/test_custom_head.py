"""The README's "Write your own loss" example, kept here so that it is checked."""

import jax
import jax.numpy as jnp
import numpy as np

# --- README example: begin
from jsphere.heads import Head, register
from jsphere.heads.base import feature_norm_aux
from jsphere.heads.common import cosine, softmax_cross_entropy


@register
class WarmCosFace(Head):
    """CosFace whose margin grows linearly over the first ``warmup`` steps: m(t) = m min(1, t / warmup)."""

    name = "warm_cosface"
    defaults = {"s": 64.0, "m": 0.35, "warmup": 1000}

    def forward(self, params, state, x, labels, step, axis):
        cos = cosine(x, params["w"])  # [B, C], centres normalised straight-through
        onehot = axis.one_hot(labels, cos.dtype)
        m = self.m * jnp.minimum(1.0, step / self.warmup)
        loss = jnp.mean(softmax_cross_entropy(self.s * (cos - m * onehot), onehot, axis))
        return loss, state, {"margin": m, **feature_norm_aux(x)}
# --- README example: end


def numpy_warm_cosface(x, w, y, step, s=64.0, m=0.35, warmup=1000):
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    logits = s * (cos - m * min(1.0, step / warmup) * np.eye(w.shape[0])[y])
    logits -= logits.max(axis=1, keepdims=True)
    return np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(y)), y])


def test_readme_example_head_matches_its_numpy_reference():
    from jsphere import heads

    head = heads.build("warm_cosface", warmup=100)
    params, state = head.init(jax.random.key(0), feat_dim=16, num_classes=10)
    x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    y = np.arange(8) % 10
    loss, _, aux = head.loss(params, state, jnp.asarray(x), jnp.asarray(y), step=50)
    expected = numpy_warm_cosface(x, np.asarray(params["w"]), y, 50, warmup=100)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert float(aux["margin"]) == np.float32(0.175)
