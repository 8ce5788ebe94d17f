"""``--time-steps N``: the speed of each recipe's training step in both frameworks, for the table's time-per-step
column on a quiet machine.

Both frameworks train the recipe's model and head from the same initial weights on the same real batch (the first
``batch_size`` images of the training list, decoded once), with their own full step: jsphere's jitted train step
(``jsphere.trainers``), and one update of the reference loop (``converters.torch_reference.loops``: forward, loss,
backward, clipping, SGD, scheduler). After warm-up, they are timed in turns (``benchmarks.common.interleaved``), so
a shared machine's drifting load hits both alike; the data pipeline is not timed here (the runs' own
``time_per_step_s`` includes it).
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import jax
import numpy as np
import torch

from benchmarks.common import interleaved
from benchmarks.real_faces import recipes, runs, split, torch_data, twin
from benchmarks.real_faces.torch_run import TORCH_THREADS
from jsphere import parallel, trainers


def _real_batch(out: Path, lfw: Path, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    dataset = torch_data.ClassDataset(runs.split_dir(out) / split.TRAIN_LIST, lfw, flip=0.0)
    images, labels = zip(*(dataset[i] for i in range(batch_size)), strict=True)
    return torch.stack(images), torch.tensor(labels), len(dataset.class_names)


def time_recipe(recipe: str, out: Path, lfw: Path, rounds: int) -> dict:
    """Median seconds per training step of both frameworks (timed in turns) for one recipe."""
    torch.set_num_threads(TORCH_THREADS)
    config = recipes.config(recipe)
    family = recipes.get(recipe).family
    images, labels, num_classes = _real_batch(out, lfw, config.batch_size)
    setup, state = twin.jsphere_initial(config, num_classes)
    backbone = twin.torch_backbone(config, setup, state)
    head = twin.torch_head(config, family, state, num_classes)
    step = trainers.make_step(setup)
    batch = parallel.global_batch({"image": np.ascontiguousarray(images.numpy().transpose(0, 2, 3, 1)),
                                   "label": labels.numpy().astype(np.int32)}, setup.mesh)
    start = time.perf_counter()
    holder = {"state": state}
    holder["state"], metrics = step(holder["state"], batch)  # compiles (the state is donated)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    loop = twin.torch_loop(family, config, backbone, head, itertools.repeat((images, labels)))

    def jsphere_step() -> None:
        holder["state"], metrics = step(holder["state"], batch)
        jax.block_until_ready(metrics)

    seconds = interleaved({"jsphere": jsphere_step, "torch": lambda: next(loop)}, rounds)
    return {"recipe": recipe, "batch_size": config.batch_size, "rounds": rounds, "jsphere_compile_s": compile_s,
            **{f"{k}_s_per_step": v for k, v in seconds.items()}, "jsphere_over_torch": seconds["jsphere"] /
            seconds["torch"], "machine": runs.machine()}
