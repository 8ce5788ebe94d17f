"""Random-access training sources: ``len(src)``, ``src[i] -> (encoded image bytes, int label)``.

Every source also has ``num_classes``, ``class_names``, ``labels`` (an int array, one per sample) and
``describe(i)`` (what to name in an error about sample i). ``open_source`` picks the format.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jsphere.data.listfile import ListFormatError, read_lines, resolve

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FORMATS = ("auto", "list_v1", "list_v2", "folder", "recordio", "arrayrecord", "tfds")
__all__ = ["FORMATS", "IMAGE_SUFFIXES", "FileSource", "ListFormatError", "open_source", "read_folder", "read_list"]


class FileSource:
    """Images stored as files. Class indices follow the identities in sorted order: names sorted as strings
    (OpenSphere's rule), integer labels (``numeric``) sorted as numbers, so labels 0..C-1 keep their value."""

    def __init__(self, paths: Sequence[str], identities: Sequence[str], origins: Sequence[str],
                 numeric: bool = False):
        self.class_names = sorted(set(identities), key=int if numeric else None)
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
    """An OpenSphere list file: v1 lines ``relative/path identity``, v2 lines ``relative/path`` (identity = the
    parent folder). Paths are relative to ``data_dir`` (default: the list's folder).

    ``auto`` takes the form most lines have, so a line missing its label is named, whichever it is. The
    identities of a v1 list are integer labels if the first entry's is an integer (then every label must be
    one) and names otherwise.
    """
    path = Path(path)
    root = Path(data_dir) if data_dir else path.parent
    lines = read_lines(path, "training list")
    counts = Counter(len(line.fields) for line in lines)
    if version == "auto":
        version = "v1" if counts[2] >= counts[1] else "v2"
    width = 2 if version == "v1" else 1
    form = "'relative/path identity'" if version == "v1" else "'relative/path'"
    for line in lines:
        if len(line.fields) != width:
            raise line.error(f"{form}: a {version} list ({counts[width]} of its {len(lines)} lines have that form)")
    paths = [resolve(root, line.fields[0]) for line in lines]
    origins = [line.where for line in lines]
    if version == "v2":
        identities = [os.path.dirname(line.fields[0]) for line in lines]
        if "" in identities:
            bad = lines[identities.index("")]
            raise ListFormatError(f"{bad.where}: v2 list paths need an identity folder, got {bad.fields[0]!r}")
        return FileSource(paths, identities, origins)
    identities = [line.fields[1] for line in lines]
    numeric = identities[0].isdigit()
    for line, identity in zip(lines, identities, strict=True):
        if identity.isdigit() != numeric:
            first = f"{lines[0].where} has the integer label {identities[0]!r}" if numeric else \
                f"{lines[0].where} has the identity name {identities[0]!r}"
            raise ListFormatError(f"{line.where}: label {identity!r} is {'not ' if numeric else ''}an integer but "
                                  f"{first}: a list's labels are all integers or all identity names")
    return FileSource(paths, identities, origins, numeric=numeric)


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
    return "list"


def open_source(spec: str | os.PathLike, data_dir: str | os.PathLike | None = None, fmt: str = "auto"):
    """Open a training source: list file (v1/v2), image folder, ``train.rec`` (or its folder), packed
    ArrayRecord folder, or ``tfds:<name>[:split]``."""
    spec = str(spec)
    if fmt not in FORMATS:
        raise ValueError(f"data format {fmt!r} is not one of {FORMATS}")
    if fmt == "auto":
        fmt = detect_format(spec)
    if fmt in ("list", "list_v1", "list_v2"):
        return read_list(spec, data_dir, version="auto" if fmt == "list" else fmt[-2:])
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
