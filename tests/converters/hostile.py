"""Hostile PyTorch checkpoints crafted byte by byte: the layout ``torch.save`` writes, with chosen lies.

``torch.save`` pickles (protocol 2) a tensor as ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size,
stride, requires_grad, OrderedDict())`` with the storage a persistent id ``('storage', torch.FloatStorage, key,
'cpu', numel)`` (legacy files add a view field, None). A zip file holds ``<name>/data.pkl``,
``<name>/byteorder`` and one raw little-endian member ``<name>/data/<key>`` per storage; a legacy file is four
pickles (magic number, protocol 1001, sys info, the object) and the sorted storage keys, then per key an int64
element count and the raw bytes. ``pickle_tensors`` writes the opcodes itself, so any size, stride or offset can be
declared; ``write_zip`` writes the archive records itself, so any inflated size can be declared.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


@dataclass
class View:
    """One tensor: ``size``/``stride``/``offset`` (in elements) over storage ``key`` of ``numel`` elements."""

    key: str
    numel: int
    size: tuple
    stride: tuple
    offset: int = 0
    storage: str = "FloatStorage"


def _int(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1: any size, any sign


def _str(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def pickle_tensors(views: dict[str, View], *, legacy: bool = False) -> bytes:
    """A protocol-2 pickle of ``{name: tensor}`` exactly as torch writes a state_dict's tensors."""
    out = [b"\x80\x02}("]  # PROTO 2, EMPTY_DICT, MARK
    for name, v in views.items():
        pid = [_str("storage"), _global("torch", v.storage), _str(v.key), _str("cpu"), _int(v.numel)]
        if legacy:
            pid.append(b"N")
        args = [_tuple(pid) + b"Q", _int(v.offset), _tuple([_int(s) for s in v.size]),
                _tuple([_int(s) for s in v.stride]), b"\x89", _global("collections", "OrderedDict") + b")R"]
        out.append(_str(name) + _global("torch._utils", "_rebuild_tensor_v2") + _tuple(args) + b"R")
    out.append(b"u.")  # SETITEMS, STOP
    return b"".join(out)


@dataclass
class Member:
    """A zip member as its records declare it: ``payload`` stored (method 0) or deflated (method 8)."""

    name: str
    payload: bytes
    method: int = 0
    file_size: int | None = None  # the inflated size the records declare (default: the real one)
    crc: int | None = None


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zeros_bomb(inflated: int) -> tuple[bytes, int]:
    """A raw deflate stream that inflates to ``inflated`` zero bytes (a multiple of 1 MiB), about 1/1000 of
    its size, built from one compressed MiB (a full flush makes every MiB compress to the same bytes); its size."""
    mib = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    c.compress(bytes(mib))
    c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(mib)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * (inflated // mib) + c.flush(), inflated


def write_zip(path: Path, members: list[Member]) -> Path:
    """A zip archive written record by record (local headers, central directory, end record; no zip64)."""
    local, central = bytearray(), bytearray()
    for m in members:
        name = m.name.encode()
        # a deflated member given a declared size carries its own deflate stream (a bomb); others are deflated here
        data = deflate(m.payload) if m.method == 8 and m.file_size is None else m.payload
        size = len(m.payload) if m.file_size is None else m.file_size
        crc = zlib.crc32(m.payload) if m.crc is None else m.crc
        fields = struct.pack("<HHHHHIIIHH", 20, 0, m.method, 0, 0x21, crc, len(data), size, len(name), 0)
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields + struct.pack("<HHHII", 0, 0, 0, 0, len(local))
                    + name)
        local += b"PK\x03\x04" + fields + name + data
    count = len(members)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def zip_checkpoint(path: Path, views: dict[str, View], storages: dict[str, bytes | Member]) -> Path:
    """A torch zip checkpoint ``archive/...`` holding ``views`` over ``storages`` (raw bytes, stored, or crafted
    members whose name is filled in)."""
    members = [Member("archive/data.pkl", pickle_tensors(views)), Member("archive/byteorder", b"little")]
    for key, storage in storages.items():
        member = storage if isinstance(storage, Member) else Member("", storage)
        member.name = f"archive/data/{key}"
        members.append(member)
    members.append(Member("archive/version", b"3\n"))
    return write_zip(path, members)


LEGACY_PARTS = ("magic", "protocol", "sys_info", "object", "keys")


def legacy_checkpoint(path: Path, views: dict[str, View], storages: dict[str, bytes],
                      counts: dict[str, int] | None = None, replace: dict[str, bytes] | None = None) -> Path:
    """A legacy (``_use_new_zipfile_serialization=False``) checkpoint; ``counts`` overrides the element count
    written before a storage's bytes (default: its bytes / 4), ``replace`` any of the pickles (``LEGACY_PARTS``)."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = dict(zip(LEGACY_PARTS, [pickle.dumps(LEGACY_MAGIC, protocol=2), pickle.dumps(1001, protocol=2),
                                    pickle.dumps(sys_info, protocol=2), pickle_tensors(views, legacy=True),
                                    pickle.dumps(sorted(storages), protocol=2)], strict=True))
    parts.update(replace or {})
    data = [parts[name] for name in LEGACY_PARTS]
    for key in sorted(storages):
        count = (counts or {}).get(key, len(storages[key]) // 4)
        data.append(struct.pack("<q", count) + storages[key])
    path.write_bytes(b"".join(data))
    return path
