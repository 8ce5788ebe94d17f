"""Loading many aligned face images at once (evaluation, embedding): decode in threads, check the size."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jsphere.data.decode import decode_aligned


def _load_one(path: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FileNotFoundError(f"cannot read image {path}: {e.strerror}") from None
    return decode_aligned(data, what=path)


def load_images(paths: Sequence[str], *, threads: int = 4) -> np.ndarray:
    """uint8 [N, 112, 112, 3] RGB for aligned image files, in the order given."""
    out = np.empty((len(paths), 112, 112, 3), np.uint8)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for i, image in enumerate(pool.map(_load_one, paths)):
            out[i] = image
    return out


def decode_all(blobs: Sequence[bytes], names: Sequence[str] | None = None, *, threads: int = 4) -> np.ndarray:
    """uint8 [N, 112, 112, 3] from encoded images (e.g. a ``.bin`` set)."""
    names = names or [f"image {i}" for i in range(len(blobs))]
    out = np.empty((len(blobs), 112, 112, 3), np.uint8)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pairs = zip(blobs, names, strict=True)
        decoded = pool.map(lambda a: decode_aligned(a[0], what=a[1]), pairs)
        for i, image in enumerate(decoded):
            out[i] = image
    return out
