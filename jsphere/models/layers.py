"""Building blocks shared by the backbones, with PyTorch semantics.

Every layer here keeps PyTorch's behaviour so that converted weights give the same outputs:

* ``conv``: a Flax ``nnx.Conv`` with explicit symmetric padding (PyTorch ``padding=p``; Flax's ``'SAME'``
  pads a 3x3 stride-2 convolution (0, 1) on even inputs, PyTorch pads (1, 1)), computed on the CPU by
  ``cpu_conv`` (fast weight gradients and depthwise convolutions) and elsewhere by XLA's convolution.
* ``BatchNorm``: PyTorch's ``BatchNorm{1,2}d`` (momentum 0.1, eps 1e-5, running variance stored *unbiased*),
  with an optional frozen scale (insightface's ``features``) and per-group statistics (PyTorch-DDP parity:
  each device normalises with its own batch statistics).
* ``ChannelPReLU``: ``nn.PReLU(C)`` — one slope per channel (Flax's PReLU has a single scalar slope).
* ``LayerNorm``: ``nn.LayerNorm(C)`` over the last (channel) axis, also timm's ``LayerNorm2d`` on NHWC maps.

Initialisers reproduce ``torch.nn.init`` so that a freshly built model has the reference statistics.

Parameters and BatchNorm statistics are stored in ``param_dtype(dtype)``: float32 for a float32 or bfloat16
trunk, float64 for a float64 one (``model.dtype='float64'``, which needs 64-bit JAX: the comparison tests and
step-by-step checks against PyTorch in float64, where summation order moves results by ~1e-16, not ~1e-7).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere.models import cpu_conv

Array = jax.Array


class FrozenParam(nnx.Variable):
    """A parameter that is stored, counted and converted, but never trained (``requires_grad=False``)."""


def param_dtype(dtype) -> jnp.dtype:
    """The dtype parameters, statistics and the embedding tail use with a ``dtype`` trunk: the wider of it and
    float32 (float32 for bfloat16/float32, float64 for float64)."""
    return jnp.promote_types(jnp.float32 if dtype is None else dtype, jnp.float32)


# ----------------------------------------------------------------------------------------- initialisers
def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """PyTorch fan-in/fan-out of a Flax kernel: conv ``(kh, kw, in/groups, out)``, dense ``(in, out)``."""
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def kaiming_normal_fan_out(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    """``nn.init.kaiming_normal_(w, mode='fan_out', nonlinearity='relu')``: N(0, 2 / fan_out)."""
    _, fan_out = _fans(shape)
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / fan_out)


def xavier_normal(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    """``nn.init.xavier_normal_(w)``: N(0, 2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / (fan_in + fan_out))


def normal(std: float) -> Callable:
    """``nn.init.normal_(w, 0, std)``."""

    def init(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        return jax.random.normal(key, shape, dtype) * std

    return init


def torch_default_kernel(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
    """PyTorch's default Conv/Linear weight init (kaiming_uniform, a=sqrt(5)): U(±1/sqrt(fan_in))."""
    fan_in, _ = _fans(shape)
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def torch_default_bias(fan_in: int) -> Callable:
    """PyTorch's default Conv/Linear bias init: U(±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


# ----------------------------------------------------------------------------------------------- layers
def conv(
    in_channels: int,
    out_channels: int,
    kernel: int,
    *,
    stride: int = 1,
    padding: int = 0,
    groups: int = 1,
    bias: bool = False,
    kernel_init: Callable = torch_default_kernel,
    bias_init: Callable | None = None,
    dtype=jnp.float32,
    rngs: nnx.Rngs,
) -> nnx.Conv:
    """A PyTorch ``Conv2d`` as an ``nnx.Conv`` (NHWC, kernel HWIO, explicit symmetric padding); ``bias_init``
    defaults to PyTorch's."""
    fan_in = (in_channels // groups) * kernel * kernel
    return nnx.Conv(
        in_channels,
        out_channels,
        kernel_size=(kernel, kernel),
        strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        feature_group_count=groups,
        use_bias=bias,
        kernel_init=kernel_init,
        bias_init=bias_init or torch_default_bias(fan_in),
        dtype=dtype,
        param_dtype=param_dtype(dtype),
        conv_general_dilated=cpu_conv.conv_general_dilated,
        rngs=rngs,
    )


def linear(
    in_features: int, out_features: int, *, bias: bool = True, kernel_init: Callable = torch_default_kernel,
    bias_init: Callable | None = None, dtype=jnp.float32, rngs: nnx.Rngs,
) -> nnx.Linear:
    """A PyTorch ``Linear`` as an ``nnx.Linear`` (kernel ``[in, out]``); ``bias_init`` defaults to PyTorch's."""
    return nnx.Linear(
        in_features,
        out_features,
        use_bias=bias,
        kernel_init=kernel_init,
        bias_init=bias_init or torch_default_bias(in_features),
        dtype=dtype,
        param_dtype=param_dtype(dtype),
        rngs=rngs,
    )


class BatchNorm(nnx.Module):
    """PyTorch ``BatchNorm1d``/``BatchNorm2d`` over the last (channel) axis.

    Training mode normalises with the biased batch variance and updates the running statistics as PyTorch
    does: ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased* batch variance, so the
    stored ``var`` equals PyTorch's ``running_var``. ``stat_groups = g`` splits the batch into g contiguous
    groups normalised separately (one group per device reproduces DDP's per-GPU statistics; the running
    statistics take the mean over groups). Statistics are reduced in float32 (float64 for float64 input) and
    stored, like the scale and bias, in ``param_dtype(dtype)``.
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float = 0.1,
        eps: float = 1e-5,
        scale_init: float = 1.0,
        scale_trainable: bool = True,
        dtype=jnp.float32,
    ):
        self.num_features = num_features
        self.momentum = momentum
        self.eps = eps
        self.dtype = dtype
        self.use_running_average = False
        self.stat_groups = 1
        stored = param_dtype(dtype)
        scale = jnp.full((num_features,), scale_init, stored)
        self.scale = nnx.Param(scale) if scale_trainable else FrozenParam(scale)
        self.bias = nnx.Param(jnp.zeros((num_features,), stored))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), stored))
        self.var = nnx.BatchStat(jnp.ones((num_features,), stored))

    def __call__(self, x: Array) -> Array:
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
            return self._normalize(x, mean, var)
        groups = self.stat_groups
        n = x.shape[0]
        if n % groups:
            raise ValueError(f"BatchNorm: batch of {n} does not split into {groups} statistic groups")
        xg = x.reshape((groups, n // groups) + x.shape[1:])
        axes = tuple(range(1, xg.ndim - 1))
        wide = xg.astype(param_dtype(xg.dtype))
        mean = jnp.mean(wide, axis=axes)  # [groups, C]
        var = jnp.mean(jnp.square(wide - jnp.expand_dims(mean, axes)), axis=axes)
        count = math.prod(xg.shape[1:-1])
        unbiased = var * (count / max(count - 1, 1))
        m = self.momentum
        self.mean[...] = (1 - m) * self.mean[...] + m * jnp.mean(jax.lax.stop_gradient(mean), axis=0)
        self.var[...] = (1 - m) * self.var[...] + m * jnp.mean(jax.lax.stop_gradient(unbiased), axis=0)
        expand = (slice(None),) + (None,) * (xg.ndim - 2) + (slice(None),)
        y = self._normalize(xg, mean[expand], var[expand])
        return y.reshape(x.shape)

    def _normalize(self, x: Array, mean: Array, var: Array) -> Array:
        mul = self.scale[...] * jax.lax.rsqrt(var + self.eps)
        add = self.bias[...] - mean * mul
        dtype = self.dtype or x.dtype
        return (x.astype(dtype) * mul.astype(dtype) + add.astype(dtype)).astype(dtype)


class ChannelPReLU(nnx.Module):
    """PyTorch ``nn.PReLU(num_channels)``: ``max(0, x) + a_c * min(0, x)`` with one slope per channel."""

    def __init__(self, num_channels: int, *, init: float = 0.25, dtype=jnp.float32):
        self.dtype = dtype
        self.slope = nnx.Param(jnp.full((num_channels,), init, param_dtype(dtype)))

    def __call__(self, x: Array) -> Array:
        a = self.slope[...].astype(self.dtype or x.dtype)
        return jnp.where(x >= 0, x, a * x)


class LayerNorm(nnx.Module):
    """PyTorch ``nn.LayerNorm(num_features, eps)`` over the last axis (on an NHWC map: timm's ``LayerNorm2d``).
    Statistics in float32 (float64 for float64 input), the output in ``dtype``."""

    def __init__(self, num_features: int, *, eps: float = 1e-5, dtype=jnp.float32):
        self.eps, self.dtype = eps, dtype
        stored = param_dtype(dtype)
        self.scale = nnx.Param(jnp.ones((num_features,), stored))
        self.bias = nnx.Param(jnp.zeros((num_features,), stored))

    def __call__(self, x: Array) -> Array:
        wide = x.astype(param_dtype(x.dtype))
        mean = jnp.mean(wide, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(wide - mean), axis=-1, keepdims=True)
        y = (wide - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]
        return y.astype(self.dtype or x.dtype)


class Identity(nnx.Module):
    """A parameter-free pass-through (PyTorch ``nn.Identity``), kept so module trees match."""

    def __call__(self, x: Array) -> Array:
        return x


def dropout(rate: float, *, rngs: nnx.Rngs) -> nnx.Module:
    """PyTorch ``nn.Dropout(rate)``; rate 0 (every reference recipe) is a stateless identity."""
    return nnx.Dropout(rate, rngs=rngs) if rate > 0 else Identity()


def set_bn_stat_groups(model: nnx.Module, groups: int) -> None:
    """Make every BatchNorm of ``model`` normalise ``groups`` contiguous batch slices separately."""
    for _, module in nnx.iter_graph(model):
        if isinstance(module, BatchNorm):
            module.stat_groups = groups
