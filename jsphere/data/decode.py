"""Image decoding (JPEG/PNG bytes -> uint8 HWC RGB) with errors that name the image.

The size is read from the header first (``jsphere.data.image_header``) and checked before a pixel is decoded: an
image over ``MAX_PIXELS`` (``decode_image``), or not the aligned size a training or evaluation image must have
(``decode_aligned``), is refused at once, whatever its header declares (a decompression bomb costs nothing).
"""

from __future__ import annotations

import cv2
import numpy as np

from jsphere.data.image_header import HeaderSizeUnknown, image_size

cv2.setNumThreads(1)

MAX_PIXELS = 64 << 20  # 64 megapixels (8192 x 8192): a 48 MP phone photo passes, a 10000 x 10000 image does not
ALIGNED_SIZE = 112


class CorruptImageError(ValueError):
    """An image that cannot be decoded, or is not what the pipeline expects."""


class ImageTooLarge(CorruptImageError):
    """An image whose header declares more pixels than the reader accepts (refused before decoding)."""


def _not_aligned(what: str, width: int, height: int, size: int) -> CorruptImageError:
    return CorruptImageError(
        f"{what}: image is {width}x{height}, expected an aligned {size}x{size} face "
        "(align it first, e.g. with jsphere.data.landmark_align.align_face and 5 landmarks)")


def header_size(data: bytes, what: str) -> tuple[int, int]:
    """``(width, height)`` from the header of ``data``; CorruptImageError when it declares none."""
    if not len(data):
        raise CorruptImageError(f"{what}: empty image data")
    try:
        size = image_size(data)
    except HeaderSizeUnknown as e:
        raise ImageTooLarge(f"{what}: image of {e} (its header says so), too large to decode; downscale it "
                            "first") from None
    if size is None:
        raise CorruptImageError(f"{what}: cannot decode image ({len(data)} bytes; corrupt, truncated or not an image)")
    return size


def _decode(data: bytes, what: str) -> np.ndarray:
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise CorruptImageError(f"{what}: cannot decode image ({len(data)} bytes): OpenCV refused it "
                                f"({str(e).strip().splitlines()[-1]})") from None
    if image is None:
        raise CorruptImageError(f"{what}: cannot decode image ({len(data)} bytes; corrupt, truncated or not an image)")
    return image[:, :, ::-1]


def decode_image(data: bytes | np.ndarray, *, what: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode ``data`` to a uint8 [H, W, 3] RGB array; ``what`` (a path or record name) goes into errors. An image
    whose header declares more than ``max_pixels`` is refused before decoding.

    An already decoded uint8 RGB array (e.g. from a TFDS ``Image`` feature) is passed through."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 3 or data.shape[2] != 3:
            raise CorruptImageError(f"{what}: expected a uint8 [H, W, 3] image, got {data.dtype} {data.shape}")
        return data
    width, height = header_size(data, what)
    if width * height > max_pixels:
        raise ImageTooLarge(f"{what}: image of {width}x{height} pixels (its header says so), over the "
                            f"{max_pixels / 2**20:g} megapixel limit; downscale it first")
    return _decode(data, what)


def decode_aligned(data: bytes | np.ndarray, *, what: str, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Decode an aligned ``size`` x ``size`` face (training, evaluation); any other size, as its header declares
    it, is refused before decoding."""
    if not isinstance(data, np.ndarray):
        width, height = header_size(data, what)
        if (width, height) != (size, size):
            raise _not_aligned(what, width, height, size)
    return check_aligned(decode_image(data, what=what), what=what, size=size)


def check_aligned(image: np.ndarray, *, what: str, size: int = ALIGNED_SIZE) -> np.ndarray:
    """Training/validation images must already be aligned ``size`` x ``size`` faces (as in OpenSphere)."""
    if image.shape[:2] != (size, size):
        raise _not_aligned(what, image.shape[1], image.shape[0], size)
    return image


def encode_jpeg(image_rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image_rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
