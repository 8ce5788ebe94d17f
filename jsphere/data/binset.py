"""insightface validation ``.bin`` sets: a pickle of ``(list of encoded images, list of bools)``.

Pairs are images (2i, 2i + 1). The pickle is read with a restricted unpickler that admits only the plain
values such a file holds (lists, tuples, bytes, bools, ints, strings; and ``codecs.encode``, with which
protocol-2 pickles rebuild bytes), and the one numpy reconstruction of the sets that store each encoded image as a
uint8 array (arcface_paddle's ``small_lfw.bin``): an empty ``ndarray`` of dtype ``u1``, filled from bytes. Any other
class or function reference, another dtype or another array form, is refused before anything runs.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a class or callable; it was not loaded."""


_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0, np.uint8))[0]  # what numpy pickles an array with
_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy < 2, numpy >= 2
_UINT8 = ("u1", b"u1")  # the dtype's name, as Python 3 and as Python 2 (read as bytes) wrote it


class _PlainValues(pickle.Unpickler):
    def __init__(self, file, *, where: str):
        super().__init__(file, encoding="bytes")
        self.where = where

    def _refuse(self, what: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.where}: refusing to load {what} — a .bin set holds only encoded images "
                                 "(bytes or uint8 arrays) and bools; this file is not a valid (or not a safe) "
                                 "validation set")

    def _empty_array(self, cls, shape, typecode):
        """numpy's first step of unpickling an array: an empty one, which the pickle then fills from bytes."""
        if cls is not np.ndarray or tuple(shape) != (0,):
            raise self._refuse(f"a numpy array reconstructed as {getattr(cls, '__name__', cls)!r} {shape!r}")
        return _RECONSTRUCT(cls, shape, typecode)

    def _uint8(self, spec, align=False, copy=False):
        if spec not in _UINT8:
            raise self._refuse(f"a numpy array of dtype {spec!r}")
        return np.dtype("u1", align, copy)

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles written by Python 3 rebuild bytes
            return codecs.encode  # the same function as _codecs.encode
        if module in _RECONSTRUCT_MODULES and name == "_reconstruct":
            return self._empty_array
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return self._uint8
        raise self._refuse(f"{module}.{name}")


def _encoded(image: object) -> bytes | None:
    """An encoded image's bytes: stored as bytes, or as a 1-d uint8 array of them; None for anything else."""
    if isinstance(image, bytes | bytearray):
        return bytes(image)
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 1:
        return image.tobytes()
    return None


def read_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """(encoded images, issame [P] bool) with 2P images."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _PlainValues(io.BytesIO(data), where=str(path)).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise ValueError(f"{path}: cannot read the .bin pickle ({type(e).__name__}: {e})") from None
    if not (isinstance(obj, tuple | list) and len(obj) == 2 and all(isinstance(x, list | tuple) for x in obj)):
        raise ValueError(f"{path}: expected a pickled (images, issame) pair of lists, got "
                         f"{type(obj).__name__}")
    images, issame = [_encoded(b) for b in obj[0]], obj[1]
    if any(b is None for b in images):
        raise ValueError(f"{path}: the image list must hold encoded images (bytes, or 1-d uint8 arrays of them)")
    if not all(isinstance(s, bool | int) for s in issame):
        raise ValueError(f"{path}: the issame list must hold booleans")
    if len(images) % 2:
        raise ValueError(f"{path}: odd image count {len(images)}; pairs are images (2i, 2i+1)")
    if len(images) != 2 * len(issame):
        raise ValueError(f"{path}: {len(images)} images but {len(issame)} pair labels (expected {len(images) // 2})")
    return images, np.asarray(issame, bool)
