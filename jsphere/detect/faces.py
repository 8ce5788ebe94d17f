"""A photo's detections -> its aligned faces: the largest one, or every one, cropped onto the template."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jsphere.data.landmark_align import align_face
from jsphere.detect.detector import Detections


class Face(NamedTuple):
    index: int  # in the photo's detections (highest score first)
    box: np.ndarray  # [4] x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # [5, 2]
    aligned: np.ndarray  # uint8 [h, w, 3]


def aligned_faces(image: np.ndarray, det: Detections, *, all_faces: bool = False,
                  crop: tuple[int, int] = (112, 112), style: str = "opensphere") -> list[Face]:
    """The largest face of ``image`` (or every face, highest score first) aligned onto the template; [] when the
    detector found none."""
    if len(det.boxes) == 0:
        return []
    chosen = range(len(det.boxes)) if all_faces else [det.largest()]
    return [Face(i, det.boxes[i], float(det.scores[i]), det.landmarks[i],
                 align_face(image, det.landmarks[i], crop, style=style)) for i in chosen]
