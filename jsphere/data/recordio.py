"""insightface / MXNet RecordIO (``train.rec`` + ``train.idx``) read in pure Python, no mxnet.

Byte layout (dmlc-core): each record is ``magic 0xCED7230A (u32 LE) | lrec (u32 LE: cflag = lrec >> 29,
length = lrec & (2^29 - 1)) | payload | zero padding to 4 bytes``. ``cflag`` 0 is a whole record; 1/2/3 are
the first/middle/last parts of a record the writer split where the payload contained the magic word — the
parts are joined with the magic re-inserted between them. The payload of an image record is the ``IRHeader``
(``struct 'IfQQ'``: flag, label, id, id2; 24 bytes) then ``flag`` float32 labels when flag > 0 (the label is
then the first of them), then the encoded image.

insightface convention: record 0 is a meta record whose labels ``[N + 1, N + 1 + K]`` give the image keys
``1 .. N`` (identity records follow). Without a meta record (flag 0), every key of the ``.idx`` is an image.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

MAGIC = 0xCED7230A
HEADER = struct.Struct("<IfQQ")
LENGTH_MASK = (1 << 29) - 1


class RecordIOError(ValueError):
    """A malformed ``.rec``/``.idx`` (the message names the file, key and offset)."""


def read_index(path: str | os.PathLike) -> dict[int, int]:
    """``key<TAB>offset`` lines -> {key: offset}."""
    index = {}
    with open(path, encoding="ascii") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or not all(x.isdigit() for x in fields):
                raise RecordIOError(f"{path}:{number}: expected 'key<TAB>offset', got {line.strip()!r}")
            index[int(fields[0])] = int(fields[1])
    if not index:
        raise RecordIOError(f"{path}: the index is empty")
    return index


def read_record(f, offset: int, *, where: str) -> bytes:
    """The (joined) payload of the record at ``offset`` of the open ``.rec`` file ``f``."""
    f.seek(offset)
    parts = []
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise RecordIOError(f"{where}: truncated record header at offset {f.tell() - len(head)}")
        magic, lrec = struct.unpack("<II", head)
        if magic != MAGIC:
            raise RecordIOError(f"{where}: bad magic 0x{magic:08X} at offset {f.tell() - 8} (expected 0x{MAGIC:08X}); "
                                "not a RecordIO file, or a wrong .idx")
        cflag, length = lrec >> 29, lrec & LENGTH_MASK
        payload = f.read(length)
        if len(payload) < length:
            raise RecordIOError(f"{where}: truncated record (needs {length} bytes, the file has {len(payload)})")
        f.read((4 - length % 4) % 4)
        parts.append(payload)
        if cflag in (0, 3):
            break
        if cflag not in (1, 2):
            raise RecordIOError(f"{where}: invalid continuation flag {cflag}")
    return struct.pack("<I", MAGIC).join(parts)


def unpack_image_record(payload: bytes, *, where: str) -> tuple[np.ndarray, bytes]:
    """(labels float32 [>=1], encoded image) of an MXNet image record."""
    if len(payload) < HEADER.size:
        raise RecordIOError(f"{where}: record of {len(payload)} bytes is shorter than the 24-byte IRHeader")
    flag, label, _, _ = HEADER.unpack_from(payload)
    if flag > 0:
        end = HEADER.size + 4 * flag
        if len(payload) < end:
            raise RecordIOError(f"{where}: header announces {flag} labels but the record is too short")
        return np.frombuffer(payload[HEADER.size:end], np.float32).copy(), payload[end:]
    return np.asarray([label], np.float32), payload[HEADER.size:]


class RecordIOSource:
    """Random access to the images of an insightface ``train.rec`` (given the file or its folder)."""

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        self.rec = path / "train.rec" if path.is_dir() else path
        self.idx = self.rec.with_suffix(".idx")
        for p in (self.rec, self.idx):
            if not p.exists():
                raise FileNotFoundError(f"RecordIO source: {p} does not exist")
        self.offsets = read_index(self.idx)
        self._file = None
        labels0, _ = unpack_image_record(self._read(min(self.offsets)), where=self._where(min(self.offsets)))
        if min(self.offsets) == 0 and len(labels0) >= 2 and labels0[0] > 1:  # insightface meta record
            first, last = int(labels0[0]), int(labels0[1])
            self.keys = np.arange(1, first)
            self._identity_count = last - first
        else:
            self.keys = np.asarray(sorted(self.offsets))
            self._identity_count = None
        missing = set(self.keys.tolist()) - self.offsets.keys()
        if missing:
            raise RecordIOError(f"{self.idx}: image key {min(missing)} announced by the meta record is not indexed")
        self._labels = None

    def __getstate__(self):
        return {**self.__dict__, "_file": None}

    def _where(self, key: int) -> str:
        return f"{self.rec} key {key}"

    def _read(self, key: int) -> bytes:
        if self._file is None:
            self._file = open(self.rec, "rb")  # noqa: SIM115 (kept open for random access)
        if key not in self.offsets:
            raise RecordIOError(f"{self.idx}: key {key} is not indexed")
        return read_record(self._file, self.offsets[key], where=self._where(key))

    def __len__(self) -> int:
        return len(self.keys)

    def describe(self, i: int) -> str:
        return self._where(int(self.keys[i]))

    def __getitem__(self, i: int) -> tuple[bytes, int]:
        key = int(self.keys[i])
        labels, image = unpack_image_record(self._read(key), where=self._where(key))
        return image, int(labels[0])

    @property
    def labels(self) -> np.ndarray:
        """Every image's label (read from the record headers once)."""
        if self._labels is None:
            self._labels = np.asarray([self[i][1] for i in range(len(self))], np.int64)
        return self._labels

    @property
    def num_classes(self) -> int:
        prop = self.rec.parent / "property"
        if prop.exists():
            return int(prop.read_text().split(",")[0])
        if self._identity_count:
            return self._identity_count
        return int(self.labels.max()) + 1

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(self.num_classes)]
