"""Face-recognition backbones as Flax NNX modules whose trees mirror the PyTorch state_dicts; ``register(name)``
adds one of your own (README: "Write your own backbone")."""

from jsphere.models.base import INPUT_SHAPE, Backbone
from jsphere.models.layers import BatchNorm, ChannelPReLU, FrozenParam, param_dtype, set_bn_stat_groups
from jsphere.models.pure_state import load_pure_state, param_count, pure_state
from jsphere.models.registry import build, is_built_in, names, register, summary

__all__ = [
    "INPUT_SHAPE",
    "Backbone",
    "BatchNorm",
    "ChannelPReLU",
    "FrozenParam",
    "build",
    "is_built_in",
    "names",
    "load_pure_state",
    "param_count",
    "param_dtype",
    "pure_state",
    "register",
    "set_bn_stat_groups",
    "summary",
]
