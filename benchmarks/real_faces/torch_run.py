"""One PyTorch run of a recipe: the reference codebase's loop (``converters.torch_reference.loops``) from the
weights jsphere starts from at the same seed, on the same training list read by an independent data path
(``torch_data``), validated every ``val_every`` steps and at the end with jsphere's evaluator on the same pairs.

Logged like jsphere's runs (``metrics.jsonl`` with the same keys), so the report reads both alike. An interrupted
PyTorch run starts again from step 0 (the reference loops keep their optimizer inside the loop).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import torch

from benchmarks.real_faces import recipes, runs, split, torch_data, twin
from benchmarks.real_faces.torch_embed import TorchEmbedder
from jsphere.data.sources import read_list
from jsphere.errors import UserError

TORCH_THREADS = 2


def run(recipe: str, seed: int, out: Path, lfw: Path, steps: int | None = None) -> dict:
    """Train the run from scratch, write and return its ``result.json``."""
    from jsphere.eval.evaluators import PairEvaluator

    torch.set_num_threads(TORCH_THREADS)
    config = recipes.config(recipe, steps)
    config.seed = seed
    family = recipes.get(recipe).family
    folder = runs.run_dir(out, recipe, "torch", seed)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (runs.METRICS, "model.pt"):
        (folder / stale).unlink(missing_ok=True)
    train_list = runs.split_dir(out) / split.TRAIN_LIST
    dataset = torch_data.ClassDataset(train_list, lfw, flip=config.data.flip)
    if read_list(train_list, lfw).class_names != dataset.class_names:
        raise UserError(f"{train_list}: jsphere's list reader and the PyTorch dataset number its classes differently")
    setup, state = twin.jsphere_initial(config, len(dataset.class_names))
    backbone = twin.torch_backbone(config, setup, state)
    head = twin.torch_head(config, family, state, len(dataset.class_names))
    del setup, state
    evaluator = PairEvaluator(runs.val_set(out, lfw))
    embedder = TorchEmbedder(backbone)
    loop = twin.torch_loop(family, config, backbone, head,
                           torch_data.batches(dataset, config.batch_size, config.total_steps, seed))
    start = time.perf_counter()
    with open(folder / runs.METRICS, "w") as metrics, open(folder / "run.log", "a") as log:
        def write(step: int, values: dict[str, float]) -> None:
            metrics.write(json.dumps({"step": step, **values}) + "\n")
            metrics.flush()
            log.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()) + "\n")
            log.flush()

        def validate(step: int) -> dict[str, float]:
            values = evaluator(embedder).metrics
            write(step, {f"{runs.VAL_PREFIX}{k}": v for k, v in values.items()})
            return values

        log.write(f"PyTorch {family} loop, {recipe}, seed {seed}, {config.total_steps} steps, {TORCH_THREADS} "
                  f"threads\n")
        step0 = validate(0)
        window: list[tuple[float, float, float]] = []
        step = 0
        while True:
            tick = time.perf_counter()
            try:
                loss, lr = next(loop)
            except StopIteration:
                break
            window.append((loss, lr, time.perf_counter() - tick))
            step += 1
            if step % config.log_every == 0 or step == config.total_steps:
                losses, lrs, times = zip(*window, strict=True)
                write(step, {"train/loss": statistics.fmean(losses), "train/lr": statistics.fmean(lrs),
                             "train/img_per_s": config.batch_size * len(times) / sum(times)})
                window = []
            if not math.isfinite(loss):
                raise UserError(f"PyTorch loss is {loss} at step {step} ({recipe}, seed {seed})")
            if step % config.val_every == 0 or step == config.total_steps:
                final = validate(step)
    wall = time.perf_counter() - start
    torch.save({"backbone": backbone.state_dict(), "head": head.state_dict()}, folder / "model.pt")
    rows = runs.read_metrics(folder / runs.METRICS)
    result = {
        "recipe": recipe, "framework": "torch", "seed": seed, "steps": step, "batch_size": config.batch_size,
        "wall_s": wall, "attempts": 1, "time_per_step_s": runs.median_step_time(rows, config.batch_size),
        "final": final, "step0": step0, "machine": runs.machine(),
    }
    runs.write_json(folder / runs.RESULT, result)
    return result
