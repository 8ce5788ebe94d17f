"""The pickle inside a PyTorch checkpoint, read as hostile input: a restricted unpickler and checked tensor views.

``torch.save`` pickles a tensor as ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, ...)``
over a persistent storage id ``('storage', torch.<Type>Storage, key, location, numel[, view])``. The unpickler
admits only those calls, the standard storage types and plain containers (torch's ``weights_only=True``
semantics): any other global is refused before anything runs; quantized tensors (``torch.qint8`` ...) are named as
such, since no re-save makes them float. Every view is checked before a byte of its storage
is read: integer sizes, strides and offset, no negative stride, its furthest element inside the storage's
declared elements (which the reader checks against the bytes the file holds). The tensors built from one file
may hold at most ``2 x`` the bytes its storages hold plus :data:`SLACK_BYTES`, so a small file cannot demand
GiBs through broadcast (stride 0) views or one storage rebuilt many times.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
from numpy.typing import DTypeLike

from jsphere import errors

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
QUANTIZED = {("torch", name) for name in (  # what torch pickles for quantized tensors: dtypes, schemes, storages
    "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "per_tensor_affine", "per_channel_affine",
    "per_channel_affine_float_qparams", "QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage",
    "QUInt2x4Storage")} | {("torch._utils", "_rebuild_qtensor")}
SLACK_BYTES = 64 << 20
MAX_DIMS = 64
MAX_ARRAY_BYTES = 1 << 62  # numpy refuses shapes whose non-zero sizes multiply past its index type


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle references something other than tensors and plain containers."""


class CorruptCheckpointError(errors.UserError, ValueError):
    """A checkpoint that contradicts itself: sizes, offsets or counts beyond the bytes the file holds."""


class QuantizedCheckpointError(errors.UserError, ValueError):
    """The checkpoint holds quantized tensors (``torch.qint8`` ...), which jsphere does not import."""


class StorageType:
    """``torch.<Name>Storage`` as the pickle names it: only its element type matters."""

    def __init__(self, name: str, dtype: DTypeLike):
        self.name, self.dtype = name, np.dtype(dtype)


class Storage:
    """A storage the pickle declares (``numel`` elements of ``dtype``); its bytes are read on first use."""

    def __init__(self, where: str, name: str, dtype: np.dtype, numel: int, read: Callable[[], bytes]):
        self.where, self.name, self.dtype, self.numel, self._read = where, name, dtype, numel, read
        self._array: np.ndarray | None = None

    def array(self) -> np.ndarray:
        if self._array is None:
            raw = self._read()
            if len(raw) != self.numel * self.dtype.itemsize:
                raise CorruptCheckpointError(f"{self.where}: storage {self.name} holds {len(raw)} bytes, its "
                                             f"declaration {self.numel} {self.dtype} elements")
            if self.dtype == np.bool_:  # any non-zero byte is True
                self._array = np.frombuffer(raw, np.uint8) != 0
            else:
                self._array = np.frombuffer(raw, self.dtype)
        return self._array


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_view(storage: Storage, offset: Any, size: Any, stride: Any) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """``(offset, size, stride)`` as ints once they are known to address only elements of ``storage``."""
    what = f"{storage.where}: a tensor over storage {storage.name}"
    if not isinstance(size, tuple | list) or not isinstance(stride, tuple | list):
        raise CorruptCheckpointError(f"{what} has size {size!r} and stride {stride!r}: not sequences")
    if len(size) != len(stride) or len(size) > MAX_DIMS:
        raise CorruptCheckpointError(f"{what} has {len(size)} sizes and {len(stride)} strides")
    if not (_is_int(offset) and all(map(_is_int, size)) and all(map(_is_int, stride))):
        raise CorruptCheckpointError(f"{what} has size {size!r}, stride {stride!r}, offset {offset!r}: not integers")
    shape = f"size {tuple(size)}, stride {tuple(stride)}, offset {offset}"
    if offset < 0 or min(size, default=0) < 0:
        raise CorruptCheckpointError(f"{what} has a negative size or offset ({shape})")
    if math.prod(max(n, 1) for n in size) * storage.dtype.itemsize >= MAX_ARRAY_BYTES:
        raise CorruptCheckpointError(f"{what} has size {tuple(size)}: too large for any array")
    if min(stride, default=0) < 0:
        raise CorruptCheckpointError(f"{what} has a negative stride ({shape}); torch never writes one")
    if math.prod(size):
        furthest = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if furthest >= storage.numel:
            raise CorruptCheckpointError(
                f"{what} ({shape}) reaches element {furthest}, outside its storage of {storage.numel} "
                f"{storage.dtype} elements ({storage.numel * storage.dtype.itemsize} bytes): a crafted or corrupt file")
    return offset, tuple(size), tuple(stride)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles tensors over the storages ``storage(key, storage_type, numel, view)`` returns, nothing else.

    With ``build=False`` tensors are checked but not built (a legacy file's storages follow its pickle)."""

    def __init__(self, file: io.BytesIO, where: str, storage: Callable[..., Storage], *, budget: int,
                 pid_fields: int, build: bool = True):
        super().__init__(file)
        self.where, self._storage, self.budget, self.pid_fields, self.build = where, storage, budget, pid_fields, build
        self.allowed = {
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("collections", "Counter"): collections.Counter,  # Lightning .ckpt: MultiStepLR's milestones
        }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        if (module, name) in QUANTIZED:
            raise QuantizedCheckpointError(
                f"{self.where}: holds quantized tensors (torch.{name}: a model quantized with torch.quantization, "
                "such as EdgeFace's *_q.pt, whose Linear layers keep int8 weights in '_packed_params'); jsphere "
                "imports float weights only, and re-saving the file keeps them quantized. Import the float model it "
                "was quantized from, or dequantize it with torch and import that (README, 'Bring your PyTorch "
                "model': a few lines that save each quantized weight's .dequantize())")
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        if module == "torch" and isinstance(name, str) and name.endswith("Storage"):
            raise CorruptCheckpointError(f"{self.where}: storage type torch.{name} is not supported (known: "
                                         f"{', '.join(STORAGE_DTYPES)})")
        raise UnsafeCheckpointError(
            f"{self.where}: refusing to load {module}.{name}: only tensors and plain containers are allowed "
            "(torch weights_only semantics). If you trust this file, re-save its state_dict with torch.")

    def persistent_load(self, pid: Any) -> Storage:
        if isinstance(pid, tuple) and pid and pid[0] == "module":
            raise UnsafeCheckpointError(f"{self.where}: the file saves a whole nn.Module (its class and source), "
                                        "not a state_dict; re-save model.state_dict() with torch")
        if not (isinstance(pid, tuple) and len(pid) == self.pid_fields and pid[0] == "storage"
                and isinstance(pid[1], StorageType) and isinstance(pid[2], str) and _is_int(pid[4])
                and pid[4] >= 0):
            raise UnsafeCheckpointError(f"{self.where}: unexpected persistent id {str(pid)[:200]}")
        return self._storage(pid[2], pid[1], pid[4], pid[5] if self.pid_fields > 5 else None)

    def _rebuild_tensor(self, storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                        metadata=None):
        if not isinstance(storage, Storage):
            raise CorruptCheckpointError(f"{self.where}: a tensor is rebuilt over a {type(storage).__name__}, "
                                         "not a storage")
        offset, size, stride = check_view(storage, storage_offset, size, stride)
        nbytes = math.prod(size) * storage.dtype.itemsize
        if nbytes > self.budget:
            raise CorruptCheckpointError(
                f"{self.where}: a tensor over storage {storage.name} (size {size}, stride {stride}) would take "
                f"{nbytes:,} bytes; only {self.budget:,} are left of what a file's tensors may take (twice the "
                "bytes its storages hold + 64 MiB): a crafted or corrupt file")
        self.budget -= nbytes
        if not self.build:
            return None
        if not math.prod(size):
            return np.zeros(size, storage.dtype)
        base = storage.array()
        item = base.dtype.itemsize
        strides = tuple(s * item if n > 1 else 0 for n, s in zip(size, stride, strict=True))  # any stride for size 1
        view = np.lib.stride_tricks.as_strided(base[offset:], shape=size, strides=strides)
        return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_):
    return data


class PlainUnpickler(pickle.Unpickler):
    """Plain values only (a legacy file's magic number, protocol, system info and storage keys)."""

    def __init__(self, file: io.BytesIO, where: str):
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        raise UnsafeCheckpointError(f"{self.where}: refusing to load {module}.{name} where torch writes plain values")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(f"{self.where}: unexpected persistent id {str(pid)[:200]}")


def checked_load(unpickler: pickle.Unpickler, where: str) -> Any:
    """``unpickler.load()`` with a malformed pickle (any opcode or argument error) as a one-line error."""
    try:
        return unpickler.load()
    except (UnsafeCheckpointError, CorruptCheckpointError, QuantizedCheckpointError):
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            RecursionError, OverflowError, struct.error, UnicodeDecodeError) as e:
        raise CorruptCheckpointError(f"{where}: not a readable checkpoint pickle ({type(e).__name__}: "
                                     f"{str(e)[:200]})") from None
