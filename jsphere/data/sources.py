"""Random-access training sources: ``len(src)``, ``src[i] -> (encoded image bytes, int label)``.

Every source also has ``num_classes``, ``class_names``, ``labels`` (an int array, one per sample) and
``describe(i)`` (what to name in an error about sample i). ``open_source`` picks the format.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np

from jsphere.data.arrayrecord import PackedSource
from jsphere.data.listfile import Line, ListFormatError, iter_lines, resolve
from jsphere.data.recordio import RecordIOSource
from jsphere.data.tfds_source import TfdsSource

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FORMATS = ("auto", "list_v1", "list_v2", "folder", "recordio", "arrayrecord", "tfds")
__all__ = ["FORMATS", "IMAGE_SUFFIXES", "FileSource", "ListFormatError", "open_source", "read_folder", "read_list"]


class FileSource:
    """Images stored as files: ``paths`` (relative to ``root``, or absolute), int ``labels`` indexing
    ``class_names``. ``list_path`` and ``line_numbers`` say where each sample was listed (None: an image folder)."""

    def __init__(self, root: str, paths: list[str], labels: np.ndarray, class_names: list[str],
                 list_path: str | None = None, line_numbers: np.ndarray | None = None):
        self.root = root
        self.paths = paths
        self.labels = labels
        self.class_names = class_names
        self.list_path = list_path
        self.line_numbers = line_numbers

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.paths)

    def path(self, i: int) -> str:
        return resolve(self.root, self.paths[i])

    def describe(self, i: int) -> str:
        if self.line_numbers is None:
            return f"{self.path(i)} (identity {self.class_names[self.labels[i]]})"
        return f"{self.path(i)} ({self.list_path}:{self.line_numbers[i]})"

    def __getitem__(self, i: int) -> tuple[bytes, int]:
        try:
            with open(self.path(i), "rb") as f:
                return f.read(), int(self.labels[i])
        except OSError as e:
            raise FileNotFoundError(f"cannot read {self.describe(i)}: {e.strerror}") from None


def is_integer_label(label: str) -> bool:
    """Whether a training-list label is an integer label: ASCII digits (at most 18, so it fits int64)."""
    return label.isascii() and label.isdigit() and len(label) <= 18


def _index_names(names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Class index of each identity name, classes in string order (OpenSphere's ``sorted(set(names))``)."""
    class_names = sorted(set(names))
    index = {name: i for i, name in enumerate(class_names)}
    return np.fromiter((index[name] for name in names), np.int64, len(names)), class_names


def _index_integers(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Class index of each integer label, classes in numeric order (so labels 0..C-1 keep their value; '7' and
    '007' are one class, named as first written)."""
    values = np.fromiter(map(int, labels), np.int64, len(labels))
    _, first, classes = np.unique(values, return_index=True, return_inverse=True)
    return classes.astype(np.int64).reshape(-1), [labels[i] for i in first]


def read_list(path: str | os.PathLike, data_dir: str | os.PathLike | None = None,
              version: str = "auto") -> FileSource:
    """An OpenSphere list file: v1 lines ``relative/path identity``, v2 lines ``relative/path`` (identity = the
    parent folder). Paths are relative to ``data_dir`` (default: the list's folder).

    ``auto`` takes the form most lines have, so a line missing its label is the one named, whichever line it is.
    The labels of a v1 list are integers when at least half of them are integers (ASCII digits): then every
    label must be one, and the classes are the numbers in numeric order. Otherwise they are identity names (any
    text, digits included), the classes in string order, as OpenSphere sorts them.
    """
    if version not in ("auto", "v1", "v2"):
        raise ValueError(f"list version {version!r} is not one of ('auto', 'v1', 'v2')")
    path = Path(path)
    numbers, images, labels = [], [], []
    widths: Counter[int] = Counter()
    first_of_width: dict[int, Line] = {}
    for line in iter_lines(path, "training list"):
        numbers.append(line.number)
        images.append(line.fields[0])
        labels.append(line.fields[-1])
        widths[len(line.fields)] += 1
        first_of_width.setdefault(len(line.fields), line)
    n = len(images)
    if version == "auto":
        version = "v1" if widths[2] >= widths[1] else "v2"
    width = 2 if version == "v1" else 1
    wrong = [line for w, line in first_of_width.items() if w != width]
    if wrong:
        form = "'relative/path identity'" if version == "v1" else "'relative/path'"
        raise min(wrong, key=lambda line: line.number).error(
            f"{form}: a {version} list ({widths[width]} of its {n} lines have that form)")
    line_numbers = np.asarray(numbers, np.int32)
    root = str(data_dir) if data_dir else str(path.parent)
    if version == "v2":
        identities = [os.path.dirname(image) for image in images]
        if "" in identities:
            i = identities.index("")
            raise ListFormatError(f"{path}:{numbers[i]}: v2 list paths need an identity folder, got {images[i]!r}")
        classes, class_names = _index_names(identities)
        return FileSource(root, images, classes, class_names, str(path), line_numbers)
    classes, class_names = _label_classes(path, numbers, labels)
    return FileSource(root, images, classes, class_names, str(path), line_numbers)


def _label_classes(path: Path, numbers: list[int], labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """The classes of a v1 list's labels: integers if at least half of them are (then all must be), else names."""
    integer = [is_integer_label(label) for label in labels]
    integers = sum(integer)
    if 2 * integers < len(labels):
        return _index_names(labels)
    if integers < len(labels):
        i = integer.index(False)
        label, where = labels[i], f"{path}:{numbers[i]}"
        kind = (f"an integer-labelled list ({integers} of its {len(labels)} labels are integers; classes in numeric "
                "order)")
        if label.startswith("-") and label[1:].isascii() and label[1:].isdigit():
            raise ListFormatError(f"{where}: label {label!r} is negative; labels must be integers >= 0 in {kind}")
        if label.isascii() and label.isdigit():
            raise ListFormatError(f"{where}: label {label!r} has {len(label)} digits; labels must have at most 18 "
                                  f"in {kind}")
        raise ListFormatError(f"{where}: label {label!r} is not an integer, but {integers} of the list's "
                              f"{len(labels)} labels are: an integer-labelled list (classes in numeric order) needs "
                              "every label to be a non-negative integer")
    return _index_integers(labels)


def read_folder(root: str | os.PathLike) -> FileSource:
    """An image folder ``root/<identity>/<image>`` (identity folders sorted, images sorted)."""
    root = Path(root)
    paths, labels = [], []
    identity_dirs = sorted(d for d in root.iterdir() if d.is_dir())
    if not identity_dirs:
        raise FileNotFoundError(f"{root}: no identity folders (expected {root}/<identity>/<image>)")
    for label, identity in enumerate(identity_dirs):
        images = sorted(p.name for p in identity.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise FileNotFoundError(f"{identity}: empty identity folder (no {'/'.join(IMAGE_SUFFIXES)} images)")
        paths.extend(f"{identity.name}/{image}" for image in images)
        labels.extend([label] * len(images))
    return FileSource(str(root), paths, np.asarray(labels, np.int64), [d.name for d in identity_dirs])


def detect_format(spec: str) -> str:
    if spec.startswith("tfds:"):
        return "tfds"
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"data source {spec!r} does not exist (a source is a list file, an image folder, "
                                "a train.rec or its folder, a packed folder, or tfds:<name>)")
    if path.suffix == ".rec" or (path.is_dir() and (path / "train.rec").exists()):
        return "recordio"
    if path.is_dir() and any(path.glob("*.array_record*")):
        return "arrayrecord"
    if path.is_dir():
        return "folder"
    return "list"


def open_source(spec: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                fmt: str = "auto") -> FileSource | RecordIOSource | PackedSource | TfdsSource:
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
        return RecordIOSource(spec)
    if fmt == "arrayrecord":
        return PackedSource(spec)
    return TfdsSource(spec, str(data_dir) if data_dir else None)
