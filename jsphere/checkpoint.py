"""Checkpoints on disk: the only module that imports orbax.

Layout of a jsphere checkpoint directory (a training workdir, or what ``converters.import_torch`` writes)::

    <dir>/checkpoints/<step>/weights/   pure dict {'backbone': nnx pure dict (params + batch stats),
                                                    'head': {'params': {...}, 'state': {...}}}
    <dir>/checkpoints/<step>/meta/      JSON {'model': {'name', 'embed_dim', 'kwargs'},
                                              'head': {'name', 'hparams', 'num_classes', 'feat_dim'} | None,
                                              'step', 'source'}
    (training adds items of its own beside these: optimizer state, RNG, data iterator)

``load_weights`` accepts the workdir, its ``checkpoints`` folder or one ``checkpoints/<step>`` folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orbax.checkpoint as ocp

CHECKPOINTS = "checkpoints"
WEIGHTS = "weights"
META = "meta"


@dataclasses.dataclass
class Weights:
    """What a checkpoint holds for inference and fine-tuning."""

    step: int
    meta: dict[str, Any]
    backbone: dict[str, Any]
    head: dict[str, Any] | None


def _complete_steps(root: Path) -> list[int]:
    """The numbered folders of ``root`` that hold metadata (orbax renames a step folder into place when done)."""
    return sorted(int(c.name) for c in root.iterdir() if c.name.isdigit() and (c / META).exists())


def _resolve(path: str | os.PathLike, step: int | None) -> tuple[Path, int]:
    """Return (checkpoints folder, step) for a workdir, a checkpoints folder or a step folder."""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise FileNotFoundError(f"checkpoint path {p} does not exist")
    if (p / CHECKPOINTS).is_dir():
        p = p / CHECKPOINTS
    elif p.name.isdigit() and (p / META).exists():
        if step is not None and step != int(p.name):
            raise ValueError(f"{p} is the checkpoint of step {p.name}, not {step}")
        return p.parent, int(p.name)
    steps = _complete_steps(p)
    if not steps:
        raise FileNotFoundError(
            f"{p} holds no jsphere checkpoint (expected {CHECKPOINTS}/<step>/{{{WEIGHTS},{META}}}); "
            "train one with `python -m jsphere.main` or import a .pth with `python -m converters.import_torch`"
        )
    if step is None:
        return p, steps[-1]
    if step not in steps:
        raise FileNotFoundError(f"{p} has no checkpoint for step {step}; available steps: {steps}")
    return p, step


def list_steps(path: str | os.PathLike) -> list[int]:
    """Steps with a complete checkpoint under ``path`` (workdir or checkpoints folder), ascending."""
    return _complete_steps(_resolve(path, None)[0])


def _to_numpy(tree: Any) -> Any:
    import jax

    return jax.tree.map(np.asarray, tree)


def save_weights(directory: str | os.PathLike, *, step: int, backbone: dict[str, Any], head: dict[str, Any] | None,
                 meta: dict[str, Any]) -> Path:
    """Write an inference checkpoint (backbone + optional head) as ``<directory>/checkpoints/<step>``."""
    root = Path(directory).expanduser().resolve() / CHECKPOINTS
    if (root / str(step)).exists():
        raise FileExistsError(f"{root / str(step)} already exists: choose another output folder or remove it")
    weights = {"backbone": _to_numpy(backbone), "head": _to_numpy(head) if head else {}}
    args = {WEIGHTS: ocp.args.StandardSave(weights), META: ocp.args.JsonSave({**meta, "step": int(step)})}
    with ocp.CheckpointManager(root, options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False)) as m:
        m.save(int(step), args=ocp.args.Composite(**args), force=True)
        m.wait_until_finished()
    return root / str(step)


@contextlib.contextmanager
def _reading_some_items():
    """Silence orbax's warning that the items we do not ask for (optimizer, data) exist but are not restored."""
    from absl import logging as absl_logging

    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(level)


def _host_target(metadata: Any) -> Any:
    """A restore target placing every saved array on this process's first device, whatever mesh saved it."""
    import jax

    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    tree = getattr(metadata, "tree", metadata)
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=device), tree)


def load_meta(path: str | os.PathLike, step: int | None = None) -> dict[str, Any]:
    """The JSON metadata of the checkpoint at ``path`` (latest step unless ``step``)."""
    root, step = _resolve(path, step)
    try:
        with _reading_some_items(), ocp.CheckpointManager(root, item_names=(META,)) as m:
            return dict(m.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META])
    except Exception as e:  # a truncated or foreign metadata file
        raise ValueError(f"{root / str(step)}: the checkpoint metadata does not read back ({_why(e)})") from e


def load_weights(path: str | os.PathLike, step: int | None = None) -> Weights:
    """Read backbone and head weights (as numpy) and metadata from a checkpoint (latest step unless ``step``)."""
    root, step = _resolve(path, step)
    if not (root / str(step) / WEIGHTS).exists():
        raise FileNotFoundError(f"{root / str(step)} has no '{WEIGHTS}' item: not a jsphere checkpoint with weights")
    handlers = {WEIGHTS: ocp.StandardCheckpointHandler(), META: ocp.JsonCheckpointHandler()}
    try:
        with _reading_some_items(), ocp.CheckpointManager(root, item_names=(WEIGHTS, META),
                                                          item_handlers=handlers) as m:
            target = _host_target(m.item_metadata(step)[WEIGHTS])
            restored = m.restore(step, args=ocp.args.Composite(
                **{WEIGHTS: ocp.args.StandardRestore(target), META: ocp.args.JsonRestore()}))
    except Exception as e:  # orbax / tensorstore: a truncated or foreign file
        raise ValueError(f"{root / str(step)}: the checkpoint does not read back ({_why(e)})") from e
    weights = _to_numpy(restored[WEIGHTS])
    meta = dict(restored[META])
    head = weights.get("head") or None
    if head:
        from jsphere.heads.sharded import unpad_saved

        head = {**head, "params": unpad_saved(head["params"], meta.get("head") or {})}
    return Weights(step=step, meta=meta, backbone=weights["backbone"], head=head)


TRAIN = "train"
DATA = "data"
UNREADABLE = "checkpoints_unreadable"  # beside checkpoints/: where resume moves a step that does not read back


def _why(error: BaseException) -> str:
    """The first line of an orbax / tensorstore error, without its multi-line spec dump."""
    text = str(error).split(" See full TensorStore details")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


def _agreed_step(step: int) -> int:
    """The smallest of every process's restored step (all processes must resume from the same one)."""
    import jax

    if jax.process_count() == 1:
        return step
    from jax.experimental import multihost_utils

    return int(np.min(multihost_utils.process_allgather(np.asarray(step, np.int64))))


def _abstract(tree: Any) -> Any:
    """Restore targets: shape, dtype and sharding of every array of ``tree``."""
    import jax

    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
                        tree)


class TrainCheckpointer:
    """Training checkpoints of a workdir: weights + optimizer/RNG state + data iterator + metadata.

    Saves are asynchronous and atomic (orbax writes to a temporary folder and renames it when complete), so a
    kill at any moment leaves the previous checkpoint usable. When to save is orbax's decision policy: every
    ``every_steps``, at each of ``save_steps`` (OpenSphere's ``save_iters``), at ``final_step``, and when the
    job is preempted (several processes: JAX's preemption service, see ``reached_preemption``). The last
    ``keep`` checkpoints are kept, plus every step in ``save_steps``. Multi-process: every process calls
    ``save`` and ``restore``; orbax writes each process's shards and process 0 the metadata.
    """

    def __init__(self, workdir: str | os.PathLike, *, keep: int = 3, every_steps: int = 0,
                 save_steps: tuple[int, ...] = (), final_step: int | None = None, async_save: bool = True,
                 with_data: bool = True):
        from orbax.checkpoint.checkpoint_managers import preservation_policy as pp
        from orbax.checkpoint.checkpoint_managers import save_decision_policy as sdp

        self.root = Path(workdir).expanduser().resolve() / CHECKPOINTS
        keep_policies = [pp.LatestN(keep)] + ([pp.CustomSteps(list(save_steps))] if save_steps else [])
        save_policies = [sdp.PreemptionCheckpointingPolicy(),
                         sdp.SpecificStepsPolicy(set(save_steps) | ({final_step} if final_step else set()))]
        if every_steps:
            save_policies.append(sdp.FixedIntervalPolicy(every_steps))
        self.with_data = with_data
        import grain

        self._manager = ocp.CheckpointManager(
            self.root, item_names=(WEIGHTS, TRAIN, META) + ((DATA,) if with_data else ()),
            item_handlers={DATA: grain.checkpoint.CheckpointHandler()} if with_data else None,
            options=ocp.CheckpointManagerOptions(
                enable_async_checkpointing=async_save, cleanup_tmp_directories=True,
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
        return sorted(self._manager.all_steps())

    def save(self, step: int, *, weights: dict, train: dict, meta: dict, data_iterator: Any = None) -> None:
        """Start saving ``step`` (returns once the arrays are copied off the devices)."""
        import grain

        args = {WEIGHTS: ocp.args.StandardSave(weights), TRAIN: ocp.args.StandardSave(train),
                META: ocp.args.JsonSave({**meta, "step": int(step)})}
        if self.with_data:
            args[DATA] = grain.checkpoint.CheckpointSave(data_iterator)
        self._manager.save(int(step), args=ocp.args.Composite(**args), force=True)

    def restore(self, step: int, *, weights: dict, train: dict, data_iterator: Any = None) -> tuple[dict, dict]:
        """Restore ``step`` into arrays shaped and sharded like the ``weights``/``train`` templates.

        The data iterator, if given, is restored in place.
        """
        import grain

        args = {item: ocp.args.StandardRestore(_abstract(tree)) for item, tree in ((WEIGHTS, weights), (TRAIN, train))}
        if self.with_data and data_iterator is not None:
            args[DATA] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self._manager.restore(int(step), args=ocp.args.Composite(**args))
        return restored[WEIGHTS], restored[TRAIN]

    def restore_latest(self, *, weights: dict, train: dict, data_iterator: Any = None
                       ) -> tuple[int, dict, dict] | None:
        """Restore the newest checkpoint that reads back: ``(step, weights, train)``, or None without checkpoints.

        A newer step that fails to read (a truncated array file, a missing item, a half-written or foreign
        numbered folder) is reported with a warning naming it and moved to ``<workdir>/checkpoints_unreadable/``
        (kept for inspection, never deleted) so that training can write that step again. If no step reads back,
        nothing is moved and the error lists every step with its problem.
        """
        from absl import logging

        failures = []
        for step in reversed(self.all_steps()):
            try:
                restored_weights, restored_train = self.restore(step, weights=weights, train=train,
                                                                data_iterator=data_iterator)
            except Exception as e:  # orbax and tensorstore raise plain Exceptions for unreadable data
                failures.append((step, _why(e)))
                logging.warning("checkpoint of step %d at %s does not read back (%s); trying the previous one",
                                step, self.root / str(step), failures[-1][1])
                continue
            agreed = _agreed_step(step)
            if agreed != step:  # another process could not read this step
                restored_weights, restored_train = self.restore(agreed, weights=weights, train=train,
                                                                data_iterator=data_iterator)
            self._set_aside([s for s in self.all_steps() if s > agreed])
            return agreed, restored_weights, restored_train
        if failures:
            raise ValueError(f"no checkpoint in {self.root} reads back: " + "; ".join(
                f"step {s}: {why}" for s, why in failures) + ". Move the checkpoints folder away to start afresh")
        return None

    def _set_aside(self, steps: list[int]) -> None:
        """Move unusable steps out of the checkpoints folder (process 0 moves, every process waits)."""
        import jax
        from absl import logging

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
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("jsphere_checkpoints_set_aside")
        self._manager.reload()

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
