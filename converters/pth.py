"""Read PyTorch ``.pth`` checkpoints without torch, safely; ``.safetensors`` too.

A ``.pth`` written by ``torch.save`` (torch >= 1.6) is a zip archive: ``<name>/data.pkl`` (a pickle whose
tensors are ``torch._utils._rebuild_tensor_v2`` calls over persistent storage ids) and raw little-endian
storages ``<name>/data/<key>``. ``load`` unpickles ``data.pkl`` with a restricted unpickler that admits only
tensor rebuilding, the standard storage types and plain containers (torch's ``weights_only=True``
semantics): any other global is refused before anything runs. Tensors come back as numpy arrays (strides and
offsets honoured; bfloat16 via ml_dtypes). Legacy non-zip files are read with ``torch.load(weights_only=True)``
when torch is installed.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle references something other than tensors and plain containers."""


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    size, stride = tuple(size), tuple(stride)
    if not size:
        return storage[storage_offset].copy()
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                           strides=tuple(s * item for s in stride))
    return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *_):
    return data


ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, where: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.where = archive, prefix, where
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        raise UnsafeCheckpointError(
            f"{self.where}: refusing to load {module}.{name}: only tensors and plain containers are allowed "
            "(torch weights_only semantics). If you trust this file, re-save its state_dict with torch.")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"{self.where}: unexpected persistent id {pid!r}")
        _, storage_type, key, _location, _numel = pid[:5]
        if key not in self._storages:
            member = f"{self.prefix}data/{key}"
            try:
                raw = self.archive.read(member)
            except KeyError:
                raise ValueError(f"{self.where}: storage {member} is missing from the archive") from None
            self._storages[key] = np.frombuffer(raw, storage_type.dtype)
        return self._storages[key]


def _load_zip(path: Path) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not a readable .pth zip archive ({e}); truncated or corrupt download?") from None
    with archive:
        pkl = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if not pkl:
            raise ValueError(f"{path}: zip archive without data.pkl: not a torch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise ValueError(f"{path}: big-endian checkpoints are not supported")
        try:
            return _RestrictedUnpickler(archive.read(pkl[0]), archive, prefix, str(path)).load()
        except (zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt archive member ({e})") from None


def _load_legacy(path: Path) -> Any:
    with open(path, "rb") as f:
        if f.read(1) != b"\x80":  # every pickle of protocol >= 2 starts with PROTO
            raise ValueError(f"{path}: not a torch checkpoint (neither a zip archive nor a pickle); is it the "
                             "file you meant?")
    try:
        import torch
    except ImportError:
        raise ValueError(f"{path} is a legacy (pre-1.6, non-zip) torch checkpoint; reading it needs torch: "
                         "pip install 'jsphere[torch]', or re-save it with a recent torch") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or others for refused or broken pickles
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        reason = next((line for line in lines if line.startswith(("Unsupported", "Trying to load"))),
                      lines[0] if lines else type(e).__name__)
        raise UnsafeCheckpointError(f"{path}: torch.load(weights_only=True) refused it ({reason}); only tensors and "
                                    "plain containers are loaded") from None
    return _to_numpy(obj)


def _to_numpy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _to_numpy(v)) for k, v in obj.items())
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):
        import torch

        t = obj.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.float().numpy().astype(ml_dtypes.bfloat16)
        return t.numpy()
    return obj


def load(path: str | os.PathLike) -> Any:
    """The object stored in a ``.pth`` (tensors as numpy arrays) or a ``.safetensors`` file (a flat dict)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return collections.OrderedDict(load_file(str(path)))
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"PK":
        return _load_zip(path)
    return _load_legacy(path)
