"""Box arithmetic of MTCNN as OpenSphere's ``mtcnn_pytorch`` port does it (host-side numpy, float64).

Boxes are rows ``(x1, y1, x2, y2, score)`` in pixel coordinates with inclusive corners (width ``x2 - x1 + 1``).
Crops for R-Net and O-Net are cut with zero padding outside the image and resized with Pillow's bilinear
filter (antialiased when shrinking), exactly as the reference does.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

STRIDE = 2  # P-Net's cells: 12x12 windows every 2 pixels of the scaled image
CELL = 12


def nms(boxes: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, highest score first. ``mode='union'``
    suppresses by intersection over union, ``'min'`` by intersection over the smaller box's area; overlaps
    equal to the threshold are kept (the reference's ``>``); ties in score are visited in ``np.argsort``'s
    order, as the reference does."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1.0) * (y2 - y1 + 1.0)
    order = np.argsort(score)
    keep = []
    while len(order):
        i, rest = order[-1], order[:-1]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1.0)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1.0)
        inter = w * h
        if mode == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[~(overlap > threshold)]
    return np.asarray(keep, np.int64)


def cell_boxes(probs: np.ndarray, offsets: np.ndarray, scale: float, threshold: float) -> np.ndarray:
    """P-Net cells whose face probability exceeds ``threshold`` as rows ``(x1, y1, x2, y2, score, tx1, ty1, tx2,
    ty2)`` in the original image: the cell's 12x12 window mapped back by ``scale`` (with the reference's +1
    shift and round-half-to-even), its probability and its four offsets. ``probs`` [h, w]; ``offsets`` [h, w, 4]."""
    rows, cols = np.nonzero(probs > threshold)
    if rows.size == 0:
        return np.zeros((0, 9))
    x = STRIDE * cols + 1.0
    y = STRIDE * rows + 1.0
    return np.column_stack([np.round(x / scale), np.round(y / scale), np.round((x + CELL) / scale),
                            np.round((y + CELL) / scale), probs[rows, cols].astype(np.float64),
                            offsets[rows, cols].astype(np.float64)])


def calibrate(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by the regressed offsets (fractions of the width and height), in place and returned."""
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    boxes[:, 0:4] = boxes[:, 0:4] + np.column_stack([w, h, w, h]) * offsets
    return boxes


def square(boxes: np.ndarray) -> np.ndarray:
    """The squares of side ``max(w, h)`` centred on ``boxes`` (score column kept)."""
    out = np.zeros_like(boxes)
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side - 1.0
    out[:, 3] = out[:, 1] + side - 1.0
    out[:, 4:] = boxes[:, 4:]
    return out


def square_and_round(boxes: np.ndarray) -> np.ndarray:
    """``square`` then corners rounded half to even (what the reference does between stages)."""
    out = square(boxes)
    out[:, 0:4] = np.round(out[:, 0:4])
    return out


def drop_degenerate(boxes: np.ndarray, *extra: np.ndarray) -> tuple[np.ndarray, ...]:
    """Boxes (and the rows of ``extra``) whose side is at least one pixel and whose coordinates are finite. The
    reference crashes on the others (a negative crop size); they only come from nonsensical offsets."""
    ok = np.all(np.isfinite(boxes[:, 0:4]), axis=1)
    ok &= (boxes[:, 2] - boxes[:, 0] + 1.0 >= 1.0) & (boxes[:, 3] - boxes[:, 1] + 1.0 >= 1.0)
    return (boxes[ok], *(e[ok] for e in extra))


def crops(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """uint8 [n, size, size, 3] cut-outs of the (already squared and rounded) boxes: the box's pixels, zeros
    where it leaves the image, resized with Pillow's bilinear filter (the reference's ``get_image_boxes``;
    coordinates truncated to integers as it does).

    Then, as the reference's ``correct_bboxes`` does to its argument, the boxes are clipped to the image in
    place: the next regression, NMS and O-Net's landmarks are relative to the clipped box, though the network
    saw the zero-padded whole box."""
    height, width = image.shape[:2]
    out = np.zeros((len(boxes), size, size, 3), np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(boxes[:, 0:4].astype(np.int64)):
        w, h = x2 - x1 + 1, y2 - y1 + 1
        box = np.zeros((h, w, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width - 1), min(y2, height - 1)
        if sx2 >= sx1 and sy2 >= sy1:
            box[sy1 - y1:sy2 - y1 + 1, sx1 - x1:sx2 - x1 + 1] = image[sy1:sy2 + 1, sx1:sx2 + 1]
        out[i] = np.asarray(Image.fromarray(box).resize((size, size), Image.BILINEAR))
    boxes[:, 0:2] = np.where(boxes[:, 0:2] < 0.0, 0.0, boxes[:, 0:2])
    boxes[:, 2] = np.where(boxes[:, 2] > width - 1.0, width - 1.0, boxes[:, 2])
    boxes[:, 3] = np.where(boxes[:, 3] > height - 1.0, height - 1.0, boxes[:, 3])
    return out


def landmarks_in_image(boxes: np.ndarray, relative: np.ndarray) -> np.ndarray:
    """O-Net's landmarks (x1..x5, y1..y5 as fractions of the box, [n, 10]) in image pixels as [n, 5, 2]."""
    w = boxes[:, 2] - boxes[:, 0] + 1.0
    h = boxes[:, 3] - boxes[:, 1] + 1.0
    xs = boxes[:, 0:1] + w[:, None] * relative[:, 0:5]
    ys = boxes[:, 1:2] + h[:, None] * relative[:, 5:10]
    return np.stack([xs, ys], axis=-1)
