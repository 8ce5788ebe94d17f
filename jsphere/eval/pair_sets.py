"""The images and pairs of a verification set: a pair file (any published form) or an insightface ``.bin``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jsphere.data.binset import read_bin
from jsphere.data.images import decode_all, load_images
from jsphere.data.pair_files import LFW_IMAGE, read_pair_list


@dataclasses.dataclass
class PairSet:
    """A verification set in memory: its images, and its pairs of image indices with same/different labels."""

    name: str
    images: np.ndarray  # uint8 [N, 112, 112, 3]
    pairs: np.ndarray  # int [P, 2]
    labels: np.ndarray  # bool [P]
    folds: np.ndarray | None = None  # int [P]: the file's own protocol folds (None: 10 contiguous folds)


def load_pair_set(set_cfg: Mapping[str, Any]) -> PairSet:
    """Read the images and pairs of a configured set: ``name``, ``type`` (pairs | bin), ``path``, ``data_dir``,
    ``format`` (a pair file's form: auto (default), opensphere, lfw, xlfw, agedb) and ``lfw_image`` (where LFW's
    pairs.txt finds image ``number`` of ``name``, default ``{name}/{name}_{number:04d}.jpg``)."""
    kind = set_cfg.get("type", "pairs")
    name = set_cfg.get("name", str(set_cfg["path"]))
    if kind == "pairs":
        pair_list = read_pair_list(set_cfg["path"], set_cfg.get("data_dir"), fmt=set_cfg.get("format") or "auto",
                                   lfw_image=set_cfg.get("lfw_image") or LFW_IMAGE)
        return PairSet(name, load_images(pair_list.paths), pair_list.pairs, pair_list.labels, pair_list.folds)
    if kind == "bin":
        blobs, issame = read_bin(set_cfg["path"])
        images = decode_all(blobs, [f"{set_cfg['path']} image {i}" for i in range(len(blobs))])
        return PairSet(name, images, np.arange(len(blobs)).reshape(-1, 2), issame)
    raise ValueError(f"pair set {name!r}: type {kind!r} is not one of ('pairs', 'bin')")
