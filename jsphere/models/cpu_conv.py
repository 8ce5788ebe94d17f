"""Convolutions reformulated for XLA's CPU backend; GPU and TPU keep XLA's own convolution.

XLA CPU computes a convolution's forward pass and input gradient at full speed, but its weight gradient at a
few GFLOP/s and depthwise convolutions 5-25x slower than a sum of shifted slices (measured on a 2-core AVX2
machine, 2 threads; ``benchmarks/conv.py`` reproduces the table below). So on the CPU:

* dense convolutions (groups 1) keep XLA's forward and input gradient and compute the weight gradient as one
  matrix product per kernel tap, ``dW[i, j] = x_shifted(i, j)^T @ dy`` over the ``N*Ho*Wo`` positions (a
  ``jax.custom_vjp``; no im2col matrix is materialised, each tap is one strided slice of the input);
* depthwise and small-group convolutions (MobileFaceNet: depthwise, and 2 channels per group in its second
  block) are a sum of shifted, strided slices times the per-group weights (``k*k`` terms per input channel of a
  group), and their gradients are what JAX derives from that sum (pads and reductions XLA fuses).

Measured, fp32, ms (forward | weight gradient), XLA as is vs this module:

=====================================  ==================  ================
layer                                  XLA                 here
=====================================  ==================  ================
3x3 64->64, 56x56, b32                 92 | 859            92 | 243
3x3 64->64, 112x112, b16 (IResNet)     179 | 2320          179 | 442
3x3 64->128 stride 2, 56x56, b32       45 | 155            45 | 74
3x3 128->128, 28x28, b32               47 | 270            47 | 126
3x3 512->512, 7x7, b32                 78 | 105            78 | 68
1x1 64->128 stride 2, 56x56, b16       3 | 36              3 | 3
depthwise 3x3 64, 56x56, b64           527 (fwd+bwd 2993)  72 (347)
depthwise 3x3 128 stride 2, 56x56, b64 302 (4801)          56 (261)
depthwise 7x7 512, 7x7 (GDC), b64      0.5 (469)           0.4 (37)
3x3 128, 64 groups of 2, 56x56, b64    2150                see benchmarks
=====================================  ==================  ================

Every dense shape measured gains, so there is one formulation per kind rather than a per-shape switch. The
numerics are the same sums in another order: outputs and gradients equal ``lax.conv_general_dilated``'s to
float32 rounding (tested to 1e-5 of the largest magnitude).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")
ENV_SWITCH = "JSPHERE_CPU_CONV"
SMALL_GROUP = 16  # grouped convolutions with at most this many (input x output) channels per group are unrolled


def _is_nhwc(dimension_numbers) -> bool:
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        return dimension_numbers == lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), NHWC)
    return tuple(dimension_numbers) == NHWC


def _taps(x: jax.Array, kernel: tuple[int, int], strides: tuple[int, int], padding, out_hw: tuple[int, int]):
    """The strided slice of the padded input that each kernel tap (i, j) multiplies: [N, Ho, Wo, C] each."""
    (pt, pb), (pl, pr) = padding
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if (pt, pb, pl, pr) != (0, 0, 0, 0) else x
    (sh, sw), (ho, wo) = strides, out_hw
    return [[lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, xp.shape[3]),
                       (1, sh, sw, 1)) for j in range(kernel[1])] for i in range(kernel[0])]


def _dense(x, w, strides, padding):
    return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=NHWC)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def dense_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], padding: tuple) -> jax.Array:
    """A groups=1 NHWC convolution whose weight gradient is one matrix product per kernel tap."""
    return _dense(x, w, strides, padding)


def _dense_fwd(x, w, strides, padding):
    return _dense(x, w, strides, padding), (x, w)


def _dense_bwd(strides, padding, residuals, dy):
    x, w = residuals
    dx = jax.vjp(lambda x: _dense(x, w, strides, padding), x)[1](dy)[0]
    kh, kw, cin, cout = w.shape
    rows = dy.reshape(-1, cout)
    taps = _taps(x, (kh, kw), strides, padding, dy.shape[1:3])
    dw = jnp.stack([jnp.stack([jnp.matmul(t.reshape(-1, cin).T, rows, preferred_element_type=jnp.float32)
                               for t in row]) for row in taps])
    return dx, dw.astype(w.dtype)


dense_conv.defvjp(_dense_fwd, _dense_bwd)


def grouped_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], padding: tuple, groups: int) -> jax.Array:
    """A grouped NHWC convolution with few channels per group (depthwise: one) as a sum over kernel taps and a
    group's input channels of shifted slices times per-group weights (``w``: [kh, kw, C_in / groups, C_out])."""
    kh, kw, cin_g, cout = w.shape
    (pt, pb), (pl, pr) = padding
    n, ho = x.shape[0], (x.shape[1] + pt + pb - kh) // strides[0] + 1
    wo = (x.shape[2] + pl + pr - kw) // strides[1] + 1
    compute = jnp.promote_types(x.dtype, jnp.float32)  # bf16 products summed in float32, as XLA's conv does
    taps = _taps(x.astype(compute), (kh, kw), strides, padding, (ho, wo))
    weights = w.astype(compute).reshape(kh, kw, cin_g, groups, cout // groups)
    terms = [taps[i][j].reshape(n, ho, wo, groups, cin_g)[..., c:c + 1] * weights[i, j, c]
             for i in range(kh) for j in range(kw) for c in range(cin_g)]
    return functools.reduce(jnp.add, terms).reshape(n, ho, wo, cout).astype(x.dtype)


def _normalise_padding(padding, x_hw: Sequence[int], kernel: Sequence[int], strides: Sequence[int]):
    if isinstance(padding, str):
        return tuple(lax.padtype_to_pads(x_hw, kernel, strides, padding))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def cpu_conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                             dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                             preferred_element_type=None, out_sharding=None):
    """``lax.conv_general_dilated`` for the CPU: the reformulations above where they apply (NHWC, no dilation,
    groups 1, depthwise or small groups), XLA's convolution otherwise."""
    plain = (_is_nhwc(dimension_numbers) and batch_group_count == 1 and preferred_element_type is None
             and out_sharding is None
             and all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1))))
    if plain:
        strides = tuple(int(s) for s in window_strides)
        pads = _normalise_padding(padding, lhs.shape[1:3], rhs.shape[:2], strides)
        cin, cout = lhs.shape[-1], rhs.shape[-1]
        groups = feature_group_count
        if groups == 1:
            return dense_conv(lhs, rhs, strides, pads)
        if (cin // groups) * (cout // groups) <= SMALL_GROUP:
            return grouped_conv(lhs, rhs, strides, pads, groups)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                                    precision=precision, preferred_element_type=preferred_element_type,
                                    out_sharding=out_sharding)


def conv_for(platform: str):
    """The convolution a backbone uses on ``platform`` ('cpu', 'cuda', 'rocm', 'tpu', ...). ``JSPHERE_CPU_CONV=0``
    in the environment keeps XLA's convolution on the CPU too (to compare, as ``benchmarks --xla-conv`` do)."""
    if platform == "cpu" and os.environ.get(ENV_SWITCH, "1") != "0":
        return cpu_conv_general_dilated
    return lax.conv_general_dilated


def conv_general_dilated(lhs, rhs, window_strides, padding, **kwargs):
    """The convolution of jsphere's layers: chosen when the computation is lowered, by the platform it is
    lowered for (``lax.platform_dependent``), so a CPU run uses ``cpu_conv_general_dilated`` and a GPU/TPU run
    XLA's own convolution, whatever the default backend of the process."""
    def on(platform):
        return lambda lhs, rhs: conv_for(platform)(lhs, rhs, window_strides, padding, **kwargs)

    return lax.platform_dependent(lhs, rhs, cpu=on("cpu"), default=on("default"))
