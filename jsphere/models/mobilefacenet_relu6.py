"""``mobilefacenet_relu6``: the MobileFaceNet of foamliu/MobileFaceNet (and the apps built on its released
``mobilefacenet.pt``): MobileNetV2 inverted residuals with ReLU6, not insightface's PReLU ``mbf``.

    conv1     [conv 3x3 3->64 /2, BN] + ReLU6                                   112 -> 56
    dw_conv   depthwise 3x3 64 -> bn1 -> ReLU -> pointwise 1x1 64->64 -> bn2 -> ReLU
    features  15 inverted residuals (expansion t, out c, count n, first stride s):
              (2, 64, 5, 2) (4, 128, 1, 2) (2, 128, 6, 1) (4, 128, 1, 2) (2, 128, 2, 1)      56 -> 28 -> 14 -> 7
              each ``conv`` = [[conv 1x1 ->t*cin, BN] + ReLU6, [dw 3x3 /s, BN] + ReLU6, conv 1x1 ->c, BN],
              plus the input when the stride is 1 and the widths match
    conv2     [conv 1x1 128->512, BN] + ReLU6
    gdconv    depthwise 7x7 512 (no padding) -> bn                               7 -> 1
    conv3     conv 1x1 512->D with bias -> bn (BatchNorm2d) -> flatten           (D = 128 in the released model)

All other convs are bias-free; BN eps 1e-5, momentum 0.1; convs kaiming-normal (fan_out), conv3's bias 0. The
released model takes RGB normalised with ImageNet's mean and std (recorded at import). The trunk runs in ``dtype``,
``conv2`` onwards in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere.models import layers
from jsphere.models.base import Backbone

SETTING = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))
INIT = layers.kaiming_normal_fan_out


def conv_bn(cin: int, cout: int, kernel: int, *, stride: int = 1, groups: int = 1, dtype, rngs) -> nnx.List:
    """foamliu's ``ConvBNReLU`` Sequential without its (weightless) ReLU6: keys ``.0.weight`` and ``.1.*``."""
    return nnx.List([layers.conv(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2, groups=groups,
                                 kernel_init=INIT, dtype=dtype, rngs=rngs),
                     layers.BatchNorm(cout, dtype=dtype)])


def _apply(pair: nnx.List, x: jax.Array) -> jax.Array:
    return jax.nn.relu6(pair[1](pair[0](x)))


class DepthwiseSeparable(nnx.Module):
    def __init__(self, channels: int, *, dtype, rngs):
        kw = dict(kernel_init=INIT, dtype=dtype, rngs=rngs)
        self.depthwise = layers.conv(channels, channels, 3, padding=1, groups=channels, **kw)
        self.pointwise = layers.conv(channels, channels, 1, **kw)
        self.bn1 = layers.BatchNorm(channels, dtype=dtype)
        self.bn2 = layers.BatchNorm(channels, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.bn1(self.depthwise(x)))
        return jax.nn.relu(self.bn2(self.pointwise(x)))


class InvertedResidual(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int, *, dtype, rngs):
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.conv = nnx.List([
            conv_bn(cin, hidden, 1, dtype=dtype, rngs=rngs),
            conv_bn(hidden, hidden, 3, stride=stride, groups=hidden, dtype=dtype, rngs=rngs),
            layers.conv(hidden, cout, 1, kernel_init=INIT, dtype=dtype, rngs=rngs),
            layers.BatchNorm(cout, dtype=dtype),
        ])

    def __call__(self, x: jax.Array) -> jax.Array:
        out = _apply(self.conv[1], _apply(self.conv[0], x))
        out = self.conv[3](self.conv[2](out))
        return x + out if self.residual else out


class GDConv(nnx.Module):
    def __init__(self, channels: int, *, dtype=jnp.float32, rngs):
        self.depthwise = layers.conv(channels, channels, 7, groups=channels, kernel_init=INIT, dtype=dtype, rngs=rngs)
        self.bn = layers.BatchNorm(channels, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.bn(self.depthwise(x))


class MobileFaceNetReLU6(Backbone):
    def __init__(self, *, embed_dim: int = 512, dtype=jnp.float32, rngs: nnx.Rngs):
        self.embed_dim = embed_dim
        self.dtype = dtype
        self.conv1 = conv_bn(3, 64, 3, stride=2, dtype=dtype, rngs=rngs)
        self.dw_conv = DepthwiseSeparable(64, dtype=dtype, rngs=rngs)
        blocks, cin = [], 64
        for expansion, cout, count, stride in SETTING:
            for i in range(count):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion, dtype=dtype, rngs=rngs))
                cin = cout
        self.features = nnx.List(blocks)
        tail = layers.param_dtype(dtype)  # float32, or float64 for a float64 model
        self.conv2 = conv_bn(cin, 512, 1, dtype=tail, rngs=rngs)
        self.gdconv = GDConv(512, dtype=tail, rngs=rngs)
        self.conv3 = layers.conv(512, embed_dim, 1, bias=True, kernel_init=INIT, dtype=tail, rngs=rngs)
        self.conv3.bias = nnx.Param(jnp.zeros((embed_dim,), tail))
        self.bn = layers.BatchNorm(embed_dim, dtype=tail)

    def forward(self, x: jax.Array) -> jax.Array:
        x = self.dw_conv(_apply(self.conv1, x.astype(self.dtype)))
        for block in self.features:
            x = block(x)
        x = self.gdconv(_apply(self.conv2, x.astype(layers.param_dtype(self.dtype))))
        return self.bn(self.conv3(x)).reshape(x.shape[0], -1)
