"""jsphere's packed format: ArrayRecord shards of ``label (int64 LE) | encoded image``, the fastest source.

A packed folder holds ``data-XXXXX-of-YYYYY.array_record`` shards, ``labels.npy`` (one int64 per image) and
``meta.json`` (num_images, num_classes, class_names, source). ``python -m jsphere.data.pack`` writes it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

LABEL = struct.Struct("<q")


def encode_record(image: bytes, label: int) -> bytes:
    return LABEL.pack(int(label)) + image


def decode_record(record: bytes) -> tuple[bytes, int]:
    return record[LABEL.size:], LABEL.unpack_from(record)[0]


class PackedSource:
    def __init__(self, folder: str | os.PathLike):
        from grain.sources import ArrayRecordDataSource

        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.folder} is not a packed jsphere data set (no meta.json); "
                                    "create one with python -m jsphere.data.pack")
        self.meta = json.loads(meta_path.read_text())
        shards = sorted(str(p) for p in self.folder.glob("*.array_record"))
        if not shards:
            raise FileNotFoundError(f"{self.folder}: no .array_record shards")
        self._records = ArrayRecordDataSource(shards)
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
        return f"{self.folder} record {i}"

    def __getitem__(self, i: int) -> tuple[bytes, int]:
        return decode_record(self._records[int(i)])
