"""IR / IR-SE ResNets (``ir_{18,34,50,100,152,200}``, ``ir_se_*``): the backbone of AdaFace, CurricularFace,
face.evoLVe and TreB1eN's InsightFace_Pytorch, with their state_dict names (``input_layer``, ``body.N``,
``output_layer``).

``input_layer`` = [conv 3x3 3->64, BN, PReLU] (stride 1); ``body`` = the units of four stages, the first unit of
each with stride 2 (112 -> 56 -> 28 -> 14 -> 7); ``output_layer`` = [BN2d, Dropout, Flatten (channel-major), Linear
C*7*7 -> D, BN1d]. A unit returns ``res_layer(x) + shortcut_layer(x)`` (no activation after the add); the shortcut
is ``MaxPool2d(1, stride)`` (plain subsampling, no weights) when the channels do not change, else [conv 1x1 /s, BN].

* basic unit, ``unit_bn=True`` (AdaFace ``BasicBlockIR``, the default): res_layer = [BN, conv3x3, BN, PReLU,
  conv3x3 /s, BN], SE (IR-SE) added as ``res_layer.se_block``;
* basic unit, ``unit_bn=False`` (face.evoLVe / TreB1eN / CurricularFace ``bottleneck_IR``): res_layer = [BN,
  conv3x3, PReLU, conv3x3 /s, BN], SE as ``res_layer.5``;
* bottleneck unit (AdaFace ``BottleneckIR``, its 152 and 200; ``bottleneck=True``): res_layer = [BN, conv1x1 ->C/4,
  BN, PReLU, conv3x3, BN, PReLU, conv1x1 /s ->C, BN] (+ ``se_block``), stage widths 256/512/1024/2048.

SE (reduction 16): ``x * sigmoid(fc2(relu(fc1(mean_hw(x)))))``, fc1/fc2 bias-free 1x1 convs. The output BN1d has a
weight and bias in face.evoLVe and TreB1eN (``features_affine=True``) and none in AdaFace and CurricularFace
(default). Units per stage: 18 (2,2,2,2), 34 (3,4,6,3), 50 (3,4,14,3), 100 (3,13,30,3), 152 (3,8,36,3),
200 (3,24,36,3). BN eps 1e-5, momentum 0.1; convs and the linear layer kaiming-normal (fan_out), linear bias 0
(AdaFace's and CurricularFace's init). The trunk runs in ``dtype``; Flatten onwards in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere.models import layers
from jsphere.models.base import Backbone, flatten_channel_major

DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3),
          200: (3, 24, 36, 3)}
BASIC_CHANNELS = (64, 128, 256, 512)
BOTTLENECK_CHANNELS = (256, 512, 1024, 2048)
SE_REDUCTION = 16
INIT = layers.kaiming_normal_fan_out


def default_bottleneck(depth: int) -> bool:
    """AdaFace builds 152 and 200 from bottleneck units, the shallower depths from basic ones."""
    return depth >= 152


class Constant(nnx.Variable):
    """A fixed array of a module: neither trained, nor saved, nor counted (an ``affine=False`` BN's unit scale)."""


def stats_only_batchnorm(num_features: int, dtype=jnp.float32) -> layers.BatchNorm:
    """PyTorch ``BatchNorm1d(n, affine=False)``: running statistics only (scale 1 and bias 0 are constants)."""
    bn = layers.BatchNorm(num_features, dtype=dtype)
    bn.scale = Constant(bn.scale[...])
    bn.bias = Constant(bn.bias[...])
    return bn


class SEModule(nnx.Module):
    def __init__(self, channels: int, *, dtype, rngs: nnx.Rngs):
        self.fc1 = layers.conv(channels, channels // SE_REDUCTION, 1, kernel_init=INIT, dtype=dtype, rngs=rngs)
        self.fc2 = layers.conv(channels // SE_REDUCTION, channels, 1, kernel_init=INIT, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        pooled = jnp.mean(x.astype(layers.param_dtype(x.dtype)), axis=(1, 2), keepdims=True).astype(x.dtype)
        return x * jax.nn.sigmoid(self.fc2(jax.nn.relu(self.fc1(pooled))))


class Unit(nnx.Module):
    """One residual unit; ``torch_names`` maps the attribute ``se_block`` to AdaFace's ``res_layer.se_block``."""

    torch_names = {"se_block": "res_layer.se_block"}

    def __init__(self, cin: int, cout: int, stride: int, *, se: bool, unit_bn: bool, bottleneck: bool, dtype,
                 rngs: nnx.Rngs):
        kw = dict(kernel_init=INIT, dtype=dtype, rngs=rngs)
        self.stride = stride
        if cin == cout:
            self.shortcut_layer = None
        else:
            self.shortcut_layer = nnx.List([layers.conv(cin, cout, 1, stride=stride, **kw),
                                            layers.BatchNorm(cout, dtype=dtype)])
        bn = lambda c: layers.BatchNorm(c, dtype=dtype)
        prelu = lambda c: layers.ChannelPReLU(c, dtype=dtype)
        if bottleneck:
            mid = cout // 4
            res = [bn(cin), layers.conv(cin, mid, 1, **kw), bn(mid), prelu(mid),
                   layers.conv(mid, mid, 3, padding=1, **kw), bn(mid), prelu(mid),
                   layers.conv(mid, cout, 1, stride=stride, **kw), bn(cout)]
        elif unit_bn:
            res = [bn(cin), layers.conv(cin, cout, 3, padding=1, **kw), bn(cout), prelu(cout),
                   layers.conv(cout, cout, 3, stride=stride, padding=1, **kw), bn(cout)]
        else:
            res = [bn(cin), layers.conv(cin, cout, 3, padding=1, **kw), prelu(cout),
                   layers.conv(cout, cout, 3, stride=stride, padding=1, **kw), bn(cout)]
        squeeze = SEModule(cout, dtype=dtype, rngs=rngs) if se else None
        if squeeze is not None and not (unit_bn or bottleneck):
            res.append(squeeze)  # face.evoLVe / TreB1eN / CurricularFace: res_layer.5
            squeeze = None
        self.res_layer = nnx.List(res)
        self.se_block = squeeze

    def __call__(self, x: jax.Array) -> jax.Array:
        out = x
        for layer in self.res_layer:
            out = layer(out)
        if self.se_block is not None:
            out = self.se_block(out)
        if self.shortcut_layer is not None:
            shortcut = self.shortcut_layer[1](self.shortcut_layer[0](x))
        else:
            shortcut = x[:, ::self.stride, ::self.stride] if self.stride > 1 else x
        return out + shortcut


class Flatten(nnx.Module):
    """PyTorch ``x.view(N, -1)`` on NCHW, i.e. the channel-major flatten of NHWC maps."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return flatten_channel_major(x)


class IR(Backbone):
    def __init__(
        self,
        depth: int,
        *,
        se: bool = False,
        embed_dim: int = 512,
        unit_bn: bool = True,
        bottleneck: bool | None = None,
        features_affine: bool = False,
        dropout: float = 0.4,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if depth not in DEPTHS:
            raise ValueError(f"IR depth must be one of {sorted(DEPTHS)}, got {depth}")
        bottleneck = default_bottleneck(depth) if bottleneck is None else bool(bottleneck)
        if bottleneck and not unit_bn:
            raise ValueError("IR bottleneck units exist only in AdaFace's layout (unit_bn=True)")
        self.embed_dim = embed_dim
        self.dtype = dtype
        self.input_layer = nnx.List([layers.conv(3, 64, 3, padding=1, kernel_init=INIT, dtype=dtype, rngs=rngs),
                                     layers.BatchNorm(64, dtype=dtype), layers.ChannelPReLU(64, dtype=dtype)])
        units, cin = [], 64
        channels = BOTTLENECK_CHANNELS if bottleneck else BASIC_CHANNELS
        for cout, count in zip(channels, DEPTHS[depth], strict=True):
            for i in range(count):
                units.append(Unit(cin, cout, 2 if i == 0 else 1, se=se, unit_bn=unit_bn, bottleneck=bottleneck,
                                  dtype=dtype, rngs=rngs))
                cin = cout
        self.body = nnx.List(units)
        fc = nnx.Linear(cin * 7 * 7, embed_dim, kernel_init=INIT, bias_init=nnx.initializers.zeros,
                        param_dtype=layers.param_dtype(dtype), rngs=rngs)
        self.output_layer = nnx.List([
            layers.BatchNorm(cin, dtype=dtype), layers.dropout(dropout, rngs=rngs), Flatten(), fc,
            layers.BatchNorm(embed_dim, dtype=layers.param_dtype(dtype)) if features_affine
            else stats_only_batchnorm(embed_dim, layers.param_dtype(dtype)),
        ])

    def forward(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        for layer in self.input_layer:
            x = layer(x)
        for unit in self.body:
            x = unit(x)
        bn, drop, flatten, fc, features = self.output_layer
        x = flatten(bn(x)).astype(layers.param_dtype(self.dtype))
        return features(fc(drop(x)))
