"""Verification pair files in the forms they are published in.

* ``opensphere``: OpenSphere's pair lists, lines ``label path0 path1`` (1 = same identity, 0 = different).
* ``lfw``: the original LFW ``pairs.txt``: a header ``<folds> <n>`` (``10 300``), then per fold ``n`` matched
  lines ``name n1 n2`` followed by ``n`` mismatched lines ``name1 n1 name2 n2``; image ``k`` of ``name`` is
  ``name/name_000k.jpg``. Its folds are the protocol's folds. View 1's ``pairsDevTrain.txt`` /
  ``pairsDevTest.txt`` have the header ``<n>`` (one fold) and are folded like ``xlfw``.
* ``xlfw``: CALFW's ``pairs_CALFW.txt`` and CPLFW's ``pairs_CPLFW.txt``: two consecutive lines ``image label``
  per pair; the label is 0 on both lines of a pair of different people and the same non-zero number on both
  lines of a pair of one person. The 3000 matched pairs come first, then the 3000 mismatched ones; fold ``k`` is
  the ``k``-th tenth of each (300 + 300 pairs), as the authors' protocol and FaceX-Zoo define it.
* ``agedb``: AgeDB's protocol file (``04_FINAL_protocol_30_years.mat`` for AgeDB-30, MATLAB v5): a cell array
  ``splits`` of 10 folds, each a struct whose first field is a 2 x 600 cell of image structs (file stem, age)
  and whose second holds the 600 labels (1 same, -1 different). Images are ``<stem>.jpg``.

Unique image paths, sorted lexicographically, define the image indices (OpenSphere's PairDataset). Paths are
relative to ``data_dir`` (default: the pair file's folder). Every form also reaches the evaluator as
insightface's ``.bin`` (read by ``binset``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from jsphere.data.listfile import Line, ListFormatError, read_lines, resolve

PAIR_FORMATS = ("auto", "opensphere", "lfw", "xlfw", "agedb")
LFW_IMAGE = "{name}/{name}_{number:04d}.jpg"
PROTOCOL_FOLDS = 10
MAT_FILE_MAGIC = b"MATLAB"


@dataclasses.dataclass
class PairList:
    """A pair file as read: the images it names, its pairs of indices into them, same/different labels, where it
    was read from, its protocol folds and its form."""

    paths: list[str]  # unique image paths (absolute), sorted
    pairs: np.ndarray  # int [P, 2] indices into ``paths``
    labels: np.ndarray  # bool [P]
    source: str
    folds: np.ndarray | None = None  # int [P]: the protocol fold of each pair, when the file defines them
    format: str = "opensphere"


class _Pair(NamedTuple):
    same: bool
    first: str
    second: str
    where: str  # file:line (or fold and pair) that lists it


def _is_int(text: str) -> bool:
    return text.isascii() and text.isdigit()


def halves_folds(same: np.ndarray, folds: int = PROTOCOL_FOLDS) -> np.ndarray | None:
    """The folds of a file that lists all its matched pairs, then all its mismatched ones (CALFW, CPLFW, LFW
    View 1): fold ``k`` is the ``k``-th of ``folds`` contiguous parts of each half. None for any other order."""
    same = np.asarray(same, bool)
    matched = int(same.sum())
    if not (same[:matched].all() and not same[matched:].any()) or min(matched, len(same) - matched) < folds:
        return None
    rank = np.concatenate([np.arange(matched), np.arange(len(same) - matched)])
    size = np.where(same, matched, len(same) - matched)
    return rank * folds // size


def detect_pair_format(lines: list[Line]) -> str:
    """The form of a text pair file from its first entry."""
    fields = lines[0].fields
    if 1 <= len(fields) <= 2 and all(_is_int(f) for f in fields):
        return "lfw"
    if len(fields) == 3 and fields[0] in ("0", "1"):
        return "opensphere"
    if len(fields) == 2 and _is_int(fields[1]):
        return "xlfw"
    raise lines[0].error("a pair file: 'label path0 path1' (OpenSphere), an LFW pairs.txt header '10 300', or "
                         "'image label' lines (CALFW/CPLFW)")


def _opensphere(lines: list[Line], image: str) -> tuple[list[_Pair], None]:
    pairs = []
    for line in lines:
        if len(line.fields) != 3 or line.fields[0] not in ("0", "1"):
            raise line.error("'label path0 path1' with label 0 or 1 (OpenSphere pair list)")
        pairs.append(_Pair(line.fields[0] == "1", line.fields[1], line.fields[2], line.where))
    return pairs, None


def _lfw(lines: list[Line], image: str) -> tuple[list[_Pair], np.ndarray | None]:
    header, body = lines[0], lines[1:]
    if not (1 <= len(header.fields) <= 2 and all(_is_int(f) for f in header.fields)):
        raise header.error("an LFW pairs.txt header: '<folds> <pairs per fold>' (10 300) or '<pairs>' (View 1)")
    folds, per_fold = (1, int(header.fields[0])) if len(header.fields) == 1 else map(int, header.fields)
    if per_fold < 1 or len(body) != 2 * folds * per_fold:
        raise ListFormatError(f"{header.where}: the header '{' '.join(header.fields)}' announces {folds} fold(s) of "
                              f"{per_fold} matched + {per_fold} mismatched pairs ({2 * folds * per_fold} lines), "
                              f"but {len(body)} pair lines follow")

    def path(name: str, number: str, line: Line) -> str:
        if not _is_int(number):
            raise line.error("an image number in 'name n1 n2' / 'name1 n1 name2 n2' (LFW pairs.txt)")
        try:
            return image.format(name=name, number=int(number))
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"LFW image pattern {image!r}: {type(e).__name__} {e}; it may use only {{name}} and "
                             f"{{number}}, e.g. {LFW_IMAGE!r}") from None

    pairs = []
    for k, line in enumerate(body):
        same = (k % (2 * per_fold)) < per_fold
        f = line.fields
        if same and len(f) == 3:
            pairs.append(_Pair(True, path(f[0], f[1], line), path(f[0], f[2], line), line.where))
        elif not same and len(f) == 4:
            pairs.append(_Pair(False, path(f[0], f[1], line), path(f[2], f[3], line), line.where))
        else:
            form = "a matched pair 'name n1 n2'" if same else "a mismatched pair 'name1 n1 name2 n2'"
            raise line.error(f"{form} (LFW pairs.txt: per fold {per_fold} matched lines, then {per_fold} mismatched)")
    if folds == 1:
        return pairs, halves_folds(np.asarray([p.same for p in pairs]))
    return pairs, np.arange(len(pairs)) // (2 * per_fold)


def _xlfw(lines: list[Line], image: str) -> tuple[list[_Pair], np.ndarray | None]:
    for line in lines:
        if len(line.fields) != 2 or not _is_int(line.fields[1]):
            raise line.error("'image label' (CALFW/CPLFW pair file: two lines per pair)")
    if len(lines) % 2:
        raise ListFormatError(f"{lines[-1].where}: an odd number of lines ({len(lines)}); CALFW/CPLFW pair files have "
                              "two lines per pair")
    pairs = []
    for a, b in zip(lines[::2], lines[1::2], strict=True):
        if int(a.fields[1]) != int(b.fields[1]):
            raise ListFormatError(f"{b.where}: label {b.fields[1]} differs from {a.fields[1]} on line {a.number}; "
                                  "both lines of a pair carry the same label (0: different people)")
        pairs.append(_Pair(int(a.fields[1]) != 0, a.fields[0], b.fields[0], a.where))
    return pairs, halves_folds(np.asarray([p.same for p in pairs]))


_READERS: dict[str, Callable[[list[Line], str], tuple[list[_Pair], np.ndarray | None]]] = {
    "opensphere": _opensphere, "lfw": _lfw, "xlfw": _xlfw}


def _mat_text(value, where: str) -> str:
    """The image name in a loaded AgeDB image struct (its first field), unwrapping 1 x 1 cells and structs."""
    for _ in range(8):
        if isinstance(value, np.void):  # a struct element: the name is its first field
            value = value[0]
        elif isinstance(value, np.ndarray) and value.size == 1:
            if value.dtype.kind in "US":
                return str(value.reshape(-1)[0])
            value = value.reshape(-1)[0]
        else:
            break
    raise ValueError(f"{where}: expected an image struct (name, age), got {type(value).__name__} "
                     f"{getattr(value, 'shape', '')}")


def _agedb(path: Path) -> tuple[list[_Pair], np.ndarray]:
    try:
        splits = loadmat(path).get("splits")
    except (MatReadError, ValueError, TypeError, NotImplementedError) as e:
        raise ValueError(f"{path}: cannot read it as a MATLAB v5 .mat file ({e})") from None
    layout = ("the AgeDB protocol layout: 'splits', a cell array of folds, each a struct of a 2 x N cell of image "
              "structs (name, age) and a 1 x N label vector (1 same, -1 different)")
    if not isinstance(splits, np.ndarray) or splits.dtype != object or splits.size < 2:
        raise ValueError(f"{path}: no cell array 'splits'; expected {layout}")
    pairs, folds = [], []
    for k, split in enumerate(splits.reshape(-1)):
        where = f"{path} split {k + 1}"
        try:
            record = split.reshape(-1)[0]
            images, labels = record[0], np.asarray(record[1], np.float64).reshape(-1)
        except (AttributeError, IndexError, TypeError, ValueError):
            raise ValueError(f"{where}: expected {layout}") from None
        if images.shape != (2, len(labels)) or not np.isin(labels, (1, 0, -1)).all():
            raise ValueError(f"{where}: expected {layout}; got images {images.shape}, labels {np.unique(labels)}")
        for c, label in enumerate(labels):
            first = _mat_text(images[0, c], f"{where} pair {c + 1}") + ".jpg"
            second = _mat_text(images[1, c], f"{where} pair {c + 1}") + ".jpg"
            pairs.append(_Pair(bool(label == 1), first, second, f"{where} pair {c + 1}"))
            folds.append(k)
    return pairs, np.asarray(folds, np.int64)


def _is_mat_file(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(MAT_FILE_MAGIC)) == MAT_FILE_MAGIC


def read_pair_list(path: str | os.PathLike, data_dir: str | os.PathLike | None = None, check_files: bool = True,
                   fmt: str = "auto", lfw_image: str = LFW_IMAGE) -> PairList:
    """Parse a pair file of form ``fmt`` (``auto``: detected from its content); see the module docstring."""
    path = Path(path)
    root = Path(data_dir) if data_dir else path.parent
    if fmt not in PAIR_FORMATS:
        raise ValueError(f"pair file format {fmt!r} is not one of {PAIR_FORMATS}")
    if fmt == "agedb" or (fmt == "auto" and _is_mat_file(path)):
        fmt = "agedb"
        rows, folds = _agedb(path)
    else:
        lines = read_lines(path, "pair file")
        fmt = detect_pair_format(lines) if fmt == "auto" else fmt
        rows, folds = _READERS[fmt](lines, lfw_image)
    if not rows:
        raise ListFormatError(f"{path}: the pair file has no pairs")
    unique = sorted({p for row in rows for p in (row.first, row.second)})
    index = {p: i for i, p in enumerate(unique)}
    if check_files:
        listed_at = {}
        for row in rows:
            listed_at.setdefault(row.first, row.where)
            listed_at.setdefault(row.second, row.where)
        for rel in unique:
            if not Path(resolve(root, rel)).is_file():
                raise FileNotFoundError(f"{listed_at[rel]}: image {resolve(root, rel)} does not exist")
    return PairList(
        paths=[resolve(root, p) for p in unique],
        pairs=np.asarray([(index[row.first], index[row.second]) for row in rows], np.int64),
        labels=np.asarray([row.same for row in rows], bool),
        source=str(path),
        folds=folds,
        format=fmt,
    )
