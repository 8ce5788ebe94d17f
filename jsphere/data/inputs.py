"""The images a command is given to embed: a folder, a list file or a ``.npy`` array, and their landmarks.

* ``list_inputs``: the image files of a folder (every image below it, sorted by path) or of a list file (one path
  per line, optionally followed by other fields; relative paths are relative to the list's folder);
* ``load_npy``: a ``.npy`` array, refused in one line when it is not one (never unpickled);
* ``read_landmarks``: five (x, y) points per image (left eye, right eye, nose, left and right mouth corners) from a
  text file of ``path x1 y1 ... x5 y5`` lines or a ``.npy`` [N, 5, 2] in input order;
* ``load_inputs``: uint8 [N, 112, 112, 3] aligned RGB faces of any of these, aligned to the ArcFace template first
  when landmarks are given.

Used by ``jsphere.embed``, ``jsphere.detect.embed_faces`` (raw photos) and ``converters.check``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jsphere import errors
from jsphere.data.decode import check_aligned, decode_aligned, decode_image
from jsphere.data.landmark_align import align_face
from jsphere.data.listfile import read_lines, resolve
from jsphere.data.sources import IMAGE_SUFFIXES


def list_inputs(path: Path) -> list[str]:
    """The image files of a folder (sorted by path) or of a list file (in its order)."""
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{path}: no images ({'/'.join(IMAGE_SUFFIXES)}) below this folder")
        return files
    return [resolve(path.parent, line.fields[0]) for line in read_lines(path, "image list")]


def load_npy(path: Path, what: str) -> np.ndarray:
    """The array of a ``.npy`` file of ``what`` (pickles refused); a file that is not one is named in one line."""
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise errors.UserError(f"{path}: not a readable .npy array of {what} ({errors.describe(e)})") from e


def read_landmarks(path: Path, files: list[str] | None, count: int) -> np.ndarray:
    """[count, 5, 2] landmarks of the input images (``files``: their paths, None for a ``.npy`` input)."""
    if path.suffix == ".npy":
        lm = load_npy(path, "landmarks")
        if lm.size % 10:
            raise errors.UserError(f"{path}: expected [N, 5, 2] landmarks, got an array of shape {lm.shape}")
        lm = lm.reshape(-1, 5, 2)
    else:
        table = {}
        for line in read_lines(path, "landmark file"):
            try:
                table[line.fields[0]] = np.asarray(line.fields[1:], np.float64).reshape(5, 2)
            except ValueError:
                raise line.error("'path x1 y1 ... x5 y5' (ten numbers)") from None
        if files is None:
            raise ValueError(f"{path}: a text landmark file needs image paths as input, not a .npy")
        lm = []
        for f in files:
            key = next((k for k in (f, Path(f).name) if k in table), None)
            if key is None:
                raise KeyError(f"{path}: no landmarks for image {f}")
            lm.append(table[key])
        lm = np.stack(lm)
    if len(lm) != count:
        raise ValueError(f"{path}: {len(lm)} landmark sets for {count} images")
    return lm


def load_inputs(input_path: str, landmarks: str | None = None, *, flag: str = "--input",
                style: str = "arcface") -> np.ndarray:
    """The aligned images of ``input_path`` (the value of the command's ``flag``): uint8 [N, 112, 112, 3] RGB, from a
    folder, a list file or a ``.npy``; ``landmarks`` (a text file or a ``.npy`` [N, 5, 2]) aligns unaligned ones in
    ``style`` (``jsphere.data.landmark_align``)."""
    path = Path(input_path)
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path} does not exist")
    if path.suffix == ".npy":
        images, files = load_npy(path, "images"), None
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{path}: expected uint8 [N, H, W, 3] RGB images, got {images.dtype} {images.shape}")
        if not len(images):
            raise errors.UserError(f"{flag} {path}: the file holds no images (shape {images.shape}); give at least one")
        images = list(images)
    else:
        files = list_inputs(path)
        decode = decode_image if landmarks else decode_aligned  # unaligned images are aligned below
        images = [decode(Path(f).read_bytes(), what=f) for f in files]
    if landmarks:
        lm = read_landmarks(Path(landmarks), files, len(images))
        return np.stack([align_face(img, lm[i], style=style) for i, img in enumerate(images)])
    names = files or [f"{path} image {i}" for i in range(len(images))]
    return np.stack([check_aligned(img, what=name) for img, name in zip(images, names, strict=True)])
