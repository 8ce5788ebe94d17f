"""Face-recognition backbones as Flax NNX modules whose trees mirror the PyTorch state_dicts."""

from jsphere.models.base import INPUT_SHAPE, Backbone
from jsphere.models.layers import BatchNorm, ChannelPReLU, FrozenParam, param_dtype, set_bn_stat_groups
from jsphere.models.pure_state import load_pure_state, param_count, pure_state
from jsphere.models.registry import build, names, summary

__all__ = [
    "INPUT_SHAPE",
    "Backbone",
    "BatchNorm",
    "ChannelPReLU",
    "FrozenParam",
    "build",
    "names",
    "load_pure_state",
    "param_count",
    "param_dtype",
    "pure_state",
    "set_bn_stat_groups",
    "summary",
]
