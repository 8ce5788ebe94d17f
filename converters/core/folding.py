"""Exact rewrites that let weights from frameworks with other conventions run in jsphere's layers.

jsphere's BatchNorm uses eps 1e-5 (PyTorch's) and its input is ``(x - 127.5) / 127.5``. Each function returns
torch-layout tensors that compute, in float64 before one rounding to float32, what the source computed.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

TORCH_EPS = 1e-5
PIXEL_MEAN = PIXEL_STD = 127.5  # jsphere input = (pixels - 127.5) / 127.5


def batchnorm(gamma: ArrayLike, beta: ArrayLike, mean: ArrayLike, var: ArrayLike, eps: float, *,
              fix_gamma: bool = False, shift: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """torch BatchNorm tensors (eps 1e-5) equal to ``BN_eps(x + shift)`` with the given statistics.

    ``eps`` is folded into ``running_var`` (``var + eps - 1e-5``) when ``eps >= 1e-5``, otherwise into the scale;
    ``fix_gamma`` (MXNet) means the scale is 1 whatever is stored; ``shift`` is a bias of the preceding layer
    that has no place of its own (``BN(x + b)`` = ``BN'(x)`` with ``mean' = mean - b``).
    """
    gamma, beta, mean, var = (np.asarray(a, np.float64).reshape(-1) for a in (gamma, beta, mean, var))
    weight = np.ones_like(gamma) if fix_gamma else gamma
    if eps >= TORCH_EPS:
        var = var + (eps - TORCH_EPS)
    else:
        weight = weight * np.sqrt((var + TORCH_EPS) / (var + eps))
    if shift is not None:
        mean = mean - np.asarray(shift, np.float64).reshape(-1)
    return {k: v.astype(np.float32) for k, v in
            {"weight": weight, "bias": beta, "running_mean": mean, "running_var": var}.items()}


def identity_batchnorm(bias: ArrayLike) -> dict[str, np.ndarray]:
    """torch BatchNorm tensors computing ``x + bias`` (a BatchNorm already folded into the preceding layer, whose
    bias the jsphere layer cannot hold): scale 1, mean 0, ``running_var + eps == 1`` exactly in float32."""
    bias = np.asarray(bias, np.float32).reshape(-1)
    ones = np.ones_like(bias)
    return {"weight": ones, "bias": bias, "running_mean": np.zeros_like(bias),
            "running_var": ones - np.float32(TORCH_EPS)}


def input_scale(first_conv_weight: np.ndarray, pixel_scale: ArrayLike, pixel_offset: ArrayLike,
                where: str) -> np.ndarray:
    """The first convolution's torch weight [O, I, kh, kw] for jsphere's input, given the source network's
    ``pixel_scale * pixels + pixel_offset`` (per input channel or scalar) before it.

    jsphere's input is ``(pixels - 127.5) / 127.5``, so the source's is ``s * jsphere_input + o`` with
    ``s = 127.5 * pixel_scale`` and ``o = 127.5 * pixel_scale + pixel_offset``; ``s`` multiplies the weights of
    its input channel. A non-zero ``o`` cannot be folded exactly (the zero padding would see it) and is refused.
    """
    a = np.broadcast_to(np.asarray(pixel_scale, np.float64).reshape(-1), (first_conv_weight.shape[1],))
    b = np.broadcast_to(np.asarray(pixel_offset, np.float64).reshape(-1), (first_conv_weight.shape[1],))
    scale = a * PIXEL_STD
    offset = a * PIXEL_MEAN + b
    if np.any(np.abs(offset) > 1e-6 * np.abs(scale)):
        raise ValueError(f"{where}: the network maps pixels x to {a.tolist()} * x + {b.tolist()} before its first "
                         f"convolution; jsphere's (x - 127.5) / 127.5 differs by an offset ({offset.tolist()}) that "
                         "cannot be folded exactly into a zero-padded convolution")
    return (np.asarray(first_conv_weight, np.float64) * scale[None, :, None, None]).astype(np.float32)
