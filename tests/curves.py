"""Training curves from a workdir's metrics.jsonl, and the comparison of two runs that differ only in summation
order (device count, process count).

Why ``RTOL`` holds on any CPU: the compared runs use ``train_config.comparison``'s recipe, float64 throughout.
Another summation order (thread count, AVX2 or AVX-512 kernels, how many devices or processes split the batch and
add up its gradients and BatchNorm statistics) moves a float64 sum by ~1e-16 of its magnitude. Training amplifies
that, but smoothly: a float64 perturbation is ~1e9 times too small to flip a ReLU or any other branch, which is
what made float32 runs (perturbed by ~1e-7) drift apart 1000x in one BatchNorm update, by a CPU-dependent amount.
Measured on an Intel AVX-512 CPU with 1, 2 and 8 devices, 1 and 2 processes, 1 and 2 threads, jsphere's and XLA's
own convolutions: every compared value of six unclipped steps (first gradient norm 200-600) agrees to <= 8e-14; the
same runs in float32 differ by 1e-7 at step 1 and 2e-2 at step 6. ``RTOL`` = 1e-9 leaves 1e4 over the float64
figure for other CPUs, while a real fault moves these curves by 1e8 times more (measured, float64): BatchNorm
statistics of each device's share instead of the global batch by 0.6 at step 1 (``assert_different_training``
checks it in test_train), another batch (the same images, not mirrored) by 0.09 at step 1, 10 % other labels by
0.09 at their first step, a lost momentum buffer by 0.14 at the first step that uses it.
"""

import json
from pathlib import Path

import numpy as np

KEYS = ("train/loss", "train/grad_norm", "train/bkb_grad", "train/head_grad")
RTOL = 1e-9


def read_curves(workdir) -> dict[str, np.ndarray]:
    rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
    return {k: np.array([r[k] for r in rows if k in r]) for k in KEYS}


def relative_difference(curves: dict, reference: dict, *, steps: int) -> float:
    """The largest relative difference of loss, global and per-module gradient norms over the first ``steps``."""
    assert all(len(curves[k]) >= steps and len(reference[k]) >= steps for k in KEYS), (curves, reference)
    return max(float(np.max(np.abs(curves[k][:steps] - reference[k][:steps]) / np.abs(reference[k][:steps])))
               for k in KEYS)


def assert_same_training(curves: dict, reference: dict, *, steps: int) -> None:
    """Equal to ``RTOL`` (see the module docstring): loss, global and per-module gradient norms of ``steps``."""
    for key in KEYS:
        np.testing.assert_allclose(curves[key][:steps], reference[key][:steps], rtol=RTOL, err_msg=key)


def assert_different_training(curves: dict, reference: dict, *, steps: int) -> None:
    """The comparison's sensitivity: a run with a real fault differs by more than 1e5 ``RTOL``."""
    assert relative_difference(curves, reference, steps=steps) > 1e5 * RTOL
