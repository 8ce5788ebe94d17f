"""Every orbax call of jsphere: reading a step's items and writing them, for inference (``read_arrays``,
``write_step``) and for training (``TrainCheckpointer``); the only module that imports orbax.

Each read goes through the readable rule (``integrity``): a step that does not read back raises
``UnreadableCheckpoint`` naming it; a write that fails raises one ``CheckpointWriteError``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy as pp
from orbax.checkpoint.checkpoint_managers import save_decision_policy as sdp

from jsphere.checkpoint import integrity
from jsphere.checkpoint.integrity import UnreadableCheckpoint
from jsphere.checkpoint.layout import CHECKPOINTS, DATA, META, TRAIN, UNREADABLE, WEIGHTS, step_folders


def read_meta(step_dir: Path) -> dict[str, Any]:
    """The ``meta`` item of a step, checksums included; UnreadableCheckpoint if it does not read back."""
    if not (step_dir / META).is_dir():
        raise UnreadableCheckpoint(step_dir, f"its '{META}' item is missing")
    try:
        with integrity.reading_some_items(), ocp.Checkpointer(ocp.JsonCheckpointHandler()) as reader:
            meta = reader.restore(step_dir / META)
    except Exception as e:  # a truncated or foreign metadata file
        raise UnreadableCheckpoint(step_dir, f"its '{META}' item does not read back: {integrity.why(e)}") from e
    if not isinstance(meta, dict):
        raise UnreadableCheckpoint(step_dir, f"its '{META}' item is not a JSON object")
    return dict(meta)


def _as_numpy(metadata: Any) -> Any:
    return jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), getattr(metadata, "tree", metadata))


def read_arrays(root: Path, step: int, items: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(meta, {item: numpy tree})`` of a step that is readable by the rule, else UnreadableCheckpoint."""
    step_dir = root / str(step)
    integrity.check_items(step_dir, {}, items)  # what this reader needs, before reading anything
    meta = read_meta(step_dir)
    integrity.check_items(step_dir, meta, items)
    handlers = {item: ocp.PyTreeCheckpointHandler() for item in items}
    try:
        with integrity.reading_some_items(), ocp.CheckpointManager(root, item_names=items, item_handlers=handlers) as m:
            metadata = m.item_metadata(step)
            restored = m.restore(step, args=ocp.args.Composite(**{  # as numpy, in the saved dtypes, whatever mesh
                item: ocp.args.PyTreeRestore(restore_args=_as_numpy(metadata[item])) for item in items}))
    except Exception as e:  # orbax / tensorstore: a truncated or foreign file
        raise UnreadableCheckpoint(step_dir, integrity.why(e)) from e
    arrays = {item: integrity.to_numpy(restored[item]) for item in items}
    for item in items:
        integrity.verify(step_dir, meta, item, arrays[item])
    return meta, arrays


def newest_readable(root: Path, items: tuple[str, ...], *, skip: int | None = None,
                    at_most: int | None = None) -> int | None:
    """The newest step of ``root`` (not ``skip``, up to ``at_most``) whose ``items`` read back, or None."""
    for step in reversed(step_folders(root)):
        if step != skip and (at_most is None or step <= at_most):
            try:
                read_arrays(root, step, items)
            except UnreadableCheckpoint:
                continue
            return step
    return None


def write_step(root: Path, step: int, arrays: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``{item: numpy tree}`` and ``meta`` (their checksums recorded) as ``root/<step>``, synchronously;
    CheckpointWriteError if that fails."""
    args = {item: ocp.args.StandardSave(tree) for item, tree in arrays.items()}
    args[META] = ocp.args.JsonSave(meta)
    try:
        with integrity.quiet_orbax_errors(), ocp.CheckpointManager(
                root, options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False)) as m:
            m.save(int(step), args=ocp.args.Composite(**args), force=True)
            m.wait_until_finished()
    except Exception as e:
        raise integrity.write_error(root, step, e, previous=None) from e
    return root / str(step)


class TrainCheckpointer:
    """Training checkpoints of a workdir: weights + optimizer/RNG state + data iterator + metadata with checksums.

    Saves are asynchronous and atomic (orbax writes to a temporary folder and renames it when complete), so a
    kill at any moment leaves the previous checkpoint usable. When to save is orbax's decision policy: every
    ``every_steps``, at each of ``save_steps`` (OpenSphere's ``save_iters``), at ``final_step``, and when the
    job is preempted (several processes: JAX's preemption service, see ``reached_preemption``). The last
    ``keep`` checkpoints are kept, plus every step in ``save_steps``. Multi-process: every process calls
    ``save`` and ``restore``; orbax writes each process's shards and process 0 the metadata.

    A save that fails (disk full, read-only or immutable folder) raises one ``CheckpointWriteError`` naming the
    step that is kept, at the next ``check``, ``save``, ``wait`` or ``close``; orbax's own error records are
    hidden. Step folders are created synchronously, so a folder that cannot be created fails the ``save`` itself.
    """

    def __init__(self, workdir: str | os.PathLike, *, keep: int = 3, every_steps: int = 0,
                 save_steps: tuple[int, ...] = (), final_step: int | None = None, async_save: bool = True,
                 with_data: bool = True):
        self.root = Path(workdir).expanduser().resolve() / CHECKPOINTS
        keep_policies = [pp.LatestN(keep)] + ([pp.CustomSteps(list(save_steps))] if save_steps else [])
        save_policies = [sdp.PreemptionCheckpointingPolicy(),
                         sdp.SpecificStepsPolicy(set(save_steps) | ({final_step} if final_step else set()))]
        if every_steps:
            save_policies.append(sdp.FixedIntervalPolicy(every_steps))
        self.with_data = with_data
        self._async = async_save
        self._pending: int | None = None  # the step whose save may still be running
        self._write_failed = False  # then orbax's abandoned writes stay quiet until the process exits
        integrity.hide_orbax_errors(True)
        self._manager = ocp.CheckpointManager(
            self.root, item_names=(WEIGHTS, TRAIN, META) + ((DATA,) if with_data else ()),
            item_handlers={DATA: grain.checkpoint.CheckpointHandler()} if with_data else None,
            options=ocp.CheckpointManagerOptions(
                enable_async_checkpointing=async_save, cleanup_tmp_directories=True,
                async_options=ocp.AsyncOptions(create_directories_asynchronously=False),
                preservation_policy=pp.AnyPreservationPolicy(keep_policies),
                save_decision_policy=sdp.AnySavePolicy(save_policies)))

    def should_save(self, step: int) -> bool:
        """Whether the policy saves ``step`` (an interval step, a listed step, the last one, a preemption)."""
        return self._manager.should_save(int(step))

    def reached_preemption(self, step: int) -> bool:
        """True on every process at the same step once any process of a multi-process job got SIGTERM (JAX's
        preemption service agrees on the step without a collective per step); False in a single process."""
        return self._manager.reached_preemption(int(step))

    def all_steps(self) -> list[int]:
        return step_folders(self.root)

    def _kept_before(self, step: int) -> int | None:
        return max((s for s in step_folders(self.root) if s < step), default=None)

    def save(self, step: int, *, weights: dict, train: dict, meta: dict, data_iterator: Any = None) -> None:
        """Start saving ``step`` with the checksums of its arrays (returns once the arrays are copied off the
        devices). CheckpointWriteError if the previous save or this one failed."""
        self.wait()
        items = (WEIGHTS, TRAIN, META) + ((DATA,) if self.with_data else ())
        args = {WEIGHTS: ocp.args.StandardSave(weights), TRAIN: ocp.args.StandardSave(train),
                META: ocp.args.JsonSave(integrity.with_checksums(meta, step, {WEIGHTS: weights, TRAIN: train}, items))}
        if self.with_data:
            args[DATA] = grain.checkpoint.CheckpointSave(data_iterator)
        try:
            self._manager.save(int(step), args=ocp.args.Composite(**args), force=True)
        except Exception as e:  # orbax raises what the file system or tensorstore raised
            self._write_failed = True
            raise integrity.write_error(self.root, step, e, self._kept_before(step)) from e
        self._pending = int(step)
        if not self._async:
            self.wait()

    def check(self) -> None:
        """CheckpointWriteError as soon as the save in progress has failed (cheap: called every step)."""
        if self._pending is not None and not self._manager.is_saving_in_progress():
            self.wait()

    def wait(self) -> None:
        """Wait for the save in progress; CheckpointWriteError if it failed (the previous checkpoint is kept)."""
        if self._pending is None:
            return
        step, self._pending = self._pending, None
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            self._write_failed = True
            raise integrity.write_error(self.root, step, e, self._kept_before(step)) from e
        if jax.process_index() == 0 and step not in step_folders(self.root):
            self._write_failed = True
            raise integrity.write_error(self.root, step, RuntimeError("orbax did not commit it"),
                                        self._kept_before(step))

    def restore(self, step: int, *, weights: dict, train: dict, data_iterator: Any = None) -> tuple[dict, dict]:
        """Restore ``step`` into arrays shaped and sharded like the ``weights``/``train`` templates, verified by the
        readable rule (UnreadableCheckpoint otherwise). The data iterator, if given, is restored in place."""
        step_dir = self.root / str(step)
        meta = read_meta(step_dir)
        with_data = self.with_data and data_iterator is not None
        integrity.check_items(step_dir, meta, (WEIGHTS, TRAIN) + ((DATA,) if with_data else ()))
        templates = {WEIGHTS: weights, TRAIN: train}
        args = {item: ocp.args.StandardRestore(integrity.abstract(tree, integrity.recorded_dtypes(meta, item)))
                for item, tree in templates.items()}
        if with_data:
            args[DATA] = grain.checkpoint.CheckpointRestore(data_iterator)
        try:
            restored = self._manager.restore(int(step), args=ocp.args.Composite(**args))
        except Exception as e:  # orbax and tensorstore raise plain Exceptions for unreadable data
            raise UnreadableCheckpoint(step_dir, integrity.why(e)) from e
        for item in templates:
            integrity.verify(step_dir, meta, item, restored[item])
        return integrity.cast_like(restored[WEIGHTS], weights), integrity.cast_like(restored[TRAIN], train)

    def restore_latest(self, *, weights: dict, train: dict, data_iterator: Any = None
                       ) -> tuple[int, dict, dict] | None:
        """Restore the newest checkpoint that is readable: ``(step, weights, train)``, or None without checkpoints.

        A newer step that is not (a damaged or truncated array file, a checksum mismatch, a missing item or
        manifest, a half-written or foreign numbered folder) is reported with a warning naming it and moved to
        ``<workdir>/checkpoints_unreadable/`` (kept for inspection, never deleted) so that training can write that
        step again. If no step reads back, nothing is moved and the error lists every step with its problem.
        """
        failures = []
        for step in reversed(self.all_steps()):
            try:
                restored_weights, restored_train = self.restore(step, weights=weights, train=train,
                                                                data_iterator=data_iterator)
            except Exception as e:  # UnreadableCheckpoint, or what grain raises for a foreign data item
                failures.append((step, e.reason if isinstance(e, UnreadableCheckpoint) else integrity.why(e)))
                logging.warning("checkpoint of step %d at %s does not read back (%s); trying the previous one",
                                step, self.root / str(step), failures[-1][1])
                continue
            agreed = integrity.agreed_step(step)
            if agreed != step:  # another process could not read this step
                restored_weights, restored_train = self.restore(agreed, weights=weights, train=train,
                                                                data_iterator=data_iterator)
            self._set_aside([s for s in self.all_steps() if s > agreed])
            return agreed, restored_weights, restored_train
        if failures:
            raise ValueError(f"no checkpoint in {self.root} reads back: " + "; ".join(
                f"step {s}: {reason}" for s, reason in failures) + ". Move the checkpoints folder away to start afresh")
        return None

    def newest_readable(self, at_most: int) -> int | None:
        """The newest step up to ``at_most`` whose weights and training state are readable, or None."""
        return newest_readable(self.root, (WEIGHTS, TRAIN), at_most=at_most)

    def _set_aside(self, steps: list[int]) -> None:
        """Move unusable steps out of the checkpoints folder (process 0 moves, every process waits)."""
        if not steps:
            return
        if jax.process_index() == 0:
            target = self.root.parent / UNREADABLE
            target.mkdir(exist_ok=True)
            for step in steps:
                destination = target / str(step)
                suffix = 0
                while destination.exists():
                    suffix += 1
                    destination = target / f"{step}.{suffix}"
                shutil.move(str(self.root / str(step)), str(destination))
                logging.warning("moved the unreadable checkpoint of step %d to %s", step, destination)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("jsphere_checkpoints_set_aside")
        self._manager.reload()

    def close(self) -> None:
        """Wait for the save in progress (CheckpointWriteError if it failed) and stop orbax's threads. After a failed
        write, orbax's error records stay hidden: its abandoned writes report themselves until the process exits."""
        try:
            self.wait()
        finally:
            try:
                self._manager.close()
            finally:
                if not self._write_failed:
                    integrity.hide_orbax_errors(False)
