"""insightface validation ``.bin`` sets: a pickle of ``(list of encoded images, list of bools)``.

Pairs are images (2i, 2i + 1). The encoded images are ``bytes`` in insightface's own sets (``lfw.bin``,
``agedb_30.bin`` ...) and ``uint8`` numpy arrays of the same bytes in others (arcface_paddle's test data
``small_lfw.bin``: JPEGs as [n, 1] arrays, pickled with protocol 3). The pickle is read with a restricted unpickler
that admits only the plain values such a file holds (lists, tuples, bytes, bools, ints, strings; ``codecs.encode``,
with which protocol-2 pickles rebuild bytes) and exactly the numpy reconstruction of such an array
(``numpy.core.multiarray._reconstruct`` or ``numpy._core.multiarray._reconstruct`` of a ``numpy.ndarray``, dtype
``numpy.dtype('u1')``), each replaced by a stand-in that checks what it is given ([n] or [n, 1], ``uint8``, as many
bytes as the shape says) and yields the bytes: no numpy code runs, any other class or function reference is
refused before anything runs.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a class or callable; it was not loaded."""


class _Uint8:
    """Stands for ``numpy.dtype('u1')``, the only dtype an encoded image array has."""

    def __init__(self, descr, align=False, copy=False):
        if descr not in ("u1", b"u1", "|u1", b"|u1"):
            raise UnsafePickleError(f"an image array of dtype {descr!r}; encoded images are uint8 ('u1')")

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) > 1 and state[1] in ("|", b"|", "=", b"=")):
            raise UnsafePickleError(f"unexpected uint8 dtype state {state!r}")


class _ImageArray:
    """Stands for a 1-d uint8 array while unpickling; ``data`` holds its bytes once its state is set."""

    def __init__(self):
        self.data: bytes | None = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsafePickleError(f"unexpected array state of type {type(state).__name__}")
        _version, shape, dtype, _fortran, raw = state
        if not (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape)
                and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))):
            raise UnsafePickleError(f"an image array of shape {shape!r}; encoded images are [n] or [n, 1] arrays")
        if not isinstance(dtype, _Uint8):
            raise UnsafePickleError("an image array without its uint8 dtype")
        size = math.prod(shape)
        if not isinstance(raw, bytes | bytearray) or len(raw) != size:
            raise UnsafePickleError(f"an image array of {size} bytes holding "
                                    f"{len(raw) if isinstance(raw, bytes | bytearray) else type(raw).__name__}")
        self.data = bytes(raw)


_NDARRAY = object()  # what the pickle's numpy.ndarray reference stands for


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise UnsafePickleError("_reconstruct of something other than an empty numpy.ndarray")
    return _ImageArray()


_ALLOWED = {
    ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles written by Python 3 rebuild bytes
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # numpy 1's name
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # numpy 2's
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Uint8,
}


class _PlainValues(pickle.Unpickler):
    def __init__(self, file, *, where: str):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise UnsafePickleError(f"{self.where}: refusing to load {module}.{name} — a .bin set holds only encoded "
                                "images (bytes or uint8 arrays) and bools; this file is not a valid (or not a safe) "
                                "validation set")


def _encoded(item) -> bytes | None:
    if isinstance(item, bytes | bytearray):
        return bytes(item)
    if isinstance(item, _ImageArray):
        return item.data
    return None


def read_bin(path: str | os.PathLike) -> tuple[list[bytes], np.ndarray]:
    """(encoded images, issame [P] bool) with 2P images."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = _PlainValues(io.BytesIO(data), where=str(path)).load()
    except UnsafePickleError as e:
        raise UnsafePickleError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    except Exception as e:  # truncated or not a pickle at all
        raise ValueError(f"{path}: cannot read the .bin pickle ({type(e).__name__}: {e})") from None
    if not (isinstance(obj, tuple | list) and len(obj) == 2):
        raise ValueError(f"{path}: expected a pickled (images, issame) pair, got {type(obj).__name__}")
    images, issame = obj
    if not isinstance(images, list | tuple) or not isinstance(issame, list | tuple):
        raise ValueError(f"{path}: expected lists of images and of pair labels")
    encoded = [_encoded(b) for b in images]
    if any(b is None for b in encoded):
        raise ValueError(f"{path}: the image list must hold encoded image bytes (or uint8 arrays of them)")
    if not all(isinstance(s, bool | int) for s in issame):
        raise ValueError(f"{path}: the issame list must hold booleans")
    if len(images) % 2:
        raise ValueError(f"{path}: odd image count {len(images)}; pairs are images (2i, 2i+1)")
    if len(images) != 2 * len(issame):
        raise ValueError(f"{path}: {len(images)} images but {len(issame)} pair labels (expected {len(images) // 2})")
    return encoded, np.asarray(issame, bool)
