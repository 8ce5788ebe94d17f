"""jsphere's packed format: ArrayRecord shards of ``label (int64 LE) | encoded image``, the fastest source.

A packed folder holds ``data-XXXXX-of-YYYYY.array_record`` shards, ``labels.npy`` (one int64 per image) and
``meta.json`` (num_images, num_classes, class_names, source). ``python -m jsphere.data.pack`` writes it.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import struct
from pathlib import Path

import numpy as np
from array_record.python.array_record_module import ArrayRecordReader

from jsphere import errors
from jsphere.data.decode import CorruptImageError

LABEL = struct.Struct("<q")


def encode_record(image: bytes, label: int) -> bytes:
    return LABEL.pack(int(label)) + image


def decode_record(record: bytes) -> tuple[bytes, int]:
    return record[LABEL.size:], LABEL.unpack_from(record)[0]


class CorruptRecordError(CorruptImageError):
    """A record a shard cannot give back (a corrupt chunk): skipped like an unreadable image."""


def _reason(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text[:300] if text else f"{type(error).__name__}, no detail from the reader"


def count_records(shard: str, folder: Path) -> int:
    """The records of one shard, or one line naming it when the reader cannot open it (truncated, corrupt)."""
    try:
        reader = ArrayRecordReader(shard)
        try:
            return int(reader.num_records())
        finally:
            reader.close()
    except (RuntimeError, ValueError) as e:  # Riegeli reports a damaged file as RuntimeError
        raise errors.UserError(f"{shard}: unreadable ArrayRecord shard ({_reason(e)}); truncated or corrupt: pack the "
                            f"images of {folder} again with python -m jsphere.data.pack") from None


class PackedSource:
    def __init__(self, folder: str | os.PathLike):
        # Grain (and with it JAX) takes 1.5-2 s to import; only reading a packed folder needs it, not writing one
        # (jsphere.data.pack) nor the commands that import this package's list and folder readers.
        from grain.sources import ArrayRecordDataSource

        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.folder} is not a packed jsphere data set (no meta.json); "
                                    "create one with python -m jsphere.data.pack")
        self.meta = json.loads(meta_path.read_text())
        self.shards = sorted(str(p) for p in self.folder.glob("*.array_record"))
        if not self.shards:
            raise FileNotFoundError(f"{self.folder}: no .array_record shards")
        counts = [count_records(shard, self.folder) for shard in self.shards]
        self._ends = list(itertools.accumulate(counts))
        # the counted ranges (``path[start:end]``), so the data source does not open every shard again
        self._records = ArrayRecordDataSource([f"{s}[0:{n}]" for s, n in zip(self.shards, counts, strict=True)])
        self.labels = np.load(self.folder / "labels.npy")
        if len(self._records) != len(self.labels) or len(self.labels) != self.meta["num_images"]:
            raise ValueError(f"{self.folder}: {len(self._records)} records, {len(self.labels)} labels and "
                             f"meta num_images {self.meta['num_images']} disagree (incomplete pack?)")

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self, i: int) -> str:
        shard = bisect.bisect_right(self._ends, i)
        local = i - (self._ends[shard - 1] if shard else 0)
        return f"{self.shards[shard]} record {local} (sample {i} of {self.folder})"

    def __getitem__(self, i: int) -> tuple[bytes, int]:
        try:
            record = self._records[int(i)]
        except RuntimeError as e:  # Riegeli: a chunk that fails its hash or ends early
            raise CorruptRecordError(f"{self.describe(int(i))}: unreadable ({_reason(e)}); the shard is corrupt: "
                                     "pack the data set again") from None
        if len(record) < LABEL.size:
            raise CorruptRecordError(f"{self.describe(int(i))}: {len(record)} bytes, too short for a label and an "
                                     "image; the shard is corrupt: pack the data set again")
        return decode_record(record)
