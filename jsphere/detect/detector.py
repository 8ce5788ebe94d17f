"""MTCNN face detection with OpenSphere's defaults: ``Detector.from_checkpoint()(image) -> boxes, scores,
landmarks``.

The cascade is the one of OpenSphere's ``face_alignment/mtcnn.py`` (``detect_faces``), step for step:

1. P-Net over the image pyramid (min face 20 px, factor 0.85): cells over 0.6 become boxes, NMS 0.5 (union)
   within each scale, NMS 0.7 across scales, box regression, square, round;
2. R-Net on 24x24 crops: over 0.7 kept, NMS 0.7, regression, square, round;
3. O-Net on 48x48 crops: over 0.9 kept, landmarks placed in the box, regression, NMS 0.7 (intersection over
   the smaller box).

P-Net runs once per image on a canvas holding the whole pyramid (``jsphere.detect.pyramid``), R-Net and O-Net on
batches of 64 crops (the last padded to 16 or 64): each is a jitted call whose shapes come from a small set of
buckets, so new image sizes rarely compile anything.

``pnet_softmax``: MTCNN's P-Net turns its two logits per cell into a face probability with a softmax over the two
classes ("channel": the original Caffe model, TKwang's ``mtcnn_pytorch``, facenet-pytorch). OpenSphere's copy of
the port calls ``F.softmax(a, dim=-1)`` on the [N, 2, h, w] map, a softmax over the map's width, which finds
fewer faces (on ``mtcnn_pytorch/images/office5.jpg``: 1 face instead of 11). "opensphere" reproduces it
exactly; "channel" is the default.
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from jsphere.detect import boxes as B
from jsphere.detect import pyramid, weights
from jsphere.detect.nets import MTCNN
from jsphere.detect.photos import to_rgb8

SOFTMAX_MODES = ("channel", "opensphere")


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    min_face_size: float = 20.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.9)
    nms_thresholds: tuple[float, float, float] = (0.7, 0.7, 0.7)
    factor: float = 0.85
    pnet_softmax: str = "channel"
    max_side: int = 2048  # larger images are searched on a copy downscaled to this longer side (0: never)

    def __post_init__(self):
        if self.pnet_softmax not in SOFTMAX_MODES:
            raise ValueError(f"pnet_softmax {self.pnet_softmax!r}: expected one of {SOFTMAX_MODES}")
        if not (self.min_face_size >= 1 and 0 < self.factor < 1 and len(self.thresholds) == 3
                and len(self.nms_thresholds) == 3 and self.max_side >= 0):
            raise ValueError(f"invalid detector settings: {self}")


class Detections(NamedTuple):
    """Faces of one image, highest score first: ``boxes`` float32 [n, 4] (x1, y1, x2, y2, inclusive pixel
    corners), ``scores`` float32 [n] (O-Net's face probability), ``landmarks`` float32 [n, 5, 2] (x, y of the
    left eye, right eye, nose, left and right mouth corners)."""

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def largest(self) -> int | None:
        """Index of the face with the largest box area (None when there is none)."""
        if len(self.boxes) == 0:
            return None
        wh = self.boxes[:, 2:4] - self.boxes[:, 0:2] + 1.0
        return int(np.argmax(wh[:, 0] * wh[:, 1]))


def empty() -> Detections:
    return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32))


def softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    """Softmax in the logits' own precision, computed as PyTorch does (``exp(x - max) / sum``): a confident
    face's probability rounds to exactly 1.0 in float32 as it does in the reference, where NMS then breaks the
    tie by ``argsort`` order."""
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


CHUNK = 64  # R-Net/O-Net crops per call: full chunks of 64, the rest padded to 16 or 64 (two shapes to compile)


def _batch_bucket(n: int) -> int:
    return 16 if n <= 16 else CHUNK


class Detector:
    """MTCNN over numpy images (uint8 RGB [H, W, 3]; gray, RGBA and 16-bit arrays are converted)."""

    def __init__(self, model: MTCNN, config: DetectorConfig | None = None):
        self.config = config or DetectorConfig()
        graphdef, state = nnx.split(model)
        self._state = state
        dtype = model.pnet.dtype

        def prep(x):
            return (x.astype(dtype) - 127.5) * 0.0078125

        def pnet(state, canvas, mask):
            offsets, logits = nnx.merge(graphdef, state).pnet(prep(canvas)[None], mask[None])
            return jnp.concatenate([offsets[0], logits[0]], axis=-1)

        def rnet(state, crops):
            return nnx.merge(graphdef, state).rnet(prep(crops))

        def onet(state, crops):
            return nnx.merge(graphdef, state).onet(prep(crops))

        self._pnet, self._rnet, self._onet = jax.jit(pnet), jax.jit(rnet), jax.jit(onet)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, config: DetectorConfig | None = None, *,
                        dtype=None) -> Detector:
        """The detector of a checkpoint written by ``converters.import_mtcnn`` (default: ``weights.default_dir()``)."""
        return cls(weights.to_model(weights.load(path), dtype), config)

    # ---------------------------------------------------------------------------------------------- API
    def __call__(self, image: np.ndarray) -> Detections:
        image = to_rgb8(image)
        h, w = image.shape[:2]
        limit = self.config.max_side
        if limit and max(h, w) > limit:
            r = limit / max(h, w)
            small = np.asarray(Image.fromarray(image).resize((max(1, round(w * r)), max(1, round(h * r))),
                                                             Image.BILINEAR))
            det = self.detect(small)
            sx, sy = w / small.shape[1], h / small.shape[0]
            scale = np.array([sx, sy], np.float32)
            bxs = ((det.boxes.reshape(-1, 2, 2) + 0.5) * scale - 0.5).reshape(-1, 4)
            return Detections(bxs.astype(np.float32), det.scores, ((det.landmarks + 0.5) * scale - 0.5))
        return self.detect(image)

    def detect(self, image: np.ndarray) -> Detections:
        """The cascade on ``image`` (uint8 RGB) at its own size."""
        bxs = self._stage1(image)
        if len(bxs):
            bxs = self._stage2(image, bxs)
        if len(bxs) == 0:
            return empty()
        return self._stage3(image, bxs)

    # ------------------------------------------------------------------------------------------- stages
    def _face_probs(self, logits: np.ndarray) -> np.ndarray:
        if self.config.pnet_softmax == "opensphere":
            return softmax(logits[..., 1], axis=1)
        return softmax(logits, axis=-1)[..., 1]

    def _stage1(self, image: np.ndarray) -> np.ndarray:
        c = self.config
        plan = pyramid.layout(*image.shape[:2], c.min_face_size, c.factor)
        if plan is None:
            return np.zeros((0, 5))
        canvas, mask = pyramid.render(image, plan)
        out = np.asarray(self._pnet(self._state, canvas, mask))
        found = []
        for lv in plan.levels:
            maps = pyramid.level_maps(out, lv)
            cells = B.cell_boxes(self._face_probs(maps[..., 4:6]), maps[..., 0:4], lv.scale, c.thresholds[0])
            found.append(cells[B.nms(cells[:, 0:5], 0.5)])
        cells = np.concatenate(found)
        cells = cells[B.nms(cells[:, 0:5], c.nms_thresholds[0])]
        return B.square_and_round(B.calibrate(cells[:, 0:5], cells[:, 5:9]))

    def _run(self, fn, crops: np.ndarray) -> list[np.ndarray]:
        outs = []
        for start in range(0, len(crops), CHUNK):
            chunk = crops[start:start + CHUNK]
            padded = np.zeros((_batch_bucket(len(chunk)), *chunk.shape[1:]), np.uint8)
            padded[:len(chunk)] = chunk
            outs.append([np.asarray(o)[:len(chunk)] for o in fn(self._state, padded)])
        return [np.concatenate(parts) for parts in zip(*outs, strict=True)]

    @staticmethod
    def _probs(logits: np.ndarray) -> np.ndarray:
        return softmax(logits, axis=-1)[:, 1]

    def _stage2(self, image: np.ndarray, bxs: np.ndarray) -> np.ndarray:
        c = self.config
        (bxs,) = B.drop_degenerate(bxs)
        if len(bxs) == 0:
            return bxs
        offsets, logits = self._run(self._rnet, B.crops(image, bxs, 24))
        probs = self._probs(logits)
        keep = probs > c.thresholds[1]
        bxs, offsets = bxs[keep], offsets[keep].astype(np.float64)
        bxs[:, 4] = probs[keep]
        keep = B.nms(bxs, c.nms_thresholds[1])
        return B.square_and_round(B.calibrate(bxs[keep], offsets[keep]))

    def _stage3(self, image: np.ndarray, bxs: np.ndarray) -> Detections:
        c = self.config
        (bxs,) = B.drop_degenerate(bxs)
        if len(bxs) == 0:
            return empty()
        marks, offsets, logits = self._run(self._onet, B.crops(image, bxs, 48))
        probs = self._probs(logits)
        keep = probs > c.thresholds[2]
        bxs, offsets, marks = bxs[keep], offsets[keep].astype(np.float64), marks[keep].astype(np.float64)
        bxs[:, 4] = probs[keep]
        points = B.landmarks_in_image(bxs, marks)
        bxs = B.calibrate(bxs, offsets)
        keep = B.nms(bxs, c.nms_thresholds[2], mode="min")
        return Detections(bxs[keep, 0:4].astype(np.float32), bxs[keep, 4].astype(np.float32),
                          points[keep].astype(np.float32))
