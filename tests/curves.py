"""Training curves from a workdir's metrics.jsonl, and the comparison of two runs that differ only in rounding."""

import json
from pathlib import Path

import numpy as np

KEYS = ("train/loss", "train/grad_norm", "train/bkb_grad", "train/head_grad")


def read_curves(workdir) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    return {k: np.array([r[k] for r in rows if k in r]) for k in KEYS}


def assert_same_training(curves: dict, reference: dict, *, steps: int) -> None:
    """Equal up to float32 summation order: loss, global and per-module gradient norms of the first ``steps``.

    Only the summation order differs between the runs (device count, process count, CPU kernels): the compared
    quantities agree to ~1e-6 on any CPU, so rtol 1e-4 leaves a 100x margin, while reading another batch,
    dropping a gradient all-reduce or a stale optimizer state changes them by percents.
    """
    assert len(curves["train/loss"]) >= steps and len(reference["train/loss"]) >= steps
    for key, ref in reference.items():
        np.testing.assert_allclose(curves[key][:steps], ref[:steps], rtol=1e-4, err_msg=key)
