"""Read PyTorch ``.pth`` checkpoints without torch, safely; ``.safetensors`` too.

A ``.pth`` written by ``torch.save`` (torch >= 1.6) is a zip archive: ``<name>/data.pkl`` (a pickle whose
tensors are ``torch._utils._rebuild_tensor_v2`` calls over persistent storage ids) and raw little-endian
storages ``<name>/data/<key>``. A legacy file (``_use_new_zipfile_serialization=False``, torch < 1.6) is a
sequence of pickles (magic number, protocol 1001, system info, the object, the storage keys) followed by each
storage as an int64 element count and its bytes. Both are unpickled by :mod:`converters.pth_format.torch_pickle` (only
tensors and plain containers; every view checked against its storage before a byte is read). Tensors come back
as numpy arrays (strides and offsets honoured; bfloat16 via ml_dtypes).

Sizes are checked before anything is inflated or allocated: a zip member must inflate to exactly the bytes its
storage declares, the archive at most :data:`MAX_INFLATION` times its own size (plus 64 MiB; torch stores its
members uncompressed), and only stored or deflated members are read; a legacy storage must lie inside the file.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from converters.pth_format import safetensors_file
from converters.pth_format.torch_pickle import (
    SLACK_BYTES,
    CorruptCheckpointError,
    PlainUnpickler,
    RestrictedUnpickler,
    Storage,
    StorageType,
    UnsafeCheckpointError,
    checked_load,
)

__all__ = ["CorruptCheckpointError", "UnsafeCheckpointError", "load"]

MAX_INFLATION = 32
MAX_PICKLE_BYTES = 256 << 20
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # Keras .h5 files (HDF5 superblock at offset 0)
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, struct.error, ValueError,
              NotImplementedError, UnicodeDecodeError)


def _check_archive(archive: zipfile.ZipFile, where: str, size: int) -> dict[str, zipfile.ZipInfo]:
    """The members by name, once their declared sizes fit the file: read nothing before this."""
    infos = {info.filename: info for info in archive.infolist()}
    for info in infos.values():
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CorruptCheckpointError(f"{where}: member {info.filename} uses compression method "
                                         f"{info.compress_type}; torch stores members uncompressed")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise CorruptCheckpointError(f"{where}: stored (uncompressed) member {info.filename} declares "
                                         f"{info.file_size:,} bytes but holds {info.compress_size:,}: a crafted or "
                                         "corrupt file")
        if info.header_offset + info.compress_size > size:
            raise CorruptCheckpointError(f"{where}: member {info.filename} claims {info.compress_size:,} bytes "
                                         f"past the end of the {size:,}-byte file: truncated or corrupt")
    inflated = sum(info.file_size for info in infos.values())
    if inflated > MAX_INFLATION * size + SLACK_BYTES:
        largest = max(infos.values(), key=lambda info: info.file_size)
        raise CorruptCheckpointError(
            f"{where}: its members inflate to {inflated:,} bytes ({largest.filename}: {largest.file_size:,} from "
            f"{largest.compress_size:,}), more than {MAX_INFLATION}x the {size:,}-byte file + 64 MiB: a "
            "compression bomb? torch stores checkpoint members uncompressed")
    return infos


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """The member's bytes; ``read(n)`` inflates at most ``n`` bytes whatever the stream holds."""
    try:
        with archive.open(info) as f:
            data = f.read(info.file_size) if info.file_size else b""
    except ZIP_ERRORS as e:
        raise CorruptCheckpointError(f"{where}: archive member {info.filename} is corrupt ({e})") from None
    if len(data) != info.file_size:
        raise CorruptCheckpointError(f"{where}: archive member {info.filename} holds {len(data):,} bytes, its "
                                     f"header says {info.file_size:,}: truncated or corrupt")
    return data


def _load_zip(path: Path) -> Any:
    where, size = str(path), path.stat().st_size
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as e:
        raise CorruptCheckpointError(f"{path}: not a readable .pth zip archive ({e}); truncated or corrupt "
                                     "download?") from None
    with archive:
        infos = _check_archive(archive, where, size)
        pkl = [name for name in infos if name.endswith("data.pkl")]
        if not pkl:
            raise CorruptCheckpointError(f"{path}: zip archive without data.pkl: not a torch checkpoint")
        prefix = pkl[0][: -len("data.pkl")]
        if infos[pkl[0]].file_size > MAX_PICKLE_BYTES:
            raise CorruptCheckpointError(f"{path}: {pkl[0]} declares {infos[pkl[0]].file_size:,} bytes, more than "
                                         f"a checkpoint pickle's {MAX_PICKLE_BYTES:,}")
        byteorder = infos.get(f"{prefix}byteorder")
        if byteorder is not None and _read_member(archive, byteorder, where)[:16].strip() != b"little":
            raise CorruptCheckpointError(f"{path}: big-endian checkpoints are not supported")
        storages: dict[str, Storage] = {}

        def storage(key: str, storage_type: StorageType, numel: int, _view: None) -> Storage:
            name, dtype = f"{prefix}data/{key}", storage_type.dtype
            if key in storages:
                return _same(storages[key], dtype, numel)
            info = infos.get(name)
            if info is None:
                raise CorruptCheckpointError(f"{path}: storage {name} is missing from the archive")
            if info.file_size != numel * dtype.itemsize:
                raise CorruptCheckpointError(
                    f"{path}: storage {name} declares {numel:,} {dtype} elements ({numel * dtype.itemsize:,} bytes) "
                    f"but its archive member inflates to {info.file_size:,} bytes: a crafted or corrupt file")
            storages[key] = Storage(where, name, dtype, numel, lambda: _read_member(archive, info, where))
            return storages[key]

        stored = sum(info.file_size for name, info in infos.items() if name.startswith(f"{prefix}data/"))
        unpickler = RestrictedUnpickler(io.BytesIO(_read_member(archive, infos[pkl[0]], where)), where, storage,
                                        budget=2 * stored + SLACK_BYTES, pid_fields=5)
        return checked_load(unpickler, where)


def _same(storage: Storage, dtype, numel: int) -> Storage:
    if storage.dtype != dtype or storage.numel != numel:
        raise CorruptCheckpointError(f"{storage.where}: storage {storage.name} is declared as {storage.numel:,} "
                                     f"{storage.dtype} and as {numel:,} {dtype} elements")
    return storage


class _LegacyStorages:
    """A legacy file's storages: declared while its pickle is read, located after it (:meth:`locate`)."""

    def __init__(self, where: str, data: bytes):
        self.where, self.data = where, memoryview(data)
        self.roots: dict[str, Storage] = {}
        self.views: dict[str, Storage] = {}
        self.offsets: dict[str, int] = {}

    def __call__(self, key: str, storage_type: StorageType, numel: int, view: Any) -> Storage:
        dtype = storage_type.dtype
        if key in self.roots:
            root = _same(self.roots[key], dtype, numel)
        else:
            root = self.roots[key] = Storage(self.where, key, dtype, numel, lambda: self._bytes(key))
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and isinstance(view[0], str)
                and all(type(v) is int and v >= 0 for v in view[1:]) and view[1] + view[2] <= numel):
            raise CorruptCheckpointError(f"{self.where}: storage {key} of {numel:,} elements has the view "
                                         f"{str(view)[:100]}, outside it")
        view_key, start, count = view
        if view_key not in self.views:
            item = dtype.itemsize
            self.views[view_key] = Storage(self.where, f"{key}[{start}:{start + count}]", dtype, count,
                                           lambda: self._bytes(key)[start * item:(start + count) * item])
        return _same(self.views[view_key], dtype, count)

    def _bytes(self, key: str) -> memoryview:
        root = self.roots[key]
        return self.data[self.offsets[key]:self.offsets[key] + root.numel * root.dtype.itemsize]

    def locate(self, keys: Any, start: int) -> None:
        """Find each storage's bytes after the storage-key list: an int64 count (its declared elements), then
        the bytes, all inside the file."""
        if (not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) or len(set(keys)) != len(keys)
                or set(keys) != set(self.roots)):
            raise CorruptCheckpointError(f"{self.where}: the storage keys {str(keys)[:100]} are not the "
                                         f"{len(self.roots)} storages the pickle declares")
        pos, end = start, len(self.data)
        for key in keys:
            root = self.roots[key]
            if pos + 8 > end:
                raise CorruptCheckpointError(f"{self.where}: the file ends before storage {key}: truncated")
            (count,) = struct.unpack_from("<q", self.data, pos)
            nbytes = root.numel * root.dtype.itemsize
            if count != root.numel:
                raise CorruptCheckpointError(f"{self.where}: storage {key} holds {count:,} elements, the pickle "
                                             f"declares {root.numel:,}")
            if pos + 8 + nbytes > end:
                raise CorruptCheckpointError(f"{self.where}: storage {key} declares {nbytes:,} bytes, only "
                                             f"{end - pos - 8:,} remain in the file: truncated or crafted")
            self.offsets[key] = pos + 8
            pos += 8 + nbytes


def _load_legacy(path: Path) -> Any:
    where, data = str(path), path.read_bytes()
    if data[:1] != b"\x80":  # every pickle of protocol >= 2 starts with PROTO
        raise CorruptCheckpointError(f"{path}: not a torch checkpoint (neither a zip archive nor a pickle); is "
                                     "it the file you meant?")
    f = io.BytesIO(data)
    if checked_load(PlainUnpickler(f, where), where) != LEGACY_MAGIC:
        raise CorruptCheckpointError(f"{path}: a pickle without torch's magic number: not a torch checkpoint")
    protocol = checked_load(PlainUnpickler(f, where), where)
    if protocol != LEGACY_PROTOCOL:
        raise CorruptCheckpointError(f"{path}: legacy torch protocol {str(protocol)[:40]}, not {LEGACY_PROTOCOL}")
    info = checked_load(PlainUnpickler(f, where), where)
    if not isinstance(info, dict) or info.get("little_endian") is not True:
        raise CorruptCheckpointError(f"{path}: big-endian (or unmarked) checkpoints are not supported")
    start, budget = f.tell(), 2 * len(data) + SLACK_BYTES
    storages = _LegacyStorages(where, data)
    # first pass: every view checked against the declared storages, nothing built; then the storages located
    checked_load(RestrictedUnpickler(f, where, storages, budget=budget, pid_fields=6, build=False), where)
    storages.locate(checked_load(PlainUnpickler(f, where), where), f.tell())
    f.seek(start)
    return checked_load(RestrictedUnpickler(f, where, storages, budget=budget, pid_fields=6), where)


def load(path: str | os.PathLike) -> Any:
    """The object stored in a ``.pth`` (tensors as numpy arrays) or a ``.safetensors`` file (a flat dict)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".safetensors":
        return safetensors_file.load(path)
    with open(path, "rb") as f:
        magic = f.read(len(HDF5_SIGNATURE))
    if magic == HDF5_SIGNATURE:
        raise ValueError(f"{path}: an HDF5 file (a Keras .h5 model, as GhostFaceNets releases them): jsphere reads "
                         "PyTorch (.pth, .pt, .ckpt, .safetensors), ONNX and MXNet files, not Keras models, and has no "
                         "GhostFaceNet architecture")
    if magic[:2] == b"PK":
        return _load_zip(path)
    return _load_legacy(path)
