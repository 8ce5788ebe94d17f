"""MTCNN's image pyramid, packed on one canvas so that P-Net runs once per image.

The scales are the reference's (``12 / min_face * factor**k`` while the scaled shorter side exceeds 12 px,
with its floating-point accumulation) and each level is resized with Pillow's bilinear filter to
``ceil(size * scale)``, as OpenSphere's ``run_first_stage`` does. The levels are then laid out on shelves of a
canvas at even offsets (P-Net's output cells are 2 pixels apart, so each level's cells stay on the canvas grid),
in the places computed for the image size rounded up to a bucket ladder: P-Net is compiled once per bucket of
image sizes, not once per image size and scale. A mask of the first activation map keeps levels from seeing
each other or the padding.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from PIL import Image

MIN_DETECTION_SIZE = 12


def scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """The pyramid's scales for an image of this size (the reference's loop, float for float)."""
    m = MIN_DETECTION_SIZE / min_face_size
    min_length = min(height, width) * m
    out, k = [], 0
    while min_length > MIN_DETECTION_SIZE:
        out.append(m * factor**k)
        min_length *= factor
        k += 1
    return out


def bucket(n: int, minimum: int = 32, steps_per_octave: int = 8) -> int:
    """``n`` rounded up to a size of the bucket ladder: ``minimum``, then ``steps_per_octave`` evenly spaced sizes
    per octave (multiples of 8 pixels), so that padding costs at most 1/``steps_per_octave`` per side."""
    if n <= minimum:
        return minimum
    octave = 1 << (n - 1).bit_length() - 1
    step = max(8, octave // steps_per_octave)
    return -(-n // step) * step


class Level(NamedTuple):
    scale: float
    height: int  # of the resized image
    width: int
    top: int  # its place on the canvas (even)
    left: int


class Layout(NamedTuple):
    levels: list[Level]
    height: int  # canvas, bucketed
    width: int


def _even(n: int) -> int:
    return n + (n & 1)


def _round8(n: int) -> int:
    return -(-n // 8) * 8


def _shelves(sizes: list[tuple[int, int]], canvas_w: int) -> tuple[list[tuple[int, int]], int]:
    """(top, left) of each level and the height used, filling shelves of width ``canvas_w`` left to right."""
    places, top, left, shelf = [], 0, 0, 0
    for h, w in sizes:
        if left + w > canvas_w:
            top, left, shelf = top + _even(shelf), 0, 0
        places.append((top, left))
        left += _even(w)
        shelf = max(shelf, h)
    return places, top + shelf


def layout(height: int, width: int, min_face_size: float, factor: float) -> Layout | None:
    """The pyramid of an image and its levels' places on the canvas (None when no face of ``min_face_size`` fits).

    The packing is computed for the image size rounded up to the bucket ladder: its levels are each at least as
    large as this image's (same scales; a larger image has at most more of them), and this image's levels take
    the first slots, so every image of a bucket gets the same canvas and P-Net compiles once per bucket. The
    shelves (largest level first, each filled left to right) are as wide as the first level, or it plus one of
    the next few, whichever canvas is smallest."""
    own = scales(height, width, min_face_size, factor)
    if not own:
        return None
    bh, bw = bucket(height), bucket(width)
    slots = [(math.ceil(bh * s), math.ceil(bw * s)) for s in scales(bh, bw, min_face_size, factor)]
    first = _even(slots[0][1])
    best = None
    for extra in sorted({0} | {_even(w) for _, w in slots[1:6]}):
        places, used = _shelves(slots, first + extra)
        area = _round8(used) * _round8(first + extra)
        if best is None or area < best[0]:
            best = (area, places, _round8(used), _round8(first + extra))
    _, places, canvas_h, canvas_w = best
    levels = [Level(s, math.ceil(height * s), math.ceil(width * s), top, left)
              for s, (top, left) in zip(own, places, strict=False)]
    return Layout(levels, canvas_h, canvas_w)


def render(image: np.ndarray, plan: Layout) -> tuple[np.ndarray, np.ndarray]:
    """The canvas (uint8 [H, W, 3], zeros between levels) and the mask of P-Net's first activation map (bool
    [H - 2, W - 2]: True where the 3x3 window lies inside one level)."""
    canvas = np.zeros((plan.height, plan.width, 3), np.uint8)
    mask = np.zeros((plan.height - 2, plan.width - 2), bool)
    pil = Image.fromarray(image)
    for lv in plan.levels:
        resized = np.asarray(pil.resize((lv.width, lv.height), Image.BILINEAR))
        canvas[lv.top:lv.top + lv.height, lv.left:lv.left + lv.width] = resized
        mask[lv.top:lv.top + lv.height - 2, lv.left:lv.left + lv.width - 2] = True
    return canvas, mask


def level_maps(output: np.ndarray, lv: Level) -> np.ndarray:
    """The part of P-Net's canvas output ([h, w, C], one cell per 2 canvas pixels) that belongs to one level."""
    h, w = -(-(lv.height - 2) // 2) - 4, -(-(lv.width - 2) // 2) - 4
    return output[lv.top // 2:lv.top // 2 + h, lv.left // 2:lv.left // 2 + w]
