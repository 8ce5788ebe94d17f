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

import dataclasses
import os
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
    steps = sorted(int(c.name) for c in p.iterdir() if c.name.isdigit() and (c / META).exists())
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
    root, _ = _resolve(path, None)
    return sorted(int(c.name) for c in root.iterdir() if c.name.isdigit() and (c / META).exists())


def _to_numpy(tree: Any) -> Any:
    import jax

    return jax.tree.map(np.asarray, tree)


def save_weights(
    directory: str | os.PathLike,
    *,
    step: int,
    backbone: dict[str, Any],
    head: dict[str, Any] | None,
    meta: dict[str, Any],
) -> Path:
    """Write an inference checkpoint (backbone + optional head) as ``<directory>/checkpoints/<step>``."""
    root = Path(directory).expanduser().resolve() / CHECKPOINTS
    items = {WEIGHTS: {"backbone": _to_numpy(backbone), "head": _to_numpy(head) if head else {}}}
    meta = {**meta, "step": int(step)}
    with ocp.CheckpointManager(root, options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False)) as m:
        m.save(
            int(step),
            args=ocp.args.Composite(
                **{WEIGHTS: ocp.args.StandardSave(items[WEIGHTS]), META: ocp.args.JsonSave(meta)}
            ),
            force=True,
        )
        m.wait_until_finished()
    return root / str(step)


def load_meta(path: str | os.PathLike, step: int | None = None) -> dict[str, Any]:
    """The JSON metadata of the checkpoint at ``path`` (latest step unless ``step``)."""
    root, step = _resolve(path, step)
    with ocp.CheckpointManager(root, item_names=(META,)) as m:
        return dict(m.restore(step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()}))[META])


def load_weights(path: str | os.PathLike, step: int | None = None) -> Weights:
    """Read backbone and head weights (as numpy) and metadata from a checkpoint (latest step unless ``step``)."""
    root, step = _resolve(path, step)
    if not (root / str(step) / WEIGHTS).exists():
        raise FileNotFoundError(f"{root / str(step)} has no '{WEIGHTS}' item: not a jsphere checkpoint with weights")
    with ocp.CheckpointManager(root, item_names=(WEIGHTS, META)) as m:
        restored = m.restore(
            step, args=ocp.args.Composite(**{WEIGHTS: ocp.args.StandardRestore(), META: ocp.args.JsonRestore()})
        )
    weights = _to_numpy(restored[WEIGHTS])
    head = weights.get("head") or None
    return Weights(step=step, meta=dict(restored[META]), backbone=weights["backbone"], head=head)
