"""``jsphere.embed --detect``: raw photos -> aligned 112x112 faces, and the table that says which output row is
which face.

Largest face (default): one row per photo, in input order, as without ``--detect``; a photo without a usable
face gets a row of NaN. ``--all``: one row per face, photos in input order, each photo's faces highest score
first. Either way the faces table (tab-separated, a header line) gives for every row its photo, face index,
score, box (x1 y1 x2 y2) and landmarks (x, y of eyes, nose, mouth corners), and names the photos without a face
and why.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from jsphere.data.inputs import list_inputs, load_npy
from jsphere.detect.detector import Detector
from jsphere.detect.faces import aligned_faces
from jsphere.detect.photos import PhotoError, read_photo, to_rgb8

HEADER = ["row", "photo", "face", "score", "x1", "y1", "x2", "y2",
          *[f"{p}{c}" for p in ("left_eye_", "right_eye_", "nose_", "mouth_left_", "mouth_right_") for c in "xy"]]


class DetectedInputs(NamedTuple):
    faces: np.ndarray  # uint8 [M, 112, 112, 3], the faces to embed
    rows: list[int]  # output row of each face
    num_rows: int
    table: list[list[str]]  # the faces table's lines (without the header)
    missing: list[str]  # "photo: reason" of the photos without a face


def _photos(input_path: Path, flag: str) -> list[tuple[str, np.ndarray | None]]:
    """(name, image or None to read later) of every input photo, in order."""
    if input_path.suffix == ".npy":
        images = load_npy(input_path, "images")
        if images.ndim not in (3, 4) or not len(images):
            raise ValueError(f"{flag} {input_path}: expected [N, H, W(, C)] images, got shape {images.shape}")
        return [(f"{input_path}[{i}]", to_rgb8(img, f"{input_path}[{i}]")) for i, img in enumerate(images)]
    return [(f, None) for f in list_inputs(input_path)]


def detect_inputs(input_path: str, detector: Detector, *, all_faces: bool = False, style: str = "opensphere",
                  flag: str = "--input") -> DetectedInputs:
    path = Path(input_path)
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path} does not exist")
    faces, rows, table, missing = [], [], [], []
    row = 0
    for name, image in _photos(path, flag):
        reason = None
        try:
            image = read_photo(name) if image is None else image
            found = aligned_faces(image, detector(image), all_faces=all_faces, style=style)
            reason = None if found else "no face"
        except PhotoError as e:
            found, reason = [], f"{e.reason}: {e}"
        except ValueError as e:  # degenerate landmarks
            found, reason = [], f"alignment failed: {e}"
        if reason is not None:
            missing.append(f"{name}: {reason}")
            table.append([str(row) if not all_faces else "-", name, "-", reason])
            row += 0 if all_faces else 1
            continue
        for face in found:
            faces.append(face.aligned)
            rows.append(row)
            numbers = [face.score, *face.box, *face.landmarks.ravel()]
            table.append([str(row), name, str(face.index), *(f"{v:.3f}" if i else f"{v:.6f}"
                                                               for i, v in enumerate(numbers))])
            row += 1
    empty = np.zeros((0, 112, 112, 3), np.uint8)
    return DetectedInputs(np.stack(faces) if faces else empty, rows, row, table, missing)


def scatter(found: DetectedInputs, feats: np.ndarray) -> np.ndarray:
    """The output rows: each face's embedding at its row, NaN rows for photos without a face."""
    out = np.full((found.num_rows, feats.shape[1]), np.nan, np.float32)
    out[found.rows] = feats
    return out


def write_table(found: DetectedInputs, path: Path) -> None:
    lines = ["\t".join(HEADER)] + ["\t".join(line) for line in found.table]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
