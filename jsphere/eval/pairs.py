"""Verification on a pair set (OpenSphere pair list or insightface ``.bin``) with any ``Embedder``.

``evaluate_pair_set(embedder, set_cfg)`` returns the OpenSphere metrics (best-threshold ACC, EER, AUC,
TPR@FPR) and the standard 10-fold accuracy (``std_acc``, ``std_acc_std``) plus XNorm. Decoded images are
cached per set, so validating every few thousand steps reads the files once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jsphere.eval.verification import OPENSPHERE_FPRS, kfold_accuracy, l2_normalize, opensphere_metrics, xnorm

SET_TYPES = ("pairs", "bin")


@dataclasses.dataclass
class PairSet:
    name: str
    images: np.ndarray  # uint8 [N, 112, 112, 3]
    pairs: np.ndarray  # int [P, 2]
    labels: np.ndarray  # bool [P]
    folds: np.ndarray | None = None  # int [P]: the file's own protocol folds (LFW pairs.txt)


_CACHE: dict[tuple, PairSet] = {}


def load_pair_set(set_cfg: Mapping[str, Any]) -> PairSet:
    """Read (once; cached) the images and pairs of a configured set: ``name``, ``type``, ``path``, ``data_dir``."""
    kind = set_cfg.get("type", "pairs")
    key = (kind, str(set_cfg["path"]), str(set_cfg.get("data_dir")), set_cfg.get("format", "auto"))
    if key in _CACHE:
        return _CACHE[key]
    name = set_cfg.get("name", str(set_cfg["path"]))
    if kind == "pairs":
        from jsphere.data.images import load_images
        from jsphere.data.pairs import read_pair_list

        pair_list = read_pair_list(set_cfg["path"], set_cfg.get("data_dir"), fmt=set_cfg.get("format", "auto"))
        loaded = PairSet(name, load_images(pair_list.paths), pair_list.pairs, pair_list.labels, pair_list.folds)
    elif kind == "bin":
        from jsphere.data.binset import read_bin
        from jsphere.data.images import decode_all

        blobs, issame = read_bin(set_cfg["path"])
        images = decode_all(blobs, [f"{set_cfg['path']} image {i}" for i in range(len(blobs))])
        pairs = np.arange(len(blobs)).reshape(-1, 2)
        loaded = PairSet(name, images, pairs, issame)
    else:
        raise ValueError(f"pair set {name!r}: type {kind!r} is not one of {SET_TYPES}")
    _CACHE[key] = loaded
    return loaded


def pair_metrics(features: np.ndarray, pairs: np.ndarray, labels: np.ndarray,
                 fprs=OPENSPHERE_FPRS, nfolds: int = 10, folds: np.ndarray | None = None) -> dict[str, float]:
    """Both protocols from per-image (flip-fused) features; ``folds`` are the file's own protocol folds."""
    unit = l2_normalize(features)
    scores = np.sum(unit[pairs[:, 0]] * unit[pairs[:, 1]], axis=1)
    out = opensphere_metrics(scores, labels, fprs)
    if folds is not None or len(labels) >= nfolds:
        std = kfold_accuracy(unit[pairs[:, 0]], unit[pairs[:, 1]], labels, nfolds, folds)
        out.update({"std_acc": std["acc_mean"], "std_acc_std": std["acc_std"]})
    out["XNorm"] = xnorm(features)
    return out


def evaluate_pair_set(embedder, set_cfg: Mapping[str, Any]) -> dict[str, float]:
    pair_set = load_pair_set(set_cfg)
    features = embedder.embed(pair_set.images, flip=set_cfg.get("flip", "sum"))
    return pair_metrics(features, pair_set.pairs, pair_set.labels, tuple(set_cfg.get("fprs", OPENSPHERE_FPRS)),
                        folds=pair_set.folds)
