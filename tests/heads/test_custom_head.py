"""The README's "Write your own loss" example, kept here so that it is checked: a head written on the
margin-softmax template, and the same head written from scratch on ``Head`` (the way for heads that are not a
softmax over cosine logits). Both must match a NumPy reference, and the template head must run class-sharded."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jsphere import heads, parallel
from jsphere.heads import Head, Margined, MarginSoftmax, register
from jsphere.heads.base import feature_norm_aux
from jsphere.heads.common import softmax_cross_entropy
from jsphere.heads.sharded import ShardedHead


# --- README example (after `import jax.numpy as jnp` and `from jsphere.heads import Margined, MarginSoftmax, register`)
@register
class WarmCosFace(MarginSoftmax):
    """CosFace whose margin grows linearly over the first ``warmup`` steps: m(t) = m min(1, t / warmup)."""

    name = "warm_cosface"
    defaults = {"s": 64.0, "m": 0.35, "warmup": 1000}

    def margined(self, cos, onehot, ctx):  # cos [B, C]: embeddings and centres normalised
        m = self.m * jnp.minimum(1.0, ctx.step / self.warmup)
        return Margined(self.s * (cos - m * onehot), aux={"margin": m})
# --- README example: end


@register
class WarmCosFaceFromScratch(Head):
    """The same loss on the bare ``Head`` interface: ``forward`` does the cosines, one-hot and cross-entropy."""

    name = "warm_cosface_from_scratch"
    defaults = {"s": 64.0, "m": 0.35, "warmup": 1000}

    def forward(self, params, state, x, labels, step, axis):
        cos = self.cosine(x, params["w"])  # [B, C], centres normalised as the head's recipe says
        onehot = axis.one_hot(labels, cos.dtype)
        m = self.m * jnp.minimum(1.0, step / self.warmup)
        loss = jnp.mean(softmax_cross_entropy(self.s * (cos - m * onehot), onehot, axis))
        return loss, state, {"margin": m, **feature_norm_aux(x)}


def numpy_warm_cosface(x, w, y, step, s=64.0, m=0.35, warmup=1000):
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    logits = s * (cos - m * min(1.0, step / warmup) * np.eye(w.shape[0])[y])
    logits -= logits.max(axis=1, keepdims=True)
    return np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(y)), y])


@pytest.mark.parametrize("name", ["warm_cosface", "warm_cosface_from_scratch"])
def test_readme_example_head_matches_its_numpy_reference(name):
    head = heads.build(name, warmup=100)
    params, state = head.init(jax.random.key(0), feat_dim=16, num_classes=10)
    x = np.random.default_rng(0).normal(size=(8, 16)).astype(np.float32)
    y = np.arange(8) % 10
    loss, _, aux = head.loss(params, state, jnp.asarray(x), jnp.asarray(y), step=50)
    expected = numpy_warm_cosface(x, np.asarray(params["w"]), y, 50, warmup=100)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)  # float32 against float64: a few ulps of ~10
    assert float(aux["margin"]) == np.float32(0.175)


def test_template_head_runs_class_sharded_with_the_dense_loss():
    """13 classes padded to 16 over 8 simulated devices; the softmax normaliser is global."""
    head = heads.build("warm_cosface", warmup=100)
    sharded = ShardedHead(head, parallel.make_mesh(), 13, 16)
    params, state = sharded.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (16, 16))
    y = jax.random.randint(jax.random.key(2), (16,), 0, 13)
    loss, _, aux = jax.jit(lambda p, x: sharded.loss(p, state, x, y, 50))(params, x)
    expected = numpy_warm_cosface(np.asarray(x, np.float64), np.asarray(params["w"][:13], np.float64),
                                  np.asarray(y), 50, warmup=100)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert float(aux["margin"]) == np.float32(0.175)
