"""Verification pair files in the forms they are published in.

* ``opensphere``: OpenSphere's pair lists, lines ``label path0 path1`` (1 = same identity, 0 = different).
* ``lfw``: the original LFW ``pairs.txt``: a header ``<folds> <n>`` (``10 300``; ``pairsDevTest.txt`` has just
  ``<n>``), then per fold ``n`` matched lines ``name n1 n2`` followed by ``n`` mismatched lines
  ``name1 n1 name2 n2``; image ``k`` of ``name`` is ``name/name_000k.jpg``. The folds are the protocol's folds.
* ``xlfw``: CALFW's ``pairs_CALFW.txt`` and CPLFW's ``pairs_CPLFW.txt``: two consecutive lines ``image label``
  per pair; the label is 0 on both lines of a pair of different people and the same non-zero number on both
  lines of a pair of one person.

Unique image paths, sorted lexicographically, define the image indices (OpenSphere's PairDataset). Paths are
relative to ``data_dir`` (default: the pair file's folder). AgeDB-30 is published for verification as
insightface's ``agedb_30.bin`` and as OpenSphere's pair list; both are read (``.bin`` by ``binset``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jsphere.data.listfile import Line, ListFormatError, read_lines, resolve

PAIR_FORMATS = ("auto", "opensphere", "lfw", "xlfw")
LFW_IMAGE = "{name}/{name}_{number:04d}.jpg"


@dataclasses.dataclass
class PairList:
    paths: list[str]  # unique image paths (absolute), sorted
    pairs: np.ndarray  # int [P, 2] indices into ``paths``
    labels: np.ndarray  # bool [P]
    source: str
    folds: np.ndarray | None = None  # int [P]: the protocol fold of each pair, when the file defines them
    format: str = "opensphere"


@dataclasses.dataclass(frozen=True)
class _Pair:
    same: bool
    first: str
    second: str
    line: Line


def _is_int(text: str) -> bool:
    return text.isdigit()


def detect_pair_format(lines: list[Line]) -> str:
    """The form of a pair file from its first entry."""
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
        pairs.append(_Pair(line.fields[0] == "1", line.fields[1], line.fields[2], line))
    return pairs, None


def _lfw(lines: list[Line], image: str) -> tuple[list[_Pair], np.ndarray | None]:
    header, body = lines[0], lines[1:]
    folds, per_fold = (1, int(header.fields[0])) if len(header.fields) == 1 else map(int, header.fields)
    if per_fold < 1 or len(body) != 2 * folds * per_fold:
        raise ListFormatError(f"{header.where}: the header '{' '.join(header.fields)}' announces {folds} fold(s) of "
                              f"{per_fold} matched + {per_fold} mismatched pairs ({2 * folds * per_fold} lines), "
                              f"but {len(body)} pair lines follow")

    def path(name: str, number: str, line: Line) -> str:
        if not _is_int(number):
            raise line.error("an image number in 'name n1 n2' / 'name1 n1 name2 n2' (LFW pairs.txt)")
        return image.format(name=name, number=int(number))

    pairs = []
    for k, line in enumerate(body):
        same = (k % (2 * per_fold)) < per_fold
        f = line.fields
        if same and len(f) == 3:
            pairs.append(_Pair(True, path(f[0], f[1], line), path(f[0], f[2], line), line))
        elif not same and len(f) == 4:
            pairs.append(_Pair(False, path(f[0], f[1], line), path(f[2], f[3], line), line))
        else:
            form = "a matched pair 'name n1 n2'" if same else "a mismatched pair 'name1 n1 name2 n2'"
            raise line.error(f"{form} (LFW pairs.txt: per fold {per_fold} matched lines, then {per_fold} mismatched)")
    fold_of = np.arange(len(pairs)) // (2 * per_fold)
    return pairs, (fold_of if folds > 1 else None)


def _xlfw(lines: list[Line], image: str) -> tuple[list[_Pair], None]:
    for line in lines:
        if len(line.fields) != 2 or not _is_int(line.fields[1]):
            raise line.error("'image label' (CALFW/CPLFW pair file: two lines per pair)")
    if len(lines) % 2:
        raise ListFormatError(f"{lines[-1].where}: an odd number of lines ({len(lines)}); CALFW/CPLFW pair files have "
                              "two lines per pair")
    pairs = []
    for a, b in zip(lines[::2], lines[1::2], strict=True):
        if a.fields[1] != b.fields[1]:
            raise ListFormatError(f"{b.where}: label {b.fields[1]} differs from {a.fields[1]} on line {a.number}; "
                                  "both lines of a pair carry the same label (0: different people)")
        pairs.append(_Pair(a.fields[1] != "0", a.fields[0], b.fields[0], a))
    return pairs, None


_READERS: dict[str, Callable[[list[Line], str], tuple[list[_Pair], np.ndarray | None]]] = {
    "opensphere": _opensphere, "lfw": _lfw, "xlfw": _xlfw}


def read_pair_list(path: str | os.PathLike, data_dir: str | os.PathLike | None = None, check_files: bool = True,
                   fmt: str = "auto", lfw_image: str = LFW_IMAGE) -> PairList:
    """Parse a pair file of form ``fmt`` (``auto``: detected from its first entry); see the module docstring."""
    path = Path(path)
    root = Path(data_dir) if data_dir else path.parent
    if fmt not in PAIR_FORMATS:
        raise ValueError(f"pair file format {fmt!r} is not one of {PAIR_FORMATS}")
    lines = read_lines(path, "pair file")
    fmt = detect_pair_format(lines) if fmt == "auto" else fmt
    rows, folds = _READERS[fmt](lines, lfw_image)
    if not rows:
        raise ListFormatError(f"{path}: the pair file has no pairs")
    unique = sorted({p for row in rows for p in (row.first, row.second)})
    index = {p: i for i, p in enumerate(unique)}
    if check_files:
        first_line = {}
        for row in rows:
            first_line.setdefault(row.first, row.line.where)
            first_line.setdefault(row.second, row.line.where)
        for rel in unique:
            if not Path(resolve(root, rel)).is_file():
                raise FileNotFoundError(f"{first_line[rel]}: image {resolve(root, rel)} does not exist")
    return PairList(
        paths=[resolve(root, p) for p in unique],
        pairs=np.asarray([(index[row.first], index[row.second]) for row in rows], np.int64),
        labels=np.asarray([row.same for row in rows], bool),
        source=str(path),
        folds=folds,
        format=fmt,
    )
