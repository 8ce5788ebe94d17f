"""One evaluator per set type: ``make_evaluator(set_cfg, eval_cfg)`` reads the set once; calling it with an
``Embedder`` returns the set's metrics and its ROC curve. ``--mode=eval``, validation during training and
``converters.check`` all score through these.

* ``pairs`` (a pair file in any published form) and ``bin`` (insightface's ``.bin``): flip-fused embeddings,
  cosine scores, the OpenSphere metrics (best-threshold ACC, EER, AUC, TPR@FPR), the standard 10-fold accuracy
  (on the file's own folds when it has them) and XNorm;
* ``ijb``: IJB-B/C template pooling, TAR@FAR and, with the 1:N files, identification both ways.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skmetrics

from jsphere.data.ijb_meta import read_ijb_meta
from jsphere.eval import ijb
from jsphere.eval.ijb_features import ijb_image_features
from jsphere.eval.pair_sets import PairSet, load_pair_set
from jsphere.eval.verification import OPENSPHERE_V1_FPRS, kfold_accuracy, l2_normalize, opensphere_metrics, xnorm

SET_TYPES = ("pairs", "bin", "ijb")


@dataclasses.dataclass
class Result:
    """A set's metrics (``{'ACC': ..., 'EER': ..., ...}``, percentages) and its ROC curve: ``fpr``, ``tpr`` [K]."""

    metrics: dict[str, float]
    fpr: np.ndarray
    tpr: np.ndarray


def check_set(set_cfg: Mapping[str, Any], where: str) -> None:
    """A set entry names its ``name``, a known ``type`` and an existing ``path``."""
    for key in ("name", "type", "path"):
        if not set_cfg.get(key):
            raise ValueError(f"{where} has no {key!r}")
    if set_cfg["type"] not in SET_TYPES:
        raise ValueError(f"{where}.type={set_cfg['type']!r} is not one of {SET_TYPES}")
    path = Path(set_cfg["path"]).expanduser()
    if not path.exists():
        relative = "" if path.is_absolute() else f" (relative to the current folder, {Path.cwd()})"
        raise FileNotFoundError(f"{where} ({set_cfg['name']}): path {set_cfg['path']!r} does not exist{relative}. "
                                f"{_where_to_get(set_cfg, path)}; or give its path with --{where}.path=...")


def _where_to_get(set_cfg: Mapping[str, Any], path: Path) -> str:
    """Where the published files of a missing set come from (nothing is downloaded at run time)."""
    if set_cfg["type"] == "bin":
        return (f"insightface's {path.name} comes with its training sets (faces_emore, ms1m-retinaface-t1 ...: "
                "lfw.bin, agedb_30.bin, calfw.bin, cplfw.bin, cfp_fp.bin; see insightface's recognition/_datasets_)")
    if set_cfg["type"] == "ijb":
        return ("IJB-B/C come as OpenSphere's IJB.tar (its scripts/dataset_setup.sh, into data/test) or insightface's "
                "IJB release (meta/ and loose_crop/)")
    if path.name.endswith("_ann.txt"):
        return ("OpenSphere's pair lists and aligned images are its validation.tar (its scripts/dataset_setup.sh, into "
                "data/val)")
    return ("the pair file is published with its set (LFW's pairs.txt, CALFW's / CPLFW's pairs files, AgeDB's "
            "protocol .mat), the images aligned to 112x112 under the published names")


class PairEvaluator:
    """Verification on a pair set (pair file or ``.bin``), read once; ``evaluator(embedder) -> Result`` embeds the
    set's images [N, 112, 112, 3] with a ``jsphere.Embedder`` and scores its pairs (both protocols)."""

    def __init__(self, set_cfg: Mapping[str, Any], eval_cfg: Mapping[str, Any] | None = None):
        eval_cfg = eval_cfg or {}
        self.name = set_cfg.get("name", str(set_cfg["path"]))
        self.pairs: PairSet = load_pair_set(set_cfg)
        self.flip = set_cfg.get("flip", eval_cfg.get("flip", "sum"))
        self.fprs = tuple(set_cfg.get("fprs", eval_cfg.get("fprs", OPENSPHERE_V1_FPRS)))
        self.batch_size = eval_cfg.get("batch_size")

    def score(self, features: np.ndarray) -> Result:
        """The metrics of per-image features (from any framework) on this set's pairs."""
        unit = l2_normalize(np.asarray(features, np.float64))
        first, second = unit[self.pairs.pairs[:, 0]], unit[self.pairs.pairs[:, 1]]
        scores = np.sum(first * second, axis=1)
        labels = self.pairs.labels
        values = opensphere_metrics(scores, labels, self.fprs)
        if self.pairs.folds is not None or len(labels) >= 10:
            std = kfold_accuracy(first, second, labels, 10, self.pairs.folds)
            values.update({"std_acc": std["acc_mean"], "std_acc_std": std["acc_std"]})
        values["XNorm"] = xnorm(features)
        fpr, tpr, _ = skmetrics.roc_curve(labels, scores)
        return Result(values, fpr, tpr)

    def __call__(self, embedder, label: str = "") -> Result:
        features = embedder.embed(self.pairs.images, flip=self.flip, batch_size=self.batch_size,
                                  label=f"of {self.name} embedded{label}")
        return self.score(features)


class IJBEvaluator:
    """IJB-B/C 1:1 verification and 1:N identification; the meta files are read once (the crops, too many to
    keep, are read, aligned and embedded on every call: ``evaluator(embedder) -> Result``)."""

    def __init__(self, set_cfg: Mapping[str, Any], eval_cfg: Mapping[str, Any] | None = None):
        self.set_cfg, self.eval_cfg = dict(set_cfg), dict(eval_cfg or {})
        self.name = set_cfg["name"]
        self.meta = read_ijb_meta(Path(set_cfg["path"]), set_cfg.get("ijb") or self.name.lower().replace("-", ""))

    def __call__(self, embedder, label: str = "") -> Result:
        meta = self.meta
        feats = ijb_image_features(embedder, meta, self.eval_cfg)
        ids, templates = ijb.template_features(feats, meta.templates, meta.medias, meta.faceness,
                                               self.set_cfg.get("pooling", "insightface"))
        scores = ijb.verification_scores(ids, templates, meta.pairs)
        values = ijb.tar_at_far(scores, meta.pair_labels)
        if meta.probe is not None and meta.galleries:
            for protocol in ("opensphere", "standard"):
                for k, v in ijb.identification(ids, templates, meta.galleries, meta.probe, protocol).items():
                    values[f"1:N {protocol} {k}"] = v
        fpr, tpr, _ = skmetrics.roc_curve(meta.pair_labels, scores)
        return Result(values, fpr, tpr)


def make_evaluator(set_cfg: Mapping[str, Any], eval_cfg: Mapping[str, Any] | None = None
                   ) -> PairEvaluator | IJBEvaluator:
    """The evaluator of one configured set (``name``, ``type``: pairs | bin | ijb, ``path``, ...)."""
    kind = set_cfg.get("type", "pairs")
    if kind not in SET_TYPES:
        raise ValueError(f"set {set_cfg.get('name')!r}: type {kind!r} is not one of {SET_TYPES}")
    return IJBEvaluator(set_cfg, eval_cfg) if kind == "ijb" else PairEvaluator(set_cfg, eval_cfg)
