"""The identity-disjoint split of LFW that the real-faces benchmark trains and tests on.

LFW View 2's ``pairs.txt`` has 10 folds, and no person appears in two of them. The people of a fold are the names
in its pairs. The held-out folds' people are never trained on; every other person of the image tree with at least
two images is (people with one image cannot form a class to learn from, and appear in no matched pair).

Written files (both read by jsphere's own readers, and by the PyTorch side's independent dataset):

* ``train_list.txt``: OpenSphere's v1 list form ``name/name_0001.jpg name``, one line per image, people in string
  order (the class of a line is the index of its name among the sorted names, as OpenSphere's ``ClassDataset``
  and jsphere's list reader number them);
* ``heldout_pairs.txt``: the held-out folds' pairs in LFW's View 1 form (a header ``<matched pairs>``, every matched
  line ``name n1 n2``, then every mismatched line ``name1 n1 name2 n2``), so jsphere's pair reader splits them
  into the standard protocol's 10 folds of equal numbers of matched and mismatched pairs;
* ``split.json``: the folds, the people and image counts of both sides.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np

from jsphere.data.pair_files import read_pair_list
from jsphere.errors import UserError, describe

TRAIN_LIST = "train_list.txt"
HELDOUT_PAIRS = "heldout_pairs.txt"
SPLIT_JSON = "split.json"
VIEW2_FOLDS = 10
IMAGE_SUFFIX = ".jpg"


@dataclasses.dataclass(frozen=True)
class Pair:
    """One LFW pair: ``first``/``second`` are (name, image number)."""

    same: bool
    first: tuple[str, int]
    second: tuple[str, int]


@dataclasses.dataclass
class Split:
    """Training people (name -> image file names, sorted) and the held-out folds' pairs."""

    test_folds: tuple[int, ...]  # 1-based, as LFW numbers them
    train: dict[str, list[str]]
    heldout_people: set[str]
    heldout_pairs: list[Pair]

    @property
    def train_images(self) -> int:
        return sum(len(v) for v in self.train.values())


def _person_images(lfw: Path) -> dict[str, list[str]]:
    """Every person folder of the image tree with its ``.jpg`` file names, sorted."""
    if not lfw.is_dir():
        raise UserError(f"--lfw {lfw}: no such folder (expected LFW's aligned images as <name>/<name>_NNNN.jpg)")
    people = {d.name: sorted(f.name for f in d.iterdir() if f.suffix.lower() == IMAGE_SUFFIX and f.is_file())
              for d in lfw.iterdir() if d.is_dir()}
    people = {name: files for name, files in people.items() if files}
    if not people:
        raise UserError(f"--lfw {lfw}: no <name>/*.jpg images in it (expected LFW's aligned <name>/<name>_NNNN.jpg)")
    return people


def _name_and_number(path: str) -> tuple[str, int]:
    p = Path(path)
    return p.parent.name, int(p.stem.rsplit("_", 1)[1])


def read_view2(pairs_txt: Path, lfw: Path) -> tuple[list[Pair], np.ndarray]:
    """LFW View 2's pairs (jsphere's reader: a malformed line is named ``file:line``, a missing image too) and the
    0-based fold of each."""
    try:
        listed = read_pair_list(pairs_txt, lfw, fmt="lfw")
    except (ValueError, OSError) as e:
        raise UserError(f"--pairs: {describe(e)}") from None
    folds = listed.folds
    if folds is None or len(np.unique(folds)) != VIEW2_FOLDS:
        raise UserError(f"--pairs {pairs_txt}: LFW View 2's pairs.txt has {VIEW2_FOLDS} folds (header '10 300'); "
                        f"this file has {1 if folds is None else len(np.unique(folds))}")
    pairs = [Pair(bool(same), _name_and_number(listed.paths[a]), _name_and_number(listed.paths[b]))
             for (a, b), same in zip(listed.pairs, listed.labels, strict=True)]
    return pairs, np.asarray(folds)


def make_split(lfw: Path, pairs_txt: Path, test_folds: tuple[int, ...]) -> Split:
    """Hold out the people of ``test_folds`` (1-based); train on every other person with >= 2 images."""
    bad = [f for f in test_folds if not 1 <= f <= VIEW2_FOLDS]
    if bad or not test_folds or len(set(test_folds)) != len(test_folds):
        raise UserError(f"--test-folds {' '.join(map(str, test_folds))}: give distinct fold numbers in "
                        f"1..{VIEW2_FOLDS}")
    if len(test_folds) == VIEW2_FOLDS:
        raise UserError(f"--test-folds: holding out all {VIEW2_FOLDS} folds leaves nobody to train on")
    people = _person_images(lfw)
    pairs, folds = read_view2(pairs_txt, lfw)
    held = np.isin(folds, [f - 1 for f in test_folds])
    fold_people: dict[int, set[str]] = {}
    for pair, fold in zip(pairs, folds, strict=True):
        fold_people.setdefault(int(fold), set()).update((pair.first[0], pair.second[0]))
    shared = [(a + 1, b + 1, sorted(fold_people[a] & fold_people[b])[:3]) for a in fold_people
              for b in fold_people if a < b and fold_people[a] & fold_people[b]]
    if shared:
        a, b, names = shared[0]
        raise UserError(f"--pairs {pairs_txt}: folds {a} and {b} share people ({', '.join(names)}); LFW View 2's "
                        "folds are identity-disjoint, so this is not its pairs.txt")
    heldout_people = set().union(*(fold_people[f - 1] for f in test_folds))
    train = {name: files for name, files in sorted(people.items())
             if len(files) >= 2 and name not in heldout_people}
    return Split(tuple(test_folds), train, heldout_people, [p for p, h in zip(pairs, held, strict=True) if h])


def write_split(split: Split, out: Path) -> dict:
    """Write the training list, the held-out pairs and ``split.json`` into ``out``; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}/{file} {name}\n" for name, files in split.train.items() for file in files]
    _write_text(out / TRAIN_LIST, "".join(lines))
    matched = [p for p in split.heldout_pairs if p.same]
    mismatched = [p for p in split.heldout_pairs if not p.same]
    if len(matched) != len(mismatched):
        raise UserError(f"the held-out folds have {len(matched)} matched and {len(mismatched)} mismatched pairs; "
                        "LFW View 2's folds have as many of each")
    body = [f"{p.first[0]}\t{p.first[1]}\t{p.second[1]}\n" for p in matched]
    body += [f"{p.first[0]}\t{p.first[1]}\t{p.second[0]}\t{p.second[1]}\n" for p in mismatched]
    _write_text(out / HELDOUT_PAIRS, f"{len(matched)}\n" + "".join(body))
    counts = Counter(len(files) for files in split.train.values())
    summary = {"test_folds": list(split.test_folds), "train_people": len(split.train),
               "train_images": split.train_images, "heldout_people": len(split.heldout_people),
               "heldout_pairs": len(split.heldout_pairs), "heldout_matched": len(matched),
               "train_images_per_person": {"min": min(counts), "max": max(counts),
                                           "median": float(np.median([len(f) for f in split.train.values()]))}}
    _write_text(out / SPLIT_JSON, json.dumps(summary, indent=2) + "\n")
    return summary


def _write_text(path: Path, text: str) -> None:
    """Write atomically, so an interrupted run never leaves half a list that a later run would trust."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
