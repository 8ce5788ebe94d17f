"""Training: ``train_and_evaluate(config, workdir)``.

Read top to bottom, in the order a run happens: check the config, build the mesh, the input, the setup and
the state, the jit-compiled step of the configured trainer, restore (own workdir -> ``config.init_from`` ->
scratch), then the loop with logging, validation, checkpoints, a NaN guard and preemption. The state and the
step live in ``jsphere.trainers``.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from jsphere import checkpoint, config_check, observe, parallel, trainers
from jsphere.checkpoint import train_items, workdir_lock
from jsphere.data import pipeline
from jsphere.eval.evaluators import make_evaluator
from jsphere.inference import Embedder


class Preempted(Exception):
    """Raised after the checkpoint of a SIGTERM-interrupted run is safely written."""


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or Inf; the message names the step and the last good checkpoint."""


class _Preemption:
    """SIGTERM -> save and stop at a step boundary. One process: a SIGTERM handler sets a flag. Several
    processes: JAX's preemption service (started by ``jax.distributed``) catches the signal on whichever process
    gets it, and orbax's ``reached_preemption`` turns true at the same step on every process."""

    def __init__(self, ckpt: checkpoint.TrainCheckpointer):
        self.ckpt = ckpt
        self.multi_process = jax.process_count() > 1
        self.raised = False
        self._previous = None

    def __enter__(self) -> _Preemption:
        if not self.multi_process:
            try:
                self._previous = signal.signal(signal.SIGTERM, self._handle)
            except ValueError:  # not the main thread (e.g. a test harness): no handler
                self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def requested(self, step: int) -> bool:
        return self.ckpt.reached_preemption(step) if self.multi_process else self.raised

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class _Window:
    """Running means of the step metrics between two log lines, and the image throughput."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.count = 0
        self.start = time.perf_counter()
        self.images = 0

    def add(self, metrics: dict[str, float], images: int) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1
        self.images += images

    def means(self) -> dict[str, float]:
        out = {k: v / max(self.count, 1) for k, v in self.sums.items()}
        out["img_per_s"] = self.images / max(time.perf_counter() - self.start, 1e-9)
        return out


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Train ``config`` in ``workdir`` (resuming from its last checkpoint) and return the final metrics. The run
    holds the workdir's lock (``jsphere.checkpoint.workdir_lock``): a second run on the same workdir is refused."""
    workdir = str(config_check.validate_config(config, workdir))
    with workdir_lock.hold(workdir):
        return _train(config, workdir)


def _train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    is_main = jax.process_index() == 0

    # ---- mesh
    mesh = parallel.make_mesh(config.num_devices or None)
    parallel.check_batch_divisible(config.batch_size, mesh, jax.process_count())

    # ---- input
    iterator, data_info = pipeline.make_train_iterator(
        config.data, global_batch_size=config.batch_size, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count())
    num_classes = int(data_info.num_classes)

    # ---- setup, state and step
    saved_rows = train_items.saved_head_rows(workdir) if config.head.sharded else None
    setup = trainers.make_setup(config, mesh, num_classes, saved_head_rows=saved_rows)
    state = trainers.init_state(setup)
    train_step = trainers.make_step(setup)
    head_params = sum(int(np.size(x)) for x in jax.tree.leaves(state.params["head"]))
    logging.info("%s", parallel.describe(mesh))
    logging.info("%s (%s parameters) + %s head (%s classes, %s parameters); %s images; global batch %d = %d per "
                 "device x %d devices; %s steps", config.model.name, f"{setup.param_count:,}", config.head.name,
                 f"{num_classes:,}", f"{head_params:,}", f"{data_info.num_images:,}", config.batch_size,
                 config.batch_size // mesh.devices.size, mesh.devices.size, f"{config.total_steps:,}")
    if is_main:
        (Path(workdir) / "config.json").write_text(config.to_json_best_effort(indent=2))

    # ---- restore: own workdir -> init_from -> scratch
    ckpt = checkpoint.TrainCheckpointer(workdir, keep=config.checkpoint.keep, every_steps=config.checkpoint.every_steps,
                                        save_steps=tuple(config.checkpoint.save_steps), final_step=config.total_steps,
                                        async_save=config.checkpoint.async_save)
    meta = train_items.model_meta(config, setup)
    weights_target, train_target = train_items.restore_targets(setup, state, saved_rows)
    restored = ckpt.restore_latest(weights=weights_target, train=train_target, data_iterator=iterator)
    if restored is not None:
        start, weights, train = restored
        state = train_items.with_items(setup, state, weights, train)
        logging.info("resuming from step %d (%s/checkpoints/%d)", start, workdir, start)
    elif config.init_from:
        state = train_items.init_from_checkpoint(setup, state, config.init_from)
    start = int(state.step)

    # ---- evaluation hooks
    writer = observe.MetricWriter(workdir, enabled=is_main)
    validator = _make_validator(setup, config) if config.val else None

    def validate(step: int) -> dict[str, float]:
        results = validator(state)
        writer.write(step, results, prefix="val/")
        logging.info("step %d validation: %s", step, ", ".join(f"{k} {v:.3f}" for k, v in results.items()))
        return results

    final_val: dict[str, float] = {}
    if validator is not None and start == 0 and config.val_at_start:
        final_val = validate(0)

    # ---- train loop
    bar = observe.ProgressBar(config.total_steps, enabled=is_main and config.progress_bar)
    window = _Window()
    pending = None  # the last step's metrics, fetched one step later so the host never waits on the device
    last_saved = start if start else None
    t_start = time.perf_counter()
    last_metrics: dict[str, float] = {}
    corrupt_skipped = 0  # unreadable images replaced by the pipeline (config.data.on_corrupt='skip')
    step = start
    failed = False  # then that failure is the one told, whatever closing the logs and checkpoints raises after it
    with _Preemption(ckpt) as preemption:
        try:
            while step < config.total_steps:
                local = next(iterator)
                corrupt_skipped += int(np.sum(local.get("corrupt", 0)))
                batch = parallel.global_batch({"image": local["image"], "label": local["label"]}, mesh)
                state, metrics = train_step(state, batch)
                step += 1
                if pending is not None:
                    last_metrics = _consume(pending, window, config)
                pending = (step, metrics)
                if step % config.log_every == 0 or step == config.total_steps:
                    last_metrics = _consume(pending, window, config)
                    pending = None
                    writer.write(step, {**window.means(), "corrupt_images_skipped": corrupt_skipped}, prefix="train/")
                    window = _Window()
                if last_metrics:
                    rate = (step - start) / max(time.perf_counter() - t_start, 1e-9)
                    bar.update(step, loss=last_metrics["loss"], lr=last_metrics["lr"],
                               img_per_s=rate * config.batch_size, eta_s=(config.total_steps - step) / max(rate, 1e-9),
                               force=step % config.log_every == 0)
                if validator is not None and (step % config.val_every == 0 or step == config.total_steps):
                    final_val = validate(step)
                ckpt.check()  # a failed asynchronous save stops the run now, naming the checkpoint kept
                preempt = preemption.requested(step)
                if preempt or ckpt.should_save(step):
                    if pending is not None:  # never save a state whose loss was not checked
                        last_metrics = _consume(pending, window, config)
                        pending = None
                    ckpt.save(step, weights=train_items.weights_item(setup, state),
                              train=train_items.train_item(setup, state), meta=meta, data_iterator=iterator)
                    last_saved = step
                if preempt:
                    ckpt.wait()
                    raise Preempted(f"SIGTERM received: saved the checkpoint of step {step} in {workdir}; "
                                    "rerun the same command to resume")
            if pending is not None:
                last_metrics = _consume(pending, window, config)
        except NonFiniteLoss as e:
            failed = True
            raise NonFiniteLoss(f"{e}; {_after_non_finite(ckpt, last_saved)}") from None
        except BaseException:
            failed = True
            raise
        finally:
            bar.close()
            # ckpt.close waits for the last save: CheckpointWriteError if it failed
            _close_all((ckpt.close, writer.close, getattr(iterator, "close", None)), failing=failed)
    return {"step": step, **{f"train/{k}": v for k, v in last_metrics.items()},
            **{f"val/{k}": v for k, v in final_val.items()}}


def _close_all(closers, *, failing: bool) -> None:
    """Call every closer in turn; the first error is raised once all have run, unless the run is failing already:
    its error is then the one to tell (on a full disk, the metrics file's own would hide the checkpoint's)."""
    first = None
    for close in closers:
        if close is None:
            continue
        try:
            close()
        except Exception as e:
            first = first or e
    if first is not None and not failing:
        raise first


def _consume(pending, window: _Window, config) -> dict[str, float]:
    """Fetch a finished step's metrics, stop on a non-finite loss, add them to the log window."""
    step, metrics = pending
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if not math.isfinite(values["loss"]):
        raise NonFiniteLoss(f"loss is {values['loss']} at step {step}")
    window.add(values, config.batch_size)
    return values


def _after_non_finite(ckpt: checkpoint.TrainCheckpointer, last_saved: int | None) -> str:
    """What the NaN message says after the step: the newest checkpoint up to ``last_saved`` that reads back whole,
    checksums verified (after the save in progress has finished), which a rerun resumes from; or, when there is
    none, what a rerun does instead."""
    ckpt.wait()
    fix = "Lower config.optim.lr or set config.optim.clip_grad_norm, then rerun"
    good = ckpt.newest_readable(at_most=last_saved) if last_saved is not None else None
    if good is not None:
        return f"the last good checkpoint is {ckpt.root / str(good)}. {fix} (it resumes from that checkpoint)."
    if last_saved is None:
        return f"no checkpoint was saved yet. {fix} (it starts again from step 0)."
    return (f"no checkpoint up to step {last_saved} reads back. {fix}, after moving {ckpt.root} away (it starts "
            "again from step 0).")


def _make_validator(setup: trainers.Setup, config: ml_collections.ConfigDict):
    """Verification on the configured pair sets (read once) with the live weights to evaluate (the trainer's
    ``eval_weights`` when it has them)."""
    evaluators = [make_evaluator(val_set) for val_set in config.val]

    def run(state: trainers.TrainState) -> dict[str, float]:
        # this process's copy of the (replicated) weights: every process validates on its own devices
        embedder = Embedder(setup.eval_model(jax.tree.map(lambda a: a.addressable_data(0), state)))
        return {f"{evaluator.name}/{key}": value for evaluator in evaluators
                for key, value in evaluator(embedder).metrics.items()}

    return run
