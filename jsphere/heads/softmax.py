"""Plain softmax and CocoLoss / NormFace.

* ``softmax``: ``logits = x . w_j + b_j``, cross-entropy; nothing normalised, no projection
  (OpenSphere v1 ``SoftmaxLoss``; ``b`` is zero-initialised, shape [C]).
* ``cocoloss`` (alias ``normface``): ``logits = s cos theta_j`` (Liu et al., "Rethinking Feature Discrimination and
  Polymerization for Large-scale Recognition", 2017 / Wang et al., "NormFace", ACM MM 2017).
"""

from __future__ import annotations

import jax.numpy as jnp

from jsphere.heads.base import Head, feature_norm_aux
from jsphere.heads.bounds import POSITIVE
from jsphere.heads.common import softmax_cross_entropy, target
from jsphere.heads.margin_softmax import MarginSoftmax


class Softmax(Head):
    name = "softmax"
    defaults = {}

    def extra_params(self, num_classes):
        return {"b": jnp.zeros((num_classes,), jnp.float32)}

    def project(self, params):
        return params

    def forward(self, params, state, x, labels, step, axis):
        onehot = axis.one_hot(labels, x.dtype)
        logits = x @ params["w"].T + params["b"]
        loss = jnp.mean(softmax_cross_entropy(logits, onehot, axis))
        return loss, state, {"logit_target": jnp.mean(target(logits, onehot, axis)), **feature_norm_aux(x)}


class CocoLoss(MarginSoftmax):
    name = "cocoloss"
    defaults = {"s": 30.0}
    bounds = {"s": POSITIVE}

    def logits(self, cos, onehot, ctx):
        return self.s * cos
