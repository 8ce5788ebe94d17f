"""insightface validation ``.bin`` sets: a pickle of ``(list of encoded images, list of bools)``.

Pairs are images (2i, 2i + 1). The pickle is read with a restricted unpickler that admits only the plain
values such a file holds (lists, tuples, bytes, bools, ints, strings; and ``codecs.encode``, with which
protocol-2 pickles rebuild bytes): any other class or function reference is refused before anything runs.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a class or callable; it was not loaded."""


class _PlainValues(pickle.Unpickler):
    def __init__(self, file, *, where: str):
        super().__init__(file, encoding="bytes")
        self.where = where

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles written by Python 3 rebuild bytes
            return codecs.encode  # the same function as _codecs.encode
        raise UnsafePickleError(f"{self.where}: refusing to load {module}.{name} — a .bin set holds only bytes "
                                "and bools; this file is not a valid (or not a safe) validation set")


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
    if not (isinstance(obj, tuple | list) and len(obj) == 2):
        raise ValueError(f"{path}: expected a pickled (images, issame) pair, got {type(obj).__name__}")
    images, issame = obj
    if not all(isinstance(b, bytes | bytearray) for b in images):
        raise ValueError(f"{path}: the image list must hold encoded image bytes")
    if not all(isinstance(s, bool | int) for s in issame):
        raise ValueError(f"{path}: the issame list must hold booleans")
    if len(images) % 2:
        raise ValueError(f"{path}: odd image count {len(images)}; pairs are images (2i, 2i+1)")
    if len(images) != 2 * len(issame):
        raise ValueError(f"{path}: {len(images)} images but {len(issame)} pair labels (expected {len(images) // 2})")
    return [bytes(b) for b in images], np.asarray(issame, bool)
