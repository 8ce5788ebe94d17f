"""Read ``.npy`` files that hold pickled objects (``np.save(path, {'name': array, ...})``) without unpickling
anything but arrays, dicts, lists and strings.

``np.load(allow_pickle=False)`` refuses such files, and ``allow_pickle=True`` runs whatever the pickle names.
OpenSphere's ``mtcnn_pytorch/src/weights/{pnet,rnet,onet}.npy`` are 0-d object arrays wrapping a dict of
float32 arrays, pickled (protocol 2 by old NumPy, 3-4 by new) as ``numpy.core.multiarray._reconstruct`` /
``numpy._core.multiarray._reconstruct`` + ``numpy.ndarray`` + ``numpy.dtype`` states, with ``_codecs.encode``
for the raw bytes under protocol 2. This module's unpickler admits exactly those globals, each replaced by a
builder that checks what it is given (numeric dtypes only, buffer size against shape) before making an array;
any other global is refused before it runs. A plain array's header is checked against the bytes the file holds
before anything is allocated (a header may claim any shape).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

_NUMERIC = re.compile(r"^[fiub][1248]$|^f16$|^b1$|^u1$")


class UnsafeFileError(pickle.UnpicklingError):
    """The pickle references something other than arrays and plain containers."""


class _ArrayBuilder:
    """Stands for an array while unpickling; ``build()`` returns the checked numpy array."""

    def __init__(self):
        self.array: np.ndarray | None = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsafeFileError(f"unexpected array state of type {type(state).__name__}")
        _version, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise UnsafeFileError(f"bad array shape {shape!r}")
        if not isinstance(dtype, _DtypeBuilder):
            raise UnsafeFileError("array without a dtype")
        count = math.prod(shape)
        order = "F" if fortran else "C"
        if dtype.kind == "O":
            if not isinstance(raw, list) or len(raw) != count:
                raise UnsafeFileError(f"object array of shape {shape} with {type(raw).__name__} contents")
            a = np.empty(count, object)
            a[:] = raw
            self.array = a.reshape(shape, order=order)
            return
        if not isinstance(raw, bytes | bytearray):
            raise UnsafeFileError(f"array data of type {type(raw).__name__}, expected bytes")
        dt = dtype.dtype()
        if len(raw) != count * dt.itemsize:
            raise UnsafeFileError(f"array of shape {shape} and dtype {dt} needs {count * dt.itemsize} bytes, "
                                  f"the file holds {len(raw)}")
        self.array = np.frombuffer(bytes(raw), dt).reshape(shape, order=order).copy()


class _DtypeBuilder:
    def __init__(self, descr: str, align=False, copy=False):
        if not isinstance(descr, str) or not (descr in ("O4", "O8") or _NUMERIC.match(descr)):
            raise UnsafeFileError(f"dtype {descr!r} is not a plain numeric or object dtype")
        self.kind, self.descr, self.order = descr[0], descr, "|"

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = state[1]

    def dtype(self) -> np.dtype:
        return np.dtype(self.descr).newbyteorder(self.order) if self.order in "<>" else np.dtype(self.descr)


def _reconstruct(cls, shape, dtype_code):
    if cls is not _NDARRAY:
        raise UnsafeFileError("_reconstruct of something other than numpy.ndarray")
    return _ArrayBuilder()


def _encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafeFileError("_codecs.encode used for something other than latin1 array bytes")
    return text.encode("latin1")


_NDARRAY = object()
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DtypeBuilder,
    ("_codecs", "encode"): _encode,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, where: str):
        super().__init__(io.BytesIO(data))
        self.where = where

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise UnsafeFileError(f"{self.where}: refusing to load {module}.{name}: only numpy arrays and plain "
                              "containers are allowed in this file")

    def persistent_load(self, pid):
        raise UnsafeFileError(f"{self.where}: unexpected persistent id {pid!r}")


def _resolve(obj: Any, where: str) -> Any:
    if isinstance(obj, _ArrayBuilder):
        if obj.array is None:
            raise UnsafeFileError(f"{where}: an array without data")
        if obj.array.dtype != object:
            return obj.array
        out = np.empty(obj.array.size, object)
        for i, item in enumerate(obj.array.ravel()):
            out[i] = _resolve(item, where)
        return out.reshape(obj.array.shape)
    if isinstance(obj, dict):
        return {k: _resolve(v, where) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_resolve(v, where) for v in obj)
    if isinstance(obj, str | bytes | int | float | bool) or obj is None:
        return obj
    raise UnsafeFileError(f"{where}: unexpected {type(obj).__name__} in the file")


def _check_data_size(path: Path, header_end: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """A plain array's data must be exactly what its header's shape and dtype need: the file's bytes, not the
    header, bound what is allocated."""
    needed = math.prod(shape) * dtype.itemsize
    held = path.stat().st_size - header_end
    if needed != held:
        raise ValueError(f"{path}: the .npy header says shape {shape} of {dtype} ({needed:,} bytes), the file holds "
                         f"{held:,} bytes of data: a truncated or corrupt file")


def load(path: str | os.PathLike) -> Any:
    """The object saved in an ``.npy`` file: a plain array as ``np.load(allow_pickle=False)`` gives it; for an
    object array, its contents unpickled safely (a 0-d object array gives back the object it wraps)."""
    path = Path(path)
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(f)
        except ValueError as e:
            raise ValueError(f"{path}: not a .npy file ({e})") from None
        if any(d < 0 for d in shape):
            raise ValueError(f"{path}: the .npy header says shape {shape}, with a negative dimension: a corrupt file")
        if not dtype.hasobject:
            _check_data_size(path, f.tell(), shape, dtype)
            f.seek(0)
            return np.load(f, allow_pickle=False)
        data = f.read()
    try:
        obj = _resolve(_Unpickler(data, str(path)).load(), str(path))
    except UnsafeFileError as e:
        raise UnsafeFileError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: corrupt pickled .npy contents ({type(e).__name__}: {e})") from None
    if not isinstance(obj, np.ndarray) or obj.shape != tuple(shape):
        raise ValueError(f"{path}: the header says an object array of shape {shape}, the data is not")
    return obj.item() if obj.shape == () else obj
