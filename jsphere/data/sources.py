"""Random-access training sources: ``len(src)``, ``src[i] -> (encoded image bytes, int label)``.

Every source also has ``num_classes``, ``class_names``, ``labels`` (an int array, one per sample) and
``describe(i)`` (what to name in an error about sample i). ``open_source`` picks the format.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FORMATS = ("auto", "list_v1", "list_v2", "folder", "recordio", "arrayrecord", "tfds")


class ListFormatError(ValueError):
    """A malformed line in a list file (the message names the file and line)."""


class FileSource:
    """Images stored as files; labels from identity names sorted lexicographically (OpenSphere's rule)."""

    def __init__(self, paths: Sequence[str], identities: Sequence[str], origins: Sequence[str]):
        self.class_names = sorted(set(identities))
        index = {name: i for i, name in enumerate(self.class_names)}
        self.paths = list(paths)
        self.labels = np.asarray([index[name] for name in identities], np.int64)
        self._origins = list(origins)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.paths)

    def describe(self, i: int) -> str:
        return f"{self.paths[i]} ({self._origins[i]})"

    def __getitem__(self, i: int) -> tuple[bytes, int]:
        try:
            with open(self.paths[i], "rb") as f:
                return f.read(), int(self.labels[i])
        except OSError as e:
            raise FileNotFoundError(f"cannot read {self.describe(i)}: {e.strerror}") from None


def read_list(path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
              version: str = "auto") -> FileSource:
    """An OpenSphere list file: v1 lines ``relative/path identity``, v2 lines ``relative/path``
    (identity = parent folder). Paths are relative to ``data_dir`` (default: the list's folder)."""
    path = Path(path)
    root = Path(data_dir) if data_dir else path.parent
    paths, identities, origins = [], [], []
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            fields = line.split()
            if version == "auto":
                version = "v1" if len(fields) == 2 else "v2" if len(fields) == 1 else "bad"
            expected = 2 if version == "v1" else 1
            if len(fields) != expected:
                form = "'relative/path identity'" if version == "v1" else "'relative/path'"
                raise ListFormatError(f"{path}:{number}: expected {form} (list format {version}), got {line!r}")
            rel = fields[0]
            paths.append(str(root / rel))
            identities.append(fields[1] if version == "v1" else os.path.dirname(rel))
            origins.append(f"{path}:{number}")
    if not paths:
        raise ListFormatError(f"{path}: the list file has no entries")
    if version == "v2" and any(not name for name in identities):
        bad = identities.index("")
        raise ListFormatError(f"{origins[bad]}: v2 list paths need an identity folder, got {paths[bad]!r}")
    return FileSource(paths, identities, origins)


def read_folder(root: str | os.PathLike) -> FileSource:
    """An image folder ``root/<identity>/<image>`` (identity folders sorted, images sorted)."""
    root = Path(root)
    paths, identities, origins = [], [], []
    identity_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if not identity_dirs:
        raise FileNotFoundError(f"{root}: no identity folders (expected {root}/<identity>/<image>)")
    for identity in identity_dirs:
        images = sorted(p for p in identity.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FileNotFoundError(f"{identity}: empty identity folder (no {'/'.join(IMAGE_SUFFIXES)} images)")
        for image in images:
            paths.append(str(image))
            identities.append(identity.name)
            origins.append(f"identity {identity.name}")
    return FileSource(paths, identities, origins)


def detect_format(spec: str) -> str:
    if spec.startswith("tfds:"):
        return "tfds"
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"data source {spec!r} does not exist")
    if path.suffix == ".rec" or (path.is_dir() and (path / "train.rec").exists()):
        return "recordio"
    if path.is_dir() and any(path.glob("*.array_record*")):
        return "arrayrecord"
    if path.is_dir():
        return "folder"
    return "list_v1" if _first_fields(path) == 2 else "list_v2"


def _first_fields(path: Path) -> int:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                return len(line.split())
    raise ListFormatError(f"{path}: the list file is empty")


def open_source(spec: str | os.PathLike, data_dir: str | os.PathLike | None = None, fmt: str = "auto"):
    """Open a training source: list file (v1/v2), image folder, ``train.rec`` (or its folder), packed
    ArrayRecord folder, or ``tfds:<name>[:split]``."""
    spec = str(spec)
    if fmt not in FORMATS:
        raise ValueError(f"data format {fmt!r} is not one of {FORMATS}")
    if fmt == "auto":
        fmt = detect_format(spec)
    if fmt in ("list_v1", "list_v2"):
        return read_list(spec, data_dir, version=fmt[-2:])
    if fmt == "folder":
        return read_folder(spec)
    if fmt == "recordio":
        from jsphere.data.recordio import RecordIOSource

        return RecordIOSource(spec)
    if fmt == "arrayrecord":
        from jsphere.data.arrayrecord import PackedSource

        return PackedSource(spec)
    from jsphere.data.tfds_source import TfdsSource

    return TfdsSource(spec, str(data_dir) if data_dir else None)
