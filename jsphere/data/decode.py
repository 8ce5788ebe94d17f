"""Image decoding (JPEG/PNG bytes -> uint8 HWC RGB) with errors that name the image."""

from __future__ import annotations

import cv2
import numpy as np

cv2.setNumThreads(1)


class CorruptImageError(ValueError):
    """An image that cannot be decoded, or is not what the pipeline expects."""


def decode_image(data: bytes | np.ndarray, *, what: str = "image") -> np.ndarray:
    """Decode ``data`` to a uint8 [H, W, 3] RGB array; ``what`` (a path or record name) goes into errors.

    An already decoded uint8 RGB array (e.g. from a TFDS ``Image`` feature) is passed through."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 3 or data.shape[2] != 3:
            raise CorruptImageError(f"{what}: expected a uint8 [H, W, 3] image, got {data.dtype} {data.shape}")
        return data
    if not data:
        raise CorruptImageError(f"{what}: empty image data")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CorruptImageError(f"{what}: cannot decode image ({len(data)} bytes; corrupt, truncated or not an image)")
    return image[:, :, ::-1]


def check_aligned(image: np.ndarray, *, what: str, size: int = 112) -> np.ndarray:
    """Training/validation images must already be aligned ``size`` x ``size`` faces (as in OpenSphere)."""
    if image.shape[:2] != (size, size):
        raise CorruptImageError(
            f"{what}: image is {image.shape[1]}x{image.shape[0]}, expected an aligned {size}x{size} face "
            "(align it first, e.g. with jsphere.data.landmark_align.align_face and 5 landmarks)")
    return image


def encode_jpeg(image_rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image_rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
