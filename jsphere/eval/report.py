"""Evaluation reports: tables (one row per checkpoint plus ``avg``), JSON, text and ROC curve PNGs.

A set's reports are named after its ``name`` field, as given: ``configs/test/lfw.py`` names its set ``LFW``, so
``--mode=eval`` writes ``WORKDIR/eval/LFW.txt``, ``LFW.json`` and ``LFW_roc.png``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def table(rows: dict[str, dict[str, float]], columns: Sequence[str] | None = None, *, title: str = "") -> str:
    """Fixed-width table, one row per checkpoint label."""
    if not rows:
        return title
    columns = list(columns or next(iter(rows.values())).keys())
    width = max(12, *(len(c) + 2 for c in columns))
    head = f"{'checkpoint':<12}" + "".join(f"{c:>{width}}" for c in columns)
    lines = ([title] if title else []) + [head, "-" * len(head)]
    for label, values in rows.items():
        lines.append(f"{label:<12}" + "".join(f"{values.get(c, float('nan')):>{width}.3f}" for c in columns))
    return "\n".join(lines)


def with_average(rows: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``rows`` plus an ``avg`` row (the mean over checkpoints, as OpenSphere v1 reports) when there are several."""
    if len(rows) < 2:
        return dict(rows)
    columns = next(iter(rows.values())).keys()
    return {**rows, "avg": {c: float(np.mean([r[c] for r in rows.values() if c in r])) for c in columns}}


def roc_png(path: str | Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str) -> None:
    """ROC curves (log FPR) to a PNG; ``curves`` maps a label to (fpr, tpr). Drawn on a ``Figure`` of its own
    (matplotlib's object API: no pyplot state, no backend switched for the caller)."""
    fig = Figure(figsize=(5, 4), dpi=120)
    ax = fig.subplots()
    for label, (fpr, tpr) in curves.items():
        keep = fpr > 0
        ax.plot(fpr[keep], 100 * tpr[keep], label=label)
    ax.set_xscale("log")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def check_name(name: str) -> str:
    """``name`` if it can name a set's report files inside the report folder (one plain file name)."""
    if not name.strip() or name.strip(".") == "" or any(c in name for c in ("/", "\\", "\0")):
        raise ValueError(f"eval set name {name!r} cannot name its report files (eval/<name>.txt): give a plain "
                         "name such as 'LFW'")
    return name


def write_report(out_dir: str | Path, name: str, rows: dict[str, dict[str, float]], text: str) -> None:
    """``<out_dir>/<name>.json`` (the rows) and ``<out_dir>/<name>.txt`` (the table)."""
    check_name(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(rows, indent=2))
    (out / f"{name}.txt").write_text(text + "\n")
