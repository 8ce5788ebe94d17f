"""``python -m jsphere.main --mode=eval --config=configs/test/<set>.py --workdir=DIR``: evaluate checkpoints.

For each configured set (``config.eval.sets``: pair lists, ``.bin`` files, IJB-B/C) and each of the last
``config.eval.last_k`` checkpoints of ``DIR`` (OpenSphere v1 averages the last 5), compute the metrics of every
configured protocol, print a table (one row per checkpoint, plus ``avg``), and write ``DIR/eval/<set>.json``,
``DIR/eval/<set>.txt`` and ``DIR/eval/<set>_roc.png``. The model is rebuilt from the checkpoint's metadata,
so converted PyTorch checkpoints evaluate the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skmetrics

from jsphere import checkpoint
from jsphere.eval import report
from jsphere.eval.pairs import load_pair_set, pair_metrics
from jsphere.eval.verification import OPENSPHERE_FPRS, l2_normalize
from jsphere.inference import Embedder

SET_TYPES = ("pairs", "bin", "ijb")


def _check_sets(sets) -> None:
    if not sets:
        raise ValueError("config.eval.sets is empty: nothing to evaluate")
    for i, s in enumerate(sets):
        for key in ("name", "type", "path"):
            if not s.get(key):
                raise ValueError(f"config.eval.sets[{i}] has no {key!r}")
        if s["type"] not in SET_TYPES:
            raise ValueError(f"config.eval.sets[{i}].type={s['type']!r} is not one of {SET_TYPES}")
        if not Path(s["path"]).expanduser().exists():
            raise FileNotFoundError(f"config.eval.sets[{i}] ({s['name']}): path {s['path']!r} does not exist")


def _pairs_rows(embedder: Embedder, set_cfg, eval_cfg) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    pair_set = load_pair_set(set_cfg)
    feats = embedder.embed(pair_set.images, flip=eval_cfg.get("flip", "sum"), batch_size=eval_cfg.get("batch_size"),
                           label=f"of {set_cfg['name']} embedded (step {embedder.step})")
    values = pair_metrics(feats, pair_set.pairs, pair_set.labels, tuple(eval_cfg.get("fprs", OPENSPHERE_FPRS)),
                          folds=pair_set.folds)
    unit = l2_normalize(feats)
    scores = np.sum(unit[pair_set.pairs[:, 0]] * unit[pair_set.pairs[:, 1]], axis=1)
    fpr, tpr, _ = skmetrics.roc_curve(pair_set.labels, scores)
    return values, (fpr, tpr)


def _ijb_rows(embedder: Embedder, set_cfg, eval_cfg) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    from jsphere.eval import ijb
    from jsphere.eval.ijb_data import ijb_image_features

    meta, feats = ijb_image_features(embedder, set_cfg, eval_cfg)
    ids, templates = ijb.template_features(feats, meta.templates, meta.medias, meta.faceness,
                                           set_cfg.get("pooling", "insightface"))
    scores = ijb.verification_scores(ids, templates, meta.pairs)
    values = ijb.tar_at_far(scores, meta.pair_labels)
    if meta.probe is not None and meta.galleries:
        for protocol in ("opensphere", "standard"):
            for k, v in ijb.identification(ids, templates, meta.galleries, meta.probe, protocol).items():
                values[f"1:N {protocol} {k}"] = v
    fpr, tpr, _ = skmetrics.roc_curve(meta.pair_labels, scores)
    return values, (fpr, tpr)


def evaluate(config, workdir: str) -> dict[str, Any]:
    """Evaluate the last ``config.eval.last_k`` checkpoints of ``workdir`` on every set; return the tables."""
    eval_cfg = config.eval
    sets = [dict(s) for s in eval_cfg.sets]
    _check_sets(sets)
    steps = checkpoint.list_steps(workdir)[-int(eval_cfg.get("last_k", 1)):]
    out_dir = Path(workdir) / "eval"
    results = {}
    for set_cfg in sets:
        rows, curves = {}, {}
        for step in steps:
            embedder = Embedder.from_checkpoint(workdir, step=step, batch_size=int(eval_cfg.get("batch_size", 64)),
                                                progress=True)
            run = _ijb_rows if set_cfg["type"] == "ijb" else _pairs_rows
            rows[f"step {step}"], curves[f"step {step}"] = run(embedder, set_cfg, eval_cfg)
        title = f"{set_cfg['name']} ({workdir}); ACC/EER/AUC/TPR@FPR: OpenSphere protocol (best threshold on the " \
                "whole set); std_acc: standard 10-fold protocol; all x100"
        rows = report.with_average(rows)
        text = report.table(rows, title=title)
        print(text, flush=True)
        report.write_report(out_dir, set_cfg["name"], rows, text)
        report.roc_png(out_dir / f"{set_cfg['name']}_roc.png", curves, title=set_cfg["name"])
        results[set_cfg["name"]] = rows
    return results
