"""Training: ``train_and_evaluate(config, workdir)``.

Read top to bottom, in the order a run happens: check the config, build the mesh, the input, the model,
head and optimizer, the jit-compiled functional train step, restore (own workdir -> ``config.init_from`` ->
scratch), then the loop with logging, validation, checkpoints, a NaN guard and preemption.

The state and the step live in ``train_state`` (proxy heads) and ``simple_trainer`` (SimPLE).
"""

from __future__ import annotations

import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from jsphere import checkpoint, config_check, observe, parallel, simple_trainer, train_state


class Preempted(Exception):
    """Raised after the checkpoint of a SIGTERM-interrupted run is safely written."""


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or Inf; the message names the step and the last good checkpoint."""


# ---------------------------------------------------------------------------------------- preemption
class _SigtermFlag:
    """Set by SIGTERM; the loop checks it at step boundaries, saves and exits."""

    def __init__(self):
        self.raised = False
        self._previous = None

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread (e.g. a test harness): no handler
            self._previous = None
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _preemption_requested(flag: _SigtermFlag, step: int) -> bool:
    """True on every process at the same step once any process received SIGTERM."""
    if jax.process_count() == 1:
        return flag.raised
    from jax.experimental import multihost_utils

    return bool(multihost_utils.process_allgather(np.asarray(flag.raised)).any())


# ---------------------------------------------------------------------------------------------- loop
class _Window:
    """Running means of the step metrics between two log lines, and the image throughput."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0
        self.start = time.perf_counter()
        self.images = 0

    def add(self, metrics: dict[str, float], images: int):
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1
        self.images += images

    def means(self) -> dict[str, float]:
        out = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        out["img_per_s"] = self.images / max(time.perf_counter() - self.start, 1e-9)
        return out


def _should_save(step: int, config: ml_collections.ConfigDict) -> bool:
    every = config.checkpoint.every_steps
    return step == config.total_steps or step in tuple(config.checkpoint.save_steps) or (every and step % every == 0)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train ``config`` in ``workdir`` (resuming from its last checkpoint) and return the final metrics."""
    from jsphere.data import pipeline

    workdir = str(config_check.validate_config(config, workdir))
    is_main = jax.process_index() == 0

    # ---- mesh
    mesh = parallel.make_mesh(config.num_devices or None)
    parallel.check_batch_divisible(config.batch_size, mesh, jax.process_count())
    logging.info("%s", parallel.describe(mesh))

    # ---- input
    iterator, data_info = pipeline.make_train_iterator(
        config.data, global_batch_size=config.batch_size, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count())
    num_classes = int(data_info.num_classes)

    # ---- model, head, optimizer, state
    saved_rows = None
    if config.head.sharded and checkpoint.has_checkpoint(workdir):
        saved_rows = (checkpoint.load_meta(workdir).get("head") or {}).get("padded_rows")
    setup = train_state.Setup(config, mesh, num_classes, saved_head_rows=saved_rows)
    state = setup.initial_state()
    if config.trainer == "simple":
        state = simple_trainer.extend_state(setup, state)
    head_params = sum(int(np.size(x)) for x in jax.tree.leaves(state["params"]["head"]))
    if is_main:
        print(f"jsphere: {config.model.name} ({setup.param_count:,} parameters) + {config.head.name} head "
              f"({num_classes:,} classes, {head_params:,} parameters); {data_info.num_images:,} images; "
              f"global batch {config.batch_size} = {config.batch_size // mesh.devices.size} per device x "
              f"{mesh.devices.size} devices; {config.total_steps:,} steps", flush=True)
        (Path(workdir) / "config.json").write_text(config.to_json_best_effort(indent=2))

    # ---- restore: own workdir -> init_from -> scratch
    ckpt = checkpoint.TrainCheckpointer(workdir, keep=config.checkpoint.keep,
                                        save_steps=tuple(config.checkpoint.save_steps),
                                        async_save=config.checkpoint.async_save)
    meta = train_state.model_meta(config, num_classes, setup.head)
    restored = ckpt.restore_latest(weights=train_state.weights_item(setup, state),
                                   train=train_state.train_item(state), data_iterator=iterator)
    if restored is not None:
        start, weights, train = restored
        state = train_state.with_weights(setup, {**state, **train}, weights)
        logging.info("resumed from %s/checkpoints/%d", workdir, start)
        if is_main:
            print(f"jsphere: resuming from step {start}", flush=True)
    elif config.init_from:
        state = train_state.init_from_checkpoint(setup, state, config.init_from)
    start = int(state["step"])

    # ---- evaluation hooks
    writer = observe.MetricWriter(workdir, enabled=is_main)
    validator = _make_validator(setup, config) if config.val else None

    def validate(step: int, state: dict) -> dict[str, float]:
        if validator is None:
            return {}
        results = validator(state)
        writer.write(step, results, prefix="val/")
        if is_main:
            print(f"jsphere: step {step} validation " + ", ".join(f"{k} {v:.3f}" for k, v in results.items()),
                  flush=True)
        return results

    train_step = (simple_trainer.make_train_step(setup) if config.trainer == "simple"
                  else train_state.make_train_step(setup))
    final_val: dict[str, float] = {}
    if validator is not None and start == 0 and config.get("val_at_start", False):
        final_val = validate(0, state)

    # ---- train loop
    bar = observe.ProgressBar(config.total_steps, enabled=is_main and config.progress_bar)
    window = _Window()
    pending = None
    last_saved = start if start else None
    t_start = time.perf_counter()
    last_metrics: dict[str, float] = {}
    corrupt_skipped = 0  # unreadable images replaced by the pipeline (config.data.on_corrupt='skip')
    with _SigtermFlag() as sigterm:
        step = start
        try:
            while step < config.total_steps:
                local = next(iterator)
                corrupt_skipped += int(np.sum(local.get("corrupt", 0)))
                batch = parallel.global_batch({"image": local["image"], "label": local["label"]}, mesh)
                state, metrics = train_step(state, batch)
                step += 1
                if pending is not None:
                    last_metrics = _consume(pending, window, last_saved, workdir, config)
                pending = (step, metrics)
                if step % config.log_every == 0 or step == config.total_steps:
                    last_metrics = _consume(pending, window, last_saved, workdir, config)
                    pending = None
                    writer.write(step, {**window.means(), "corrupt_images_skipped": corrupt_skipped}, prefix="train/")
                    window = _Window()
                if last_metrics:
                    elapsed = time.perf_counter() - t_start
                    rate = (step - start) / max(elapsed, 1e-9)
                    bar.update(step, loss=last_metrics["loss"], lr=last_metrics["lr"],
                               img_per_s=rate * config.batch_size, eta_s=(config.total_steps - step) / max(rate, 1e-9),
                               force=step % config.log_every == 0)
                if config.val and (step % config.val_every == 0 or step == config.total_steps):
                    final_val = validate(step, state)
                preempt = _preemption_requested(sigterm, step)
                if _should_save(step, config) or preempt:
                    if pending is not None:  # never save a state whose loss was not checked
                        last_metrics = _consume(pending, window, last_saved, workdir, config)
                        pending = None
                    ckpt.save(step, weights=train_state.weights_item(setup, state),
                              train=train_state.train_item(state), meta=meta, data_iterator=iterator)
                    last_saved = step
                if preempt:
                    ckpt.wait()
                    raise Preempted(f"SIGTERM received: saved the checkpoint of step {step} in {workdir}; "
                                    "rerun the same command to resume")
            if pending is not None:
                last_metrics = _consume(pending, window, last_saved, workdir, config)
        finally:
            bar.close()
            ckpt.wait()
            ckpt.close()
            writer.close()
            iterator_close = getattr(iterator, "close", None)
            if iterator_close:
                iterator_close()
    result = {"step": step, **{f"train/{k}": v for k, v in last_metrics.items()},
              **{f"val/{k}": v for k, v in final_val.items()}}
    return result


def _consume(pending, window: _Window, last_saved, workdir: str, config) -> dict[str, float]:
    """Fetch a finished step's metrics, stop on a non-finite loss, add them to the log window."""
    step, metrics = pending
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not math.isfinite(values["loss"]):
        where = (f"the last good checkpoint is {workdir}/checkpoints/{last_saved}" if last_saved is not None
                 else "no checkpoint was saved yet")
        raise NonFiniteLoss(f"loss is {values['loss']} at step {step}; {where}. Lower config.optim.lr or set "
                            "config.optim.clip_grad_norm, then rerun (it resumes from that checkpoint).")
    window.add(values, config.batch_size)
    return values


def _make_validator(setup: train_state.Setup, config: ml_collections.ConfigDict):
    """Verification on the configured pair sets with the live weights (flip TTA, OpenSphere ACC)."""
    from jsphere.eval.pairs import evaluate_pair_set
    from jsphere.inference import Embedder

    def run(state: dict) -> dict[str, float]:
        # this process's copy of the (replicated) weights: every process validates on its own devices
        local = jax.tree.map(lambda a: a.addressable_data(0),
                             (state["params"]["backbone"], state["frozen"], state["batch_stats"]))
        model = setup.merge(*local, train=False)
        embedder = Embedder(model)
        results = {}
        for val_set in config.val:
            metrics = evaluate_pair_set(embedder, val_set)
            for key, value in metrics.items():
                results[f"{val_set['name']}/{key}"] = value
        return results

    return run
