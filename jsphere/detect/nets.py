"""MTCNN's three networks (Zhang et al. 2016) as NNX modules, NHWC, with the layer names of OpenSphere's
``mtcnn_pytorch`` port (``features.conv1`` ... become ``conv1`` ...; see ``converters.import_mtcnn``).

* P-Net: a fully convolutional 12x12 window classifier (stride 2) giving face logits and box offsets per window;
* R-Net: 24x24 crops -> face logits, box offsets;
* O-Net: 48x48 crops -> face logits, box offsets, five landmarks (x1..x5, y1..y5 relative to the box).

Max pooling is PyTorch's ``ceil_mode=True`` (a last, partial window). The networks return logits; the
detector applies the softmax. R-Net and O-Net flatten their last feature map in NHWC order (H, W, C); the
importer permutes the dense weights of the PyTorch files (whose flatten orders differ between ports) to it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from jsphere.models import layers


def max_pool_ceil(x: jax.Array, window: int, stride: int) -> jax.Array:
    """``nn.MaxPool2d(window, stride, ceil_mode=True)`` over an NHWC map: a partial last window takes the maximum
    of what it covers (PyTorch drops a window that would start past the input, which never happens here)."""
    def extra(size: int) -> int:
        out = -(-(size - window) // stride) + 1
        return max(0, (out - 1) * stride + window - size)

    _, h, w, _ = x.shape
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1),
                             ((0, 0), (0, extra(h)), (0, extra(w)), (0, 0)))


class _Net(nnx.Module):
    # XLA's own convolution (jsphere's CPU reformulations in models.cpu_conv cost ~10x the compile time on these
    # small layers for no measurable gain), at full float32 precision: on GPUs XLA would otherwise use TF32, whose
    # ~1e-3 errors move face probabilities across the thresholds
    def _conv(self, cin: int, cout: int, kernel: int, *, rngs: nnx.Rngs) -> nnx.Conv:
        return nnx.Conv(cin, cout, (kernel, kernel), padding="VALID", kernel_init=layers.torch_default_kernel,
                        bias_init=layers.torch_default_bias(cin * kernel * kernel), dtype=self.dtype,
                        param_dtype=jnp.float32, precision=lax.Precision.HIGHEST,
                        conv_general_dilated=lax.conv_general_dilated, rngs=rngs)

    def _dense(self, fin: int, fout: int, *, rngs: nnx.Rngs) -> nnx.Linear:
        return nnx.Linear(fin, fout, kernel_init=layers.torch_default_kernel,
                          bias_init=layers.torch_default_bias(fin), dtype=self.dtype, param_dtype=jnp.float32,
                          precision=lax.Precision.HIGHEST, rngs=rngs)

    def _prelu(self, channels: int) -> layers.ChannelPReLU:
        return layers.ChannelPReLU(channels, dtype=self.dtype)


class PNet(_Net):
    """Proposal network. ``__call__(x, mask)`` -> (offsets [N, h, w, 4], logits [N, h, w, 2]). ``mask`` (bool,
    the shape of the first activation map, [N or 1, H - 2, W - 2]) marks the cells whose 3x3 input window lies in
    one real image when ``x`` is several images pasted on a padded canvas: the others become -inf before the
    ceil-mode pooling, so every output cell of an image equals P-Net's on that image alone (its last, partial
    pooling window included)."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.dtype = dtype
        self.conv1, self.prelu1 = self._conv(3, 10, 3, rngs=rngs), self._prelu(10)
        self.conv2, self.prelu2 = self._conv(10, 16, 3, rngs=rngs), self._prelu(16)
        self.conv3, self.prelu3 = self._conv(16, 32, 3, rngs=rngs), self._prelu(32)
        self.conv4_1 = self._conv(32, 2, 1, rngs=rngs)
        self.conv4_2 = self._conv(32, 4, 1, rngs=rngs)

    @staticmethod
    def output_size(h: int, w: int) -> tuple[int, int]:
        """P-Net's output map for an h x w input: 3x3 conv, 2x2/2 ceil pool, two 3x3 convs."""
        return -(-(h - 2) // 2) - 4, -(-(w - 2) // 2) - 4

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        x = self.prelu1(self.conv1(x))
        if mask is not None:
            x = jnp.where(mask[..., None], x, -jnp.inf)
        x = max_pool_ceil(x, 2, 2)
        x = jnp.where(jnp.isfinite(x), x, 0)  # windows wholly in the padding: any finite value, never read
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), self.conv4_1(x)


class RNet(_Net):
    """Refinement network: [N, 24, 24, 3] -> (offsets [N, 4], logits [N, 2])."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.dtype = dtype
        self.conv1, self.prelu1 = self._conv(3, 28, 3, rngs=rngs), self._prelu(28)
        self.conv2, self.prelu2 = self._conv(28, 48, 3, rngs=rngs), self._prelu(48)
        self.conv3, self.prelu3 = self._conv(48, 64, 2, rngs=rngs), self._prelu(64)
        self.conv4, self.prelu4 = self._dense(576, 128, rngs=rngs), self._prelu(128)
        self.conv5_1 = self._dense(128, 2, rngs=rngs)
        self.conv5_2 = self._dense(128, 4, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = max_pool_ceil(self.prelu1(self.conv1(x)), 3, 2)
        x = max_pool_ceil(self.prelu2(self.conv2(x)), 3, 2)
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.conv4(x.reshape(x.shape[0], -1)))
        return self.conv5_2(x), self.conv5_1(x)


class ONet(_Net):
    """Output network: [N, 48, 48, 3] -> (landmarks [N, 10], offsets [N, 4], logits [N, 2]). Its dropout (0.25,
    before ``prelu5``) is inactive at inference and left out."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.dtype = dtype
        self.conv1, self.prelu1 = self._conv(3, 32, 3, rngs=rngs), self._prelu(32)
        self.conv2, self.prelu2 = self._conv(32, 64, 3, rngs=rngs), self._prelu(64)
        self.conv3, self.prelu3 = self._conv(64, 64, 3, rngs=rngs), self._prelu(64)
        self.conv4, self.prelu4 = self._conv(64, 128, 2, rngs=rngs), self._prelu(128)
        self.conv5, self.prelu5 = self._dense(1152, 256, rngs=rngs), self._prelu(256)
        self.conv6_1 = self._dense(256, 2, rngs=rngs)
        self.conv6_2 = self._dense(256, 4, rngs=rngs)
        self.conv6_3 = self._dense(256, 10, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        x = max_pool_ceil(self.prelu1(self.conv1(x)), 3, 2)
        x = max_pool_ceil(self.prelu2(self.conv2(x)), 3, 2)
        x = max_pool_ceil(self.prelu3(self.conv3(x)), 2, 2)
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.conv5(x.reshape(x.shape[0], -1)))
        return self.conv6_3(x), self.conv6_2(x), self.conv6_1(x)


class MTCNN(nnx.Module):
    """The three networks together (the unit a detector checkpoint stores)."""

    def __init__(self, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.pnet = PNet(rngs=rngs, dtype=dtype)
        self.rnet = RNet(rngs=rngs, dtype=dtype)
        self.onet = ONet(rngs=rngs, dtype=dtype)
