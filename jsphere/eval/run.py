"""``python -m jsphere.main --mode=eval --config=configs/test/<set>.py --workdir=DIR``: evaluate a run's checkpoints.

For each of the last ``config.eval.last_k`` checkpoints of ``DIR`` (OpenSphere v1 averages the last 5), loaded
once, and each configured set (``config.eval.sets``: pair files, ``.bin`` files, IJB-B/C), read once, compute
the metrics of every protocol; print a table per set (one row per checkpoint, plus ``avg``), and write
``DIR/eval/<name>.json``, ``DIR/eval/<name>.txt`` and ``DIR/eval/<name>_roc.png`` (the set's ``name`` field, e.g.
``LFW``). The model is rebuilt from the
checkpoint's metadata, so converted PyTorch checkpoints evaluate the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ml_collections
from absl import logging

from jsphere import checkpoint, outputs
from jsphere.eval import report
from jsphere.eval.evaluators import check_set, make_evaluator
from jsphere.inference import Embedder

REPORTS = "eval"  # WORKDIR/eval/: the reports


def _load(workdir: str, step: int, batch_size: int) -> Embedder | None:
    """The embedder of a step, or None when the step is gone (deleted by a training run since it was listed)."""
    try:
        return Embedder.from_checkpoint(workdir, step=step, batch_size=batch_size, progress=True)
    except (FileNotFoundError, checkpoint.UnreadableCheckpoint):
        try:
            still_there = step in checkpoint.list_steps(workdir)
        except FileNotFoundError:  # no step left at all
            still_there = False
        if still_there:
            raise
        return None


def _steps(steps: list[int]) -> str:
    return ("step " if len(steps) == 1 else "steps ") + ", ".join(map(str, steps))


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Evaluate the last ``config.eval.last_k`` checkpoints of ``workdir`` on every set; return the tables."""
    eval_cfg = config.eval
    sets = [dict(s) for s in eval_cfg.sets]
    if not sets:
        raise ValueError("config.eval.sets is empty: nothing to evaluate")
    for i, set_cfg in enumerate(sets):
        check_set(set_cfg, f"config.eval.sets[{i}]")
    outputs.refuse_links_inside(workdir, flag="--workdir", within=REPORTS)
    steps = checkpoint.list_steps(workdir)[-int(eval_cfg.get("last_k", 1)):]
    evaluators = [make_evaluator(set_cfg, eval_cfg) for set_cfg in sets]
    rows = {s["name"]: {} for s in sets}
    curves = {s["name"]: {} for s in sets}
    gone = []  # steps deleted before they were read (a training run on this workdir keeps only its newest)
    for step in steps:
        embedder = _load(workdir, step, int(eval_cfg.get("batch_size", 64)))
        if embedder is None:
            gone.append(step)
            logging.warning("the checkpoint of step %d disappeared from %s before it was read (a training run on "
                            "this workdir deleted it?); evaluating the other steps", step, workdir)
            continue
        for set_cfg, evaluator in zip(sets, evaluators, strict=True):
            result = evaluator(embedder, label=f" (step {step})")
            rows[set_cfg["name"]][f"step {step}"] = result.metrics
            curves[set_cfg["name"]][f"step {step}"] = (result.fpr, result.tpr)
    if len(gone) == len(steps):
        raise FileNotFoundError(f"{workdir}: the checkpoints of {_steps(gone)} disappeared before "
                                "they were read (a training run on this workdir deletes its older ones); evaluate "
                                "once it has finished, or keep more with its --config.checkpoint.keep")
    missing = f"; {_steps(gone)} disappeared before being read" if gone else ""
    out_dir = Path(workdir) / REPORTS
    results = {}
    for name in rows:
        title = f"{name} ({workdir}); ACC/EER/AUC/TPR@FPR: OpenSphere protocol (best threshold on the whole set); " \
                f"std_acc: standard 10-fold protocol; all x100{missing}"
        table_rows = report.with_average(rows[name])
        text = report.table(table_rows, title=title)
        print(text, flush=True)
        report.write_report(out_dir, name, table_rows, text)
        report.roc_png(out_dir / f"{name}_roc.png", curves[name], title=name)
        results[name] = table_rows
    return results
