"""Pair-verification metrics as pure functions, labelled by protocol.

* ``opensphere_metrics`` (OpenSphere ``dataset/utils.get_metrics``): one ROC over the whole set;
  ACC = max over ROC thresholds of (TPR P + TNR N) / (P + N) (best threshold chosen on the test set itself),
  EER = root of 1 - x - ROC(x) with the ROC linearly interpolated, AUC, TPR@FPR by linear interpolation.
  All x 100.
* ``kfold_accuracy`` (insightface / LFW standard protocol): squared L2 distance of L2-normalised embeddings,
  10 contiguous folds (insightface's ``.bin`` sets) or the folds the pair file defines (LFW's pairs.txt, CALFW,
  CPLFW, AgeDB's protocol file), the threshold (grid 0 ... 3.99 step 0.01, first maximum) chosen on the other
  folds, mean and std of the held-out accuracies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn import metrics
from sklearn.model_selection import KFold

# The FPRs of OpenSphere v1's pair-set report (``PairDataset.evaluate``'s default in ``dataset/pair_dataset.py``,
# branch OpenSphere_v0): what a set without its own ``fprs`` reports. OpenSphere v2 reports the FPRs its configs
# list, 1e-2 in place of 5e-2 (``configs/test/common.OPENSPHERE_V2_FPRS``).
OPENSPHERE_V1_FPRS = (1e-4, 5e-4, 1e-3, 5e-3, 5e-2)


def fpr_key(fpr: float) -> str:
    return f"TPR@FPR={fpr:g}"


def opensphere_metrics(scores: np.ndarray, labels: np.ndarray, fprs: Sequence[float] = OPENSPHERE_V1_FPRS
                       ) -> dict[str, float]:
    """ACC, EER, AUC and TPR@FPR (x 100) of similarity ``scores`` [P] for boolean ``labels`` [P] (True = same)."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must be equal 1-D shapes")
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"verification needs genuine and impostor pairs (got {positives} genuine, "
                         f"{negatives} impostor)")
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    acc = np.max((tpr * positives + (1 - fpr) * negatives) / (positives + negatives))
    roc = interp1d(fpr, tpr)
    eer = brentq(lambda x: 1.0 - x - roc(x), 0.0, 1.0)
    out = {"ACC": 100 * float(acc), "EER": 100 * float(eer), "AUC": 100 * float(metrics.auc(fpr, tpr))}
    for f in fprs:
        out[fpr_key(f)] = 100 * float(roc(f))
    return out


def l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kfold_accuracy(emb1: np.ndarray, emb2: np.ndarray, issame: np.ndarray, nfolds: int = 10,
                   folds: np.ndarray | None = None) -> dict[str, float]:
    """insightface's 10-fold accuracy of pairs of embeddings ``emb1``, ``emb2`` [P, D] (normalised here) with
    ``issame`` [P] bool: ``acc_mean``, ``acc_std`` (x 100) and the mean chosen threshold.

    ``folds`` (the fold index of each pair, e.g. ``PairList.folds``) replaces the ``nfolds`` contiguous folds.
    """
    emb1, emb2 = l2_normalize(np.asarray(emb1, np.float64)), l2_normalize(np.asarray(emb2, np.float64))
    issame = np.asarray(issame, bool)
    if folds is None:
        if len(issame) < nfolds:
            raise ValueError(f"{len(issame)} pairs cannot be split into {nfolds} folds")
        splits = list(KFold(n_splits=nfolds, shuffle=False).split(issame))
    else:
        folds = np.asarray(folds)
        if folds.shape != issame.shape or folds.dtype.kind not in "iu" or len(np.unique(folds)) < 2:
            raise ValueError(f"folds ({folds.dtype} {folds.shape}) must give each of the {len(issame)} pairs an "
                             "integer fold, at least two different ones")
        splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in np.unique(folds)]
    dist = np.sum(np.square(emb1 - emb2), axis=1)
    thresholds = np.arange(0, 4, 0.01)
    predictions = dist[None, :] < thresholds[:, None]  # [T, P]
    correct = predictions == issame[None, :]
    accs, chosen = [], []
    for train, test in splits:
        best = int(np.argmax(correct[:, train].mean(axis=1)))
        chosen.append(thresholds[best])
        accs.append(correct[best, test].mean())
    return {"acc_mean": 100 * float(np.mean(accs)), "acc_std": 100 * float(np.std(accs)),
            "threshold": float(np.mean(chosen))}


def xnorm(embeddings: np.ndarray) -> float:
    """Mean L2 norm of raw (un-normalised) embeddings [N, D], as insightface logs it."""
    return float(np.mean(np.linalg.norm(np.asarray(embeddings, np.float64), axis=-1)))


def angular_fisher_score(features: np.ndarray, labels: np.ndarray) -> float:
    """SphereFace appendix E, of ``features`` [N, D] with class ``labels`` [N]: S_w / S_b (lower is better) with
    S_w = sum_i sum_{x in X_i} (1 - cos<x, m_i>),  S_b = sum_i n_i (1 - cos<m_i, m>)."""
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError("the angular Fisher score needs at least two classes")
    means = np.zeros((len(classes), features.shape[1]))
    np.add.at(means, inverse, features)
    means /= counts[:, None]
    overall = features.mean(axis=0)
    unit = l2_normalize
    within = np.sum(1.0 - np.sum(unit(features) * unit(means)[inverse], axis=1))
    between = np.sum(counts * (1.0 - unit(means) @ unit(overall[None, :])[0]))
    return float(within / between)
