"""Winograd F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016) for
dense 3x3 stride-1 NHWC convolutions, written as 16 matrix products over the channels.

Each 2x2 output tile ``y`` of the 4x4 input tile ``d`` (tiles every 2 pixels) is ``A^T [(G g G^T) * (B^T d B)] A``
for the 3x3 kernel ``g``: 16 products of 2.25x fewer multiplications than the direct sum. The weight gradient
is the transpose, ``G^T [sum over tiles of (B^T d B)^T (A dy A^T)] G``, and the input gradient is the same
forward pass applied to ``dy`` with the flipped kernel. The transforms' coefficients are 0, +-1/2 and +-1, so
the results are the direct sums reordered, to float32 rounding. Every function here computes in the dtype of
its inputs; ``cpu_conv`` casts and chunks over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]], np.float32)
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)
_TN = (((0,), (0,)), ((), ()))  # dot_general dimensions of a^T b


def _transform(left: np.ndarray, right: np.ndarray, tile) -> list[list[jax.Array]]:
    """``out[a][b] = sum over (r, s) of left[a, r] right[b, s] tile(r, s)``, the sparse sum written out (the
    matrices' entries are 0, +-1/2 and +-1, so every coefficient is exact): each output reads only the tile
    elements it needs, so XLA fuses it into one pass instead of re-reading every intermediate row transform."""
    def term(a, b):
        out = None
        for r, s in np.ndindex(left.shape[1], right.shape[1]):
            coef = float(left[a, r] * right[b, s])
            if coef:
                t = tile(r, s)
                t = t if coef == 1 else -t if coef == -1 else coef * t
                out = t if out is None else out + t
        return out

    return [[term(a, b) for b in range(right.shape[0])] for a in range(left.shape[0])]


def output_size(size: int, pads: tuple[int, int]) -> int:
    return size + pads[0] + pads[1] - 2


def _input_tiles(x: jax.Array, pads, tiles: tuple[int, int]) -> list[list[jax.Array]]:
    """``V[a][b]``, [N, th, tw, C]: element (a, b) of B^T d B for each 4x4 tile d of the padded input."""
    n, h, w, c = x.shape
    (th, tw), (pt, _), (pl, _) = tiles, *pads
    # pad to 2*t + 2 rows/columns: every tile in range; rows past the true padding only reach cropped outputs
    xp = jnp.pad(x, ((0, 0), (pt, 2 * th + 2 - h - pt), (pl, 2 * tw + 2 - w - pl), (0, 0)))
    blocks = xp.reshape(n, th + 1, 2, tw + 1, 2, c)
    return _transform(_BT, _BT, lambda r, s: blocks[:, r // 2:r // 2 + th, r % 2, s // 2:s // 2 + tw, s % 2])


def kernel_tiles(w: jax.Array) -> list[list[jax.Array]]:
    """``U = G g G^T`` of the 3x3 kernel ``w`` [3, 3, Cin, Cout]: ``U[a][b]`` [Cin, Cout], 4 x 4 of them (kept
    apart: a stacked array would be one more copy); computed once per convolution, not once per batch chunk."""
    return _transform(_G, _G, lambda i, j: w[i, j])


def forward_tiles(x: jax.Array, u: list[list[jax.Array]], pads, transposed: bool = False) -> jax.Array:
    """The 3x3 stride-1 convolution of ``x`` [N, H, W, Cin] padded by ``pads`` (each <= 2) with the kernel
    whose ``kernel_tiles`` are ``u``; ``transposed``: each ``u[a][b]`` is [Cout, Cin] (``input_grad_tiles``'s,
    contracted on its second axis instead of being copied transposed)."""
    n, h, wd, cin = x.shape
    contract = 1 if transposed else 0
    cout = u[0][0].shape[1 - contract]
    ho, wo = output_size(h, pads[0]), output_size(wd, pads[1])
    th, tw = -(-ho // 2), -(-wo // 2)
    v = _input_tiles(x, pads, (th, tw))
    m = [[lax.dot_general(v[a][b].reshape(-1, cin), u[a][b], (((1,), (contract,)), ((), ())))
          .reshape(n, th, tw, cout) for b in range(4)] for a in range(4)]
    y = _transform(_AT, _AT, lambda a, b: m[a][b])  # y[i][j]: output pixels (2t + i, 2u + j)
    out = jnp.stack([jnp.stack(y[i], axis=3) for i in range(2)], axis=2)  # [N, th, 2, tw, 2, C]
    return out.reshape(n, 2 * th, 2 * tw, cout)[:, :ho, :wo]


def weight_grad_tiles(x: jax.Array, dy: jax.Array, pads) -> list[list[jax.Array]]:
    """``S = sum over tiles of (B^T d B)^T (A dy A^T)``, ``S[a][b]`` [Cin, Cout]: additive over the batch, so
    batch chunks' ``S`` can be summed before ``kernel_grad``."""
    n, ho, wo, cout = dy.shape
    cin = x.shape[-1]
    th, tw = -(-ho // 2), -(-wo // 2)
    v = _input_tiles(x, pads, (th, tw))
    blocks = jnp.pad(dy, ((0, 0), (0, 2 * th - ho), (0, 2 * tw - wo), (0, 0))).reshape(n, th, 2, tw, 2, cout)
    z = _transform(_AT.T, _AT.T, lambda i, j: blocks[:, :, i, :, j])  # A g A^T of each 2x2 tile g of dy
    return [[lax.dot_general(v[a][b].reshape(-1, cin), z[a][b].reshape(-1, cout), _TN) for b in range(4)]
            for a in range(4)]


def kernel_grad(s: list[list[jax.Array]]) -> jax.Array:
    """dL/dw = ``G^T S G`` [3, 3, Cin, Cout] of the ``weight_grad_tiles`` ``s``."""
    return jnp.stack([jnp.stack(row) for row in _transform(_G.T, _G.T, lambda a, b: s[a][b])])


def flipped_kernel_tiles(w: jax.Array) -> list[list[jax.Array]]:
    """The ``kernel_tiles`` of the input gradient's kernel, ``w`` flipped in space, before its channels are
    swapped (``input_grad_tiles`` contracts them on the output channels)."""
    return kernel_tiles(jnp.flip(w, (0, 1)))


def input_grad_tiles(dy: jax.Array, u: list[list[jax.Array]], pads) -> jax.Array:
    """dL/dx of ``forward_tiles(x, kernel_tiles(w), pads)`` for the output gradient ``dy``, ``u`` being
    ``flipped_kernel_tiles(w)``: ``dy`` convolved with ``w`` flipped in space and its channels swapped, padded
    by ``2 - pads``."""
    return forward_tiles(dy, u, tuple((2 - lo, 2 - hi) for lo, hi in pads), transposed=True)
