"""IJB-B / IJB-C evaluation on template features: pooling, 1:1 TAR@FAR, 1:N identification.

Pooling of per-image features f_i (flip-summed, not normalised) into templates::

    template = normalize( sum over the template's media of mean_{i in media} (w_i f_i) )

with w_i = faceness_i for ``insightface`` (N1D1F1) and ``opensphere_v1`` (the same direction), and w_i = 1 for
``opensphere_v2`` (OpenSphere v2 dropped the faceness weights).

1:1: cosine of template pairs (chunked), TAR at FAR = 1e-6 ... 1e-1 both by linear interpolation of the ROC
(``interp``, OpenSphere) and at the ROC point with the nearest FAR (``nearest``, insightface; ties -> higher TAR).

1:N, two labelled variants:
* ``opensphere``: one gallery = union of S1+S2 (G1+G2); rank-1/5/10 over probes; TPIR@FPIR from *all*
  non-mate scores pooled (k = ceil(FPIR * #probes)-th largest non-mate score is the threshold).
* ``standard`` (NIST protocol): each gallery separately, mated probes = probes whose subject is enrolled;
  rank-k over mated probes; FPIR from each non-mated probe's top score; TPIR = rank-1 hits above the threshold;
  the two galleries averaged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn import metrics

from jsphere.eval.verification import l2_normalize

FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
POOLINGS = ("insightface", "opensphere_v1", "opensphere_v2")


def template_features(features: np.ndarray, templates: np.ndarray, medias: np.ndarray,
                      faceness: np.ndarray | None = None, pooling: str = "insightface"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(template ids sorted, L2-normalised template features [T, D])."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
    feats = np.asarray(features, np.float64)
    if pooling != "opensphere_v2":
        if faceness is None:
            raise ValueError(f"pooling {pooling!r} needs the faceness scores")
        feats = feats * np.asarray(faceness, np.float64)[:, None]
    pairs = np.stack([templates, medias], axis=1)
    groups, group_of = np.unique(pairs, axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    media_sum = np.zeros((len(groups), feats.shape[1]))
    np.add.at(media_sum, group_of, feats)
    media_mean = media_sum / np.bincount(group_of, minlength=len(groups))[:, None]
    ids, template_of = np.unique(groups[:, 0], return_inverse=True)
    pooled = np.zeros((len(ids), feats.shape[1]))
    np.add.at(pooled, template_of.reshape(-1), media_mean)
    return ids, l2_normalize(pooled)


def _rows_of(ids: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    pos = np.searchsorted(ids, wanted)
    pos = np.clip(pos, 0, len(ids) - 1)
    bad = ids[pos] != wanted
    if bad.any():
        raise ValueError(f"{what}: template {int(wanted[bad][0])} has no images")
    return pos


def verification_scores(ids: np.ndarray, feats: np.ndarray, pairs: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    rows1, rows2 = _rows_of(ids, pairs[:, 0], "pair list"), _rows_of(ids, pairs[:, 1], "pair list")
    scores = np.empty(len(pairs), np.float32)
    for s in range(0, len(pairs), chunk):
        scores[s:s + chunk] = np.sum(feats[rows1[s:s + chunk]] * feats[rows2[s:s + chunk]], axis=1)
    return scores


def tar_at_far(scores: np.ndarray, labels: np.ndarray, fars: Sequence[float] = FARS) -> dict[str, float]:
    """TAR (x 100) at each FAR of similarity ``scores`` [P] for boolean ``labels`` [P], interpolated and
    nearest-point, labelled."""
    fpr, tpr, _ = metrics.roc_curve(np.asarray(labels, bool), scores)
    out = {}
    for far in fars:
        out[f"TAR@FAR={far:g} (interp)"] = 100 * float(np.interp(far, fpr, tpr))
        gap = np.abs(fpr - far)
        nearest = np.flatnonzero(gap == gap.min())
        out[f"TAR@FAR={far:g} (nearest)"] = 100 * float(tpr[nearest].max())
    return out


def _similarities(probe_feats: np.ndarray, gallery_feats: np.ndarray, chunk: int = 4096) -> np.ndarray:
    out = np.empty((len(probe_feats), len(gallery_feats)), np.float32)
    for s in range(0, len(probe_feats), chunk):
        out[s:s + chunk] = probe_feats[s:s + chunk] @ gallery_feats.T
    return out


def identification_opensphere(probe_feats, probe_subjects, gallery_feats, gallery_subjects,
                              ranks=(1, 5, 10), fpirs=(1e-2, 1e-1)) -> dict[str, float]:
    sim = _similarities(probe_feats, gallery_feats)
    mate = probe_subjects[:, None] == gallery_subjects[None, :]
    order = np.argsort(-sim, axis=1)
    hit_rank = np.argmax(np.take_along_axis(mate, order, axis=1), axis=1)
    has_mate = mate.any(axis=1)
    out = {f"top{k}": 100 * float(np.mean(has_mate & (hit_rank < k))) for k in ranks}
    nonmate = np.sort(sim[~mate])[::-1]
    mate_scores = np.where(has_mate, np.max(np.where(mate, sim, -np.inf), axis=1), -np.inf)
    for fpir in fpirs:
        k = min(max(math.ceil(fpir * len(probe_feats)), 1), len(nonmate))
        out[f"TPIR@FPIR={fpir:g}"] = 100 * float(np.mean(mate_scores > nonmate[k - 1]))
    return out


def identification_standard(probe_feats, probe_subjects, gallery_feats, gallery_subjects,
                            ranks=(1, 5, 10), fpirs=(1e-2, 1e-1)) -> dict[str, float]:
    """One gallery: rank-k over mated probes, TPIR@FPIR with per-probe top non-mated scores."""
    sim = _similarities(probe_feats, gallery_feats)
    enrolled = np.isin(probe_subjects, gallery_subjects)
    mated, nonmated = sim[enrolled], sim[~enrolled]
    mate = probe_subjects[enrolled][:, None] == gallery_subjects[None, :]
    order = np.argsort(-mated, axis=1)
    hit_rank = np.argmax(np.take_along_axis(mate, order, axis=1), axis=1)
    out = {f"top{k}": 100 * float(np.mean(hit_rank < k)) for k in ranks}
    top_nonmated = np.sort(nonmated.max(axis=1))[::-1] if len(nonmated) else np.asarray([np.inf])
    top_score = mated.max(axis=1)
    rank1 = hit_rank == 0
    for fpir in fpirs:
        k = max(math.floor(fpir * len(top_nonmated)), 1)
        threshold = top_nonmated[min(k, len(top_nonmated)) - 1]
        out[f"TPIR@FPIR={fpir:g}"] = 100 * float(np.mean(rank1 & (top_score > threshold)))
    return out


def identification(ids, feats, galleries: dict, probe: tuple, protocol: str) -> dict[str, float]:
    """1:N for ``protocol`` 'opensphere' (merged gallery) or 'standard' (galleries averaged)."""
    probe_ids, probe_subjects = probe
    probe_feats = feats[_rows_of(ids, probe_ids, "1:N probe")]
    if protocol == "opensphere":
        g_ids = np.concatenate([g[0] for g in galleries.values()])
        g_subj = np.concatenate([g[1] for g in galleries.values()])
        g_ids, first = np.unique(g_ids, return_index=True)
        return identification_opensphere(probe_feats, probe_subjects, feats[_rows_of(ids, g_ids, "1:N gallery")],
                                         g_subj[first])
    if protocol != "standard":
        raise ValueError(f"1:N protocol {protocol!r} is not 'opensphere' or 'standard'")
    results = [identification_standard(probe_feats, probe_subjects, feats[_rows_of(ids, g[0], "1:N gallery")], g[1])
               for g in galleries.values()]
    return {k: float(np.mean([r[k] for r in results])) for k in results[0]}
