"""Margin losses of hyperspherical face recognition, one short file each, as pure jittable functions.

``build(name, **hparams)`` returns a head with ``init``, ``project`` and ``loss``; see ``base.Head``. The heads
that are a softmax over logits made from the cosines share the ``margin_softmax.MarginSoftmax`` template.
``ShardedHead(head, mesh, num_classes, feat_dim)`` splits any class-shardable head's centres over the devices.
"""

from jsphere.heads.base import Head
from jsphere.heads.common import ClassAxis
from jsphere.heads.margin_softmax import MarginContext, Margined, MarginSoftmax
from jsphere.heads.registry import ALIASES, build, from_config, names, register
from jsphere.heads.sharded import ShardedHead

__all__ = ["ALIASES", "ClassAxis", "Head", "MarginContext", "MarginSoftmax", "Margined", "ShardedHead", "build",
           "from_config", "names", "register"]
