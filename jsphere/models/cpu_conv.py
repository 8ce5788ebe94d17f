"""Convolutions reformulated for XLA's CPU backend; GPU and TPU keep XLA's own convolution.

XLA CPU computes a convolution's forward pass near the speed of PyTorch's oneDNN, but its weight gradient at a
few GFLOP/s (a convolution over the batch), the input gradient of a strided convolution 2x slower than its
forward (a convolution of the zero-dilated output gradient), and grouped (depthwise) convolutions 5-25x slower
than a sum of shifted slices. So on the CPU each NHWC convolution of a backbone gets a ``ConvPlan``: one
formulation per pass, chosen by layer shape from the measurements of ``python -m benchmarks.conv`` (which
times every formulation of every pass for each layer kind of the backbones):

* forward: ``xla``; ``winograd`` (F(2x2, 3x3), ``jsphere.models.winograd``) for dense 3x3 stride-1 layers with
  at least ``WINOGRAD_MIN_PIXELS`` output pixels in the batch; ``pointwise`` (1x1 without padding: a matrix
  product over the strided pixels) and ``shifted`` (grouped with <= 16 (input x output) channels per group:
  MobileFaceNet's depthwise convolutions and its groups of 2 channels, a sum of shifted, strided slices times
  the per-group weights), whose gradients are what JAX derives from them; ``im2col`` and ``phases`` forwards
  are measured too and tie or lose to XLA's for strided layers, so no plan picks them;
* input gradient: ``xla``; ``winograd`` (the flipped kernel over the output gradient) where the forward is;
  ``phases`` for stride 2: the convolution split into the four (row, column) parity phases of its input, each
  a stride-1 convolution with the kernel taps that land on it, whose input gradient XLA computes without the
  zeros of a dilated output gradient;
* weight gradient: ``winograd`` for 3x3 stride 1 (``G^T [sum of V^T Z] G``), ``im2col`` otherwise (one matrix
  product of the kernel taps' shifted slices, concatenated on channels, with ``dy``), both over batch chunks of
  a few MB so that their temporaries stay in cache.

The measurements behind these choices, per layer kind and pass (``python -m benchmarks.conv`` on a 2-core AMD
EPYC with AVX2 and no AVX-512), are BENCHMARKS.md's table "The CPU convolution path, pass by pass".

Anything else (dilation, other layouts, large groups, negative padding) is XLA's own convolution. The numerics
are the same sums in another order: outputs and gradients equal ``lax.conv_general_dilated``'s to float32
rounding, 1e-5 of the largest magnitude (``tests/test_cpu_conv.py``; against a float64 reference the
reformulated weight gradients are closer than XLA's own). bfloat16 convolutions are computed in float32 and
rounded once at the end, as XLA's CPU convolution does.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jsphere.models import winograd

NHWC = ("NHWC", "HWIO", "NHWC")
ENV_SWITCH = "JSPHERE_CPU_CONV"
SMALL_GROUP = 16  # grouped convolutions with at most this many (input x output) channels per group are unrolled
WINOGRAD_MIN_CHANNELS = 8  # below this, the 16 products of Winograd are too thin to beat XLA's convolution
WINOGRAD_MIN_PIXELS = 7 * 7  # output pixels per image from which Winograd's forward and input gradient beat
#                                XLA's convolution (its weight gradient beats im2col's at every size)
CHUNK_BYTES = 3 << 20  # the reformulated passes run over batch chunks of about this much input ...
MIN_CHUNK_ROWS = 512  # ... but at least this many rows in their matrix products
_TN = (((0,), (0,)), ((), ()))  # dot_general dimensions of a^T b


class ConvPlan(NamedTuple):
    """The formulation of each pass of one convolution (see the module docstring)."""

    forward: str  # xla | winograd | pointwise | shifted
    input_grad: str  # xla | winograd | phases | autodiff
    weight_grad: str  # xla | winograd | im2col | autodiff


XLA = ConvPlan("xla", "xla", "xla")


def _is_nhwc(dimension_numbers) -> bool:
    if dimension_numbers is None:
        return False
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        return dimension_numbers == lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), NHWC)
    return tuple(dimension_numbers) == NHWC


def _compute_dtype(dtype):
    """float32 for bfloat16/float16/float32 inputs (XLA's CPU convolution accumulates in float32 too)."""
    return jnp.promote_types(dtype, jnp.float32)


def _out_size(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> int:
    return (size + pads[0] + pads[1] - kernel) // stride + 1


# ------------------------------------------------------------------------------------ plan by layer shape
def plan(x_shape: Sequence[int], w_shape: Sequence[int], strides: tuple[int, int], padding: tuple,
         groups: int) -> ConvPlan:
    """The ``ConvPlan`` of an NHWC convolution of input ``x_shape`` [N, H, W, C_in] and kernel ``w_shape``
    [kh, kw, C_in / groups, C_out] on the CPU (the thresholds: ``benchmarks.conv`` on AVX2, in BENCHMARKS.md)."""
    _, h, w, cin = x_shape
    kh, kw, _, cout = w_shape
    pads = [p for pair in padding for p in pair]
    if min(pads) < 0:
        return XLA
    if groups > 1:
        return ConvPlan("shifted", "autodiff", "autodiff") if (cin // groups) * (cout // groups) <= SMALL_GROUP else XLA
    if (kh, kw) == (1, 1) and max(pads) == 0:
        return ConvPlan("pointwise", "autodiff", "autodiff")
    if (kh, kw) == (3, 3) and strides == (1, 1) and max(pads) <= 2:
        large = _out_size(h, 3, 1, padding[0]) * _out_size(w, 3, 1, padding[1]) >= WINOGRAD_MIN_PIXELS
        return ConvPlan("winograd" if large and cin >= WINOGRAD_MIN_CHANNELS else "xla",
                        "winograd" if large and cout >= WINOGRAD_MIN_CHANNELS else "xla",
                        "winograd" if cin >= WINOGRAD_MIN_CHANNELS else "im2col")
    return ConvPlan("xla", "phases" if strides == (2, 2) and cin >= WINOGRAD_MIN_CHANNELS else "xla", "im2col")


# ------------------------------------------------------------------------------------- batch chunks
def _chunk_size(n: int, image_bytes: int, image_rows: int) -> int:
    """Images per batch chunk: about ``CHUNK_BYTES`` of input, but at least ``MIN_CHUNK_ROWS`` matrix rows, and
    the batch split into chunks of equal size (so the zero images that pad the last one are fewer than the
    chunks)."""
    target = min(n, max(max(1, CHUNK_BYTES // image_bytes), -(-MIN_CHUNK_ROWS // image_rows)))
    chunks = -(-n // target)
    return -(-n // chunks)


def _pad_batch(a: jax.Array, size: int) -> jax.Array:
    return jnp.pad(a, ((0, size - a.shape[0]),) + ((0, 0),) * (a.ndim - 1)) if size > a.shape[0] else a


def _map_chunks(fn, chunk: int, x: jax.Array, *shared) -> jax.Array:
    """``fn(x, *shared)`` computed ``chunk`` images at a time (``lax.map``: one chunk's temporaries live at once)."""
    n = x.shape[0]
    if chunk >= n:
        return fn(x, *shared)
    padded = -(-n // chunk) * chunk
    xs = _pad_batch(x, padded).reshape(padded // chunk, chunk, *x.shape[1:])
    ys = lax.map(lambda xb: fn(xb, *shared), xs)
    return ys.reshape(padded, *ys.shape[2:])[:n]


def _sum_chunks(fn, chunk: int, x: jax.Array, dy: jax.Array) -> jax.Array:
    """The sum over batch chunks of ``fn(x_chunk, dy_chunk)``, an array or a pytree of them (zero images pad
    the last chunk: they add 0)."""
    n = x.shape[0]
    if chunk >= n:
        return fn(x, dy)
    padded = -(-n // chunk) * chunk
    xs = _pad_batch(x, padded).reshape(padded // chunk, chunk, *x.shape[1:])
    dys = _pad_batch(dy, padded).reshape(padded // chunk, chunk, *dy.shape[1:])
    first = fn(xs[0], dys[0])
    total, _ = lax.scan(lambda total, pair: (jax.tree.map(jnp.add, total, fn(*pair)), None), first,
                        (xs[1:], dys[1:]))
    return total


def _winograd_chunk(x: jax.Array) -> int:
    """Batch chunk of the Winograd passes over ``x`` (measured: 2-8 MB of input per chunk is 2x faster than the
    whole batch at 56x56 and larger; 7x7 maps need whole batches to keep the 16 products' rows up)."""
    _, h, w, c = x.shape
    return _chunk_size(x.shape[0], h * w * c * 4, -(-h // 2) * -(-w // 2))


# ------------------------------------------------------------------------------ the passes' formulations
def _xla(x, w, strides, pads):
    return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=NHWC)


def _taps(x: jax.Array, kernel: tuple[int, int], strides: tuple[int, int], padding, out_hw: tuple[int, int]):
    """The strided slice of the padded input that each kernel tap (i, j) multiplies: [N, Ho, Wo, C] each."""
    (pt, pb), (pl, pr) = padding
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0))) if (pt, pb, pl, pr) != (0, 0, 0, 0) else x
    (sh, sw), (ho, wo) = strides, out_hw
    return [[lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, xp.shape[3]),
                       (1, sh, sw, 1)) for j in range(kernel[1])] for i in range(kernel[0])]


def _im2col(x: jax.Array, kernel: tuple[int, int], strides, pads, out_hw: tuple[int, int]) -> jax.Array:
    """The im2col matrix of ``x``, [N * Ho * Wo, kh * kw * C]: the kernel taps' slices concatenated on channels."""
    cols = jnp.concatenate([t for row in _taps(x, kernel, strides, pads, out_hw) for t in row], axis=-1)
    return cols.reshape(-1, cols.shape[-1])


def _im2col_chunk(n: int, kernel: tuple[int, int], cin: int, out_hw: tuple[int, int]) -> int:
    """Batch chunk of the im2col passes: about ``CHUNK_BYTES`` of im2col matrix per chunk."""
    pixels = out_hw[0] * out_hw[1]
    return _chunk_size(n, pixels * kernel[0] * kernel[1] * cin * 4, pixels)


def _im2col_weight_grad(x: jax.Array, dy: jax.Array, kernel: tuple[int, int], strides, pads) -> jax.Array:
    """dL/dw = im2col(x)^T dy, the im2col matrix built and multiplied a batch chunk at a time."""
    (kh, kw), (_, ho, wo, cout), cin = kernel, dy.shape, x.shape[-1]

    def chunk_grad(xb, dyb):
        return lax.dot_general(_im2col(xb, kernel, strides, pads, (ho, wo)), dyb.reshape(-1, cout), _TN)

    chunk = _im2col_chunk(x.shape[0], kernel, cin, (ho, wo))
    return _sum_chunks(chunk_grad, chunk, x, dy).reshape(kh, kw, cin, cout)


def _im2col_forward(x: jax.Array, w: jax.Array, strides, pads) -> jax.Array:
    """y = im2col(x) w, the im2col matrix built and multiplied a batch chunk at a time."""
    kh, kw, cin, cout = w.shape
    ho, wo = _out_size(x.shape[1], kh, strides[0], pads[0]), _out_size(x.shape[2], kw, strides[1], pads[1])

    def chunk_forward(xb, w):
        cols = _im2col(xb, (kh, kw), strides, pads, (ho, wo))
        return jnp.dot(cols, w.reshape(kh * kw * cin, cout)).reshape(xb.shape[0], ho, wo, cout)

    return _map_chunks(chunk_forward, _im2col_chunk(x.shape[0], (kh, kw), cin, (ho, wo)), x, w)


def _winograd_forward(x, w, pads):
    """Winograd over batch chunks, the kernel transformed once, outside the chunks."""
    return _map_chunks(lambda xb, u: winograd.forward_tiles(xb, u, pads), _winograd_chunk(x), x,
                       winograd.kernel_tiles(w))


def _winograd_input_grad(dy, w, pads):
    return _map_chunks(lambda dyb, u: winograd.input_grad_tiles(dyb, u, pads), _winograd_chunk(dy), dy,
                       winograd.flipped_kernel_tiles(w))


def _winograd_weight_grad(x, dy, pads):
    """The chunks' ``S`` summed, then one ``G^T S G``."""
    chunk_tiles = _sum_chunks(lambda xb, dyb: winograd.weight_grad_tiles(xb, dyb, pads), _winograd_chunk(x), x, dy)
    return winograd.kernel_grad(chunk_tiles)


def phases_forward(x: jax.Array, w: jax.Array, pads) -> jax.Array:
    """A stride-2 convolution as the sum over the input's four (row, column) parity phases of a stride-1
    convolution of that phase with the kernel taps that land on it (``w[a::2, b::2]``)."""
    n, h, wd, c = x.shape
    kh, kw = w.shape[:2]
    ho, wo = _out_size(h, kh, 2, pads[0]), _out_size(wd, kw, 2, pads[1])

    def padded(size, out, k, pt):  # rows of the padded input, even, covering the input and every tap
        total = max(2 * (out + (k - 1) // 2), size + pt)
        return total + total % 2

    hp, wp = padded(h, ho, kh, pads[0][0]), padded(wd, wo, kw, pads[1][0])
    xp = jnp.pad(x, ((0, 0), (pads[0][0], hp - h - pads[0][0]), (pads[1][0], wp - wd - pads[1][0]), (0, 0)))
    blocks = xp.reshape(n, hp // 2, 2, wp // 2, 2, c)
    terms = [_xla(blocks[:, :, a, :, b], w[a::2, b::2], (1, 1), ((0, 0), (0, 0)))[:, :ho, :wo]
             for a in range(min(2, kh)) for b in range(min(2, kw))]
    return functools.reduce(jnp.add, terms)


def pointwise_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """A dense 1x1 NHWC convolution without padding: the strided pixels times ``w[0, 0]`` (gradients by JAX)."""
    compute = _compute_dtype(x.dtype)
    n, h, wd, cin = x.shape
    pixels = lax.slice(x, (0, 0, 0, 0), (n, h, wd, cin), (1, *strides, 1)) if strides != (1, 1) else x
    return jnp.dot(pixels.astype(compute), w[0, 0].astype(compute)).astype(x.dtype)


def grouped_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], padding: tuple, groups: int) -> jax.Array:
    """A grouped NHWC convolution with few channels per group (depthwise: one) as a sum over kernel taps and a
    group's input channels of shifted slices times per-group weights (``w``: [kh, kw, C_in / groups, C_out])."""
    kh, kw, cin_g, cout = w.shape
    n = x.shape[0]
    ho, wo = _out_size(x.shape[1], kh, strides[0], padding[0]), _out_size(x.shape[2], kw, strides[1], padding[1])
    compute = _compute_dtype(x.dtype)  # bf16 products summed in float32, as XLA's conv does
    taps = _taps(x.astype(compute), (kh, kw), strides, padding, (ho, wo))
    weights = w.astype(compute).reshape(kh, kw, cin_g, groups, cout // groups)
    terms = [taps[i][j].reshape(n, ho, wo, groups, cin_g)[..., c:c + 1] * weights[i, j, c]
             for i in range(kh) for j in range(kw) for c in range(cin_g)]
    return functools.reduce(jnp.add, terms).reshape(n, ho, wo, cout).astype(x.dtype)


# ------------------------------------------------------------------ a dense convolution with its plan
FORWARDS = ("xla", "winograd", "phases", "im2col")
INPUT_GRADS = ("xla", "winograd", "phases")
WEIGHT_GRADS = ("xla", "winograd", "im2col")


def formulations(kernel: int, stride: int) -> tuple[list[str], list[str], list[str]]:
    """The formulations of (forward, input gradient, weight gradient) that apply to a dense square convolution
    of this kernel and stride: Winograd for 3x3 stride 1, phases for stride 2, im2col for kernels over 1x1."""
    def applies(kind: str) -> bool:
        return {"winograd": kernel == 3 and stride == 1, "phases": stride == 2, "im2col": kernel > 1}.get(kind, True)

    return tuple([k for k in kinds if applies(k)] for kinds in (FORWARDS, INPUT_GRADS, WEIGHT_GRADS))


def forward_pass(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: tuple, kind: str) -> jax.Array:
    """The output of a dense NHWC convolution by the formulation ``kind`` (one of ``FORWARDS``)."""
    compute = _compute_dtype(x.dtype)
    if kind == "winograd":
        return _winograd_forward(x.astype(compute), w.astype(compute), pads).astype(x.dtype)
    if kind == "phases":
        return phases_forward(x.astype(compute), w.astype(compute), pads).astype(x.dtype)
    if kind == "im2col":
        return _im2col_forward(x.astype(compute), w.astype(compute), strides, pads).astype(x.dtype)
    return _xla(x, w, strides, pads)


def input_grad_pass(x: jax.Array, w: jax.Array, dy: jax.Array, strides: tuple[int, int], pads: tuple,
                    kind: str) -> jax.Array:
    """dL/dx of a dense NHWC convolution by the formulation ``kind`` (one of ``INPUT_GRADS``)."""
    compute = _compute_dtype(x.dtype)
    if kind == "winograd":
        dx = _winograd_input_grad(dy.astype(compute), w.astype(compute), pads)
    elif kind == "phases":
        dx = jax.vjp(lambda x: phases_forward(x, w.astype(compute), pads), x.astype(compute))[1](dy.astype(compute))[0]
    else:
        dx = jax.vjp(lambda x: _xla(x, w, strides, pads), x)[1](dy)[0]
    return dx.astype(x.dtype)


def weight_grad_pass(x: jax.Array, w: jax.Array, dy: jax.Array, strides: tuple[int, int], pads: tuple,
                     kind: str) -> jax.Array:
    """dL/dw of a dense NHWC convolution by the formulation ``kind`` (one of ``WEIGHT_GRADS``)."""
    compute = _compute_dtype(x.dtype)
    if kind == "winograd":
        dw = _winograd_weight_grad(x.astype(compute), dy.astype(compute), pads)
    elif kind == "im2col":
        dw = _im2col_weight_grad(x.astype(compute), dy.astype(compute), w.shape[:2], strides, pads)
    else:
        dw = jax.vjp(lambda w: _xla(x, w, strides, pads), w)[1](dy)[0]
    return dw.astype(w.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def dense_conv(x: jax.Array, w: jax.Array, strides: tuple[int, int], pads: tuple, conv_plan: ConvPlan) -> jax.Array:
    """A groups=1 NHWC convolution whose forward pass, input gradient and weight gradient each follow
    ``conv_plan``."""
    return forward_pass(x, w, strides, pads, conv_plan.forward)


def _dense_fwd(x, w, strides, pads, conv_plan):
    return dense_conv(x, w, strides, pads, conv_plan), (x, w)


def _dense_bwd(strides, pads, conv_plan, residuals, dy):
    x, w = residuals
    return (input_grad_pass(x, w, dy, strides, pads, conv_plan.input_grad),
            weight_grad_pass(x, w, dy, strides, pads, conv_plan.weight_grad))


dense_conv.defvjp(_dense_fwd, _dense_bwd)


# ----------------------------------------------------------------------------------------- dispatch
def _normalise_padding(padding, x_hw: Sequence[int], kernel: Sequence[int], strides: Sequence[int]):
    if isinstance(padding, str):
        return tuple(lax.padtype_to_pads(x_hw, kernel, strides, padding))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def cpu_conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                             dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                             preferred_element_type=None, out_sharding=None, conv_plan: ConvPlan | None = None):
    """``lax.conv_general_dilated`` for the CPU: the ``plan()`` of NHWC convolutions without dilation (or the
    ``conv_plan`` given), XLA's convolution for anything else."""
    plain = (_is_nhwc(dimension_numbers) and batch_group_count == 1 and preferred_element_type is None
             and out_sharding is None and lhs.ndim == 4
             and all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1))))
    if plain:
        strides = tuple(int(s) for s in window_strides)
        pads = _normalise_padding(padding, lhs.shape[1:3], rhs.shape[:2], strides)
        p = conv_plan or plan(lhs.shape, rhs.shape, strides, pads, feature_group_count)
        if p.forward == "shifted":
            return grouped_conv(lhs, rhs, strides, pads, feature_group_count)
        if p.forward == "pointwise":
            return pointwise_conv(lhs, rhs, strides)
        if p != XLA and feature_group_count == 1:
            return dense_conv(lhs, rhs, strides, pads, p)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                    rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count, batch_group_count=batch_group_count,
                                    precision=precision, preferred_element_type=preferred_element_type,
                                    out_sharding=out_sharding)


def conv_for(platform: str):
    """The convolution a backbone uses on ``platform`` ('cpu', 'cuda', 'rocm', 'tpu', ...). ``JSPHERE_CPU_CONV=0``
    in the environment keeps XLA's convolution on the CPU too (to compare, as ``benchmarks --xla-baseline`` do)."""
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
