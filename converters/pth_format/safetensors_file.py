"""Read a ``.safetensors`` file as hostile input: the header is checked whole before a tensor is made.

The format: an unsigned 64-bit little-endian header length N, N bytes of UTF-8 JSON (``{name: {"dtype": "F32",
"shape": [...], "data_offsets": [begin, end]}, "__metadata__": {str: str}}``, possibly padded with spaces), then
the data. Offsets count from the start of the data; the tensors must tile it exactly (no overlap, no hole, nothing
past its end, as the format's specification requires), each span holding exactly its shape's bytes.
"""

from __future__ import annotations

import collections
import json
import math
import os
import struct
from pathlib import Path

import ml_dtypes
import numpy as np

from converters.pth_format.torch_pickle import MAX_ARRAY_BYTES, CorruptCheckpointError

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's limit
DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": "<u2", "I16": "<i2", "U32": "<u4", "I32": "<i4",
    "U64": "<u8", "I64": "<i8", "F16": "<f2", "BF16": ml_dtypes.bfloat16, "F32": "<f4", "F64": "<f8",
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2,
}


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"key {next(k for k in keys if keys.count(k) > 1)!r} appears twice")
    return dict(pairs)


def read_header(path: Path, size: int) -> tuple[dict, int]:
    """The JSON header (validated as a JSON object) and where the data starts."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CorruptCheckpointError(f"{path}: {size} bytes, too short for a safetensors header length")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES:
            raise CorruptCheckpointError(f"{path}: header of {n:,} bytes, more than the format's "
                                         f"{MAX_HEADER_BYTES:,}: not a safetensors file, or corrupt")
        if 8 + n > size:
            raise CorruptCheckpointError(f"{path}: the header length {n:,} runs past the end of the {size:,}-byte "
                                         "file: truncated or not a safetensors file")
        raw = f.read(n)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptCheckpointError(f"{path}: the header is not UTF-8 (byte {e.start}): not a safetensors file, "
                                     "or corrupt") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as e:  # JSONDecodeError or a duplicate key
        raise CorruptCheckpointError(f"{path}: the header is not valid JSON ({e}); corrupt file?") from None
    if not isinstance(header, dict):
        raise CorruptCheckpointError(f"{path}: the header is a JSON {type(header).__name__}, not an object")
    return header, 8 + n


def _naturals(value: object) -> bool:
    return isinstance(value, list) and all(type(x) is int and x >= 0 for x in value)


def _entry(path: Path, name: str, entry: object) -> tuple[np.dtype, tuple[int, ...], int, int]:
    if not (isinstance(entry, dict) and set(entry) == {"dtype", "shape", "data_offsets"}):
        raise CorruptCheckpointError(f"{path}: tensor {name!r} is {str(entry)[:100]}, not "
                                     "{dtype, shape, data_offsets}")
    if entry["dtype"] not in DTYPES:
        raise CorruptCheckpointError(f"{path}: tensor {name!r} has unknown dtype {str(entry['dtype'])[:40]!r} "
                                     f"(known: {', '.join(DTYPES)})")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not _naturals(shape) or not _naturals(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise CorruptCheckpointError(f"{path}: tensor {name!r} has shape {str(shape)[:100]} and data_offsets "
                                     f"{str(offsets)[:100]}: not non-negative integers, begin <= end")
    dtype = np.dtype(DTYPES[entry["dtype"]])
    if math.prod(max(n, 1) for n in shape) * dtype.itemsize >= MAX_ARRAY_BYTES:
        raise CorruptCheckpointError(f"{path}: tensor {name!r} has shape {str(shape)[:100]}: too large for any array")
    need = math.prod(shape) * dtype.itemsize
    if need != offsets[1] - offsets[0]:
        raise CorruptCheckpointError(f"{path}: tensor {name!r} of shape {tuple(shape)} and dtype {entry['dtype']} "
                                     f"needs {need:,} bytes, its data_offsets {offsets} span "
                                     f"{offsets[1] - offsets[0]:,}")
    return dtype, tuple(shape), offsets[0], offsets[1]


def load(path: str | os.PathLike) -> collections.OrderedDict:
    """The tensors of a ``.safetensors`` file as numpy arrays, in the order of their data."""
    path = Path(path)
    size = path.stat().st_size
    header, start = read_header(path, size)
    metadata = header.pop("__metadata__", {})
    if not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise CorruptCheckpointError(f"{path}: __metadata__ is {str(metadata)[:100]}, not a map of strings")
    entries = sorted(((name, *_entry(path, name, e)) for name, e in header.items()), key=lambda t: (t[3], t[4]))
    data_size, end = size - start, 0
    for name, _, _, begin, stop in entries:
        if begin != end:
            fault = "overlaps the tensor before it" if begin < end else f"leaves a hole at bytes {end:,}-{begin:,}"
            raise CorruptCheckpointError(f"{path}: tensor {name!r} (data_offsets [{begin}, {stop}]) {fault}; "
                                         "the tensors must tile the data exactly")
        if stop > data_size:
            raise CorruptCheckpointError(f"{path}: tensor {name!r} (data_offsets [{begin}, {stop}]) ends past the "
                                         f"{data_size:,} bytes of data: truncated or corrupt")
        end = stop
    if end != data_size:
        raise CorruptCheckpointError(f"{path}: the tensors cover {end:,} of the {data_size:,} data bytes; the rest "
                                     "is unaccounted for (corrupt or not a safetensors file)")
    with open(path, "rb") as f:
        f.seek(start)
        data = bytearray(f.read(data_size))
    if len(data) != data_size:
        raise CorruptCheckpointError(f"{path}: the file shrank while being read")
    out = collections.OrderedDict()
    for name, dtype, shape, begin, _ in entries:
        if dtype == np.bool_:  # any non-zero byte is True
            out[name] = np.frombuffer(data, np.uint8, math.prod(shape), begin).reshape(shape) != 0
            continue
        array = np.frombuffer(data, dtype, math.prod(shape), begin).reshape(shape)
        out[name] = array.copy() if begin % dtype.itemsize else array
    return out
