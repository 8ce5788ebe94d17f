"""An encoded image's width and height, read from its header without decoding a pixel.

PNG, JPEG and BMP (the formats jsphere's sources hold) are parsed here from their first bytes; any other format
is asked of Pillow, which reads only its header too. The decoders check this size before they allocate the
image (``jsphere.data.decode``), so a decompression bomb (a few KB declaring 30000x30000 pixels) is refused at
once instead of after minutes of decoding.
"""

from __future__ import annotations

import io
import struct
import warnings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START = b"\xff\xd8"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): every SOFn except DHT, JPG and DAC
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_NO_LENGTH = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}  # RSTn, TEM and SOI stand alone


class HeaderSizeUnknown(Exception):
    """Pillow recognised the format but refused to open it (its own decompression-bomb limit)."""


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _bmp(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)  # a negative height means rows stored top-down


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _JPEG_FRAMES:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5:i + 9])
            return width, height
        i += 2 + length
    return None


def _pillow(data: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                return image.size
        except Image.DecompressionBombError:
            raise HeaderSizeUnknown(f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` declared by the header of the encoded image ``data``; None when no size can be read
    (not an image, a format Pillow does not know, or a header cut short). Raises :class:`HeaderSizeUnknown` when
    only Pillow reads the format and it refuses the image as too large."""
    if data.startswith(PNG_SIGNATURE):
        return _png(data)
    if data.startswith(JPEG_START):
        return _jpeg(data)
    if data.startswith(b"BM"):
        return _bmp(data)
    return _pillow(data)
