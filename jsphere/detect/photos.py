"""Ordinary photos in, uint8 RGB [H, W, 3] out, with every bad case a ``PhotoError`` naming the file and why.

Grayscale, palette, RGBA (alpha dropped), CMYK and 16-bit images become 8-bit RGB (OpenCV's decoder, as
everywhere in jsphere; EXIF orientation applied). The size is read from the file's header before anything is
decoded: files over ``MAX_FILE_BYTES`` or images over ``MAX_PIXELS`` are refused without allocating them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jsphere.data.decode import MAX_PIXELS, CorruptImageError, ImageTooLarge, decode_image

__all__ = ["MAX_FILE_BYTES", "MAX_PIXELS", "PhotoError", "read_photo", "to_rgb8"]
MAX_FILE_BYTES = 256 << 20


class PhotoError(CorruptImageError):
    """A photo that cannot be used; ``reason`` is a short name for reports (``unreadable``, ``not an image``,
    ``too large``)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def to_rgb8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """An in-memory image as uint8 [H, W, 3] RGB: [H, W] or [H, W, 1] gray is repeated, [H, W, 4] loses alpha,
    uint16 keeps its high byte, float images are taken as 0-255 values."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise PhotoError(f"{what}: expected an [H, W], [H, W, 3] or [H, W, 4] image, got shape {a.shape}",
                         "not an image")
    a = a[:, :, :3]
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
            raise PhotoError(f"{what}: pixel values must be finite numbers, got {a.dtype}", "not an image")
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """The photo at ``path`` as uint8 [H, W, 3] RGB, or a ``PhotoError``."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PhotoError(f"{path}: file of {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES >> 20} MiB limit",
                             "too large")
        data = path.read_bytes()
    except OSError as e:
        raise PhotoError(f"{path}: unreadable ({e.strerror or e})", "unreadable") from None
    try:
        return decode_image(data, what=str(path), max_pixels=MAX_PIXELS)
    except ImageTooLarge as e:
        raise PhotoError(str(e), "too large") from None
    except CorruptImageError as e:
        raise PhotoError(str(e), "not an image") from None
