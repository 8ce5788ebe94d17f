"""OpenSphere pair lists for verification: lines ``label path0 path1`` (1 = same identity, 0 = different).

Unique image paths, sorted lexicographically, define the image indices (OpenSphere's PairDataset).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from jsphere.data.sources import ListFormatError


@dataclasses.dataclass
class PairList:
    paths: list[str]  # unique image paths (absolute), sorted
    pairs: np.ndarray  # int [P, 2] indices into ``paths``
    labels: np.ndarray  # bool [P]
    source: str


def read_pair_list(path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                   check_files: bool = True) -> PairList:
    """Parse a pair list; paths are relative to ``data_dir`` (default: the list's folder)."""
    path = Path(path)
    root = Path(data_dir) if data_dir else path.parent
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise ListFormatError(f"{path}:{number}: expected 'label path0 path1' with label 0 or 1, got {line!r}")
            rows.append((fields[0] == "1", fields[1], fields[2], number))
    if not rows:
        raise ListFormatError(f"{path}: the pair list has no entries")
    unique = sorted({p for _, a, b, _ in rows for p in (a, b)})
    index = {p: i for i, p in enumerate(unique)}
    if check_files:
        first_line = {}
        for _, a, b, number in rows:
            first_line.setdefault(a, number)
            first_line.setdefault(b, number)
        for rel in unique:
            if not (root / rel).is_file():
                raise FileNotFoundError(f"{path}:{first_line[rel]}: image {root / rel} does not exist")
    return PairList(
        paths=[str(root / p) for p in unique],
        pairs=np.asarray([(index[a], index[b]) for _, a, b, _ in rows], np.int64),
        labels=np.asarray([label for label, _, _, _ in rows], bool),
        source=str(path),
    )
