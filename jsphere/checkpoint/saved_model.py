"""A checkpoint as inference, fine-tuning and the converters read and write it: the ``weights`` item (backbone and
head) and the ``meta`` item (``load_weights``, ``load_meta``, ``save_weights``).

A class-sharded head is saved padded to a multiple of the device count, its real and padded row counts recorded in
``meta['head']`` (``rows``, ``padded_rows``); ``load_weights`` hands back its real rows only, so that a reader
never sees the padding.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from jsphere.checkpoint import integrity, orbax_io
from jsphere.checkpoint.integrity import UnreadableCheckpoint
from jsphere.checkpoint.layout import CHECKPOINTS, CHECKSUMS, META, WEIGHTS, resolve


@dataclasses.dataclass
class Weights:
    """What a checkpoint holds for inference and fine-tuning."""

    step: int
    meta: dict[str, Any]
    backbone: dict[str, Any]
    head: dict[str, Any] | None


def unpad_head(params: dict[str, Any], head_meta: dict[str, Any]) -> dict[str, Any]:
    """A head's params as saved by a class-sharded run (padded, ``head_meta['padded_rows']`` rows) cut to the
    ``head_meta['rows']`` real ones; params of an unsharded head come back unchanged."""
    rows, padded = head_meta.get("rows"), head_meta.get("padded_rows")
    if not rows or not padded:
        return params
    return {k: (v[:rows] if np.ndim(v) and np.shape(v)[0] == padded else v) for k, v in params.items()}


def _naming_the_newest(root: Path, error: UnreadableCheckpoint, items: tuple[str, ...]) -> UnreadableCheckpoint:
    """``error`` with the newest readable step of ``root`` (another one) named."""
    newest = orbax_io.newest_readable(root, items, skip=int(error.step_dir.name))
    hint = (f"the newest readable checkpoint is step {newest} ({root / str(newest)})" if newest is not None
            else f"no other checkpoint in {root} reads back")
    return UnreadableCheckpoint(error.step_dir, error.reason, hint=hint)


def load_meta(path: str | os.PathLike, step: int | None = None) -> dict[str, Any]:
    """The JSON metadata of the checkpoint at ``path`` (latest step unless ``step``), without its checksums."""
    root, step = resolve(path, step)
    meta = orbax_io.read_meta(root / str(step))
    meta.pop(CHECKSUMS, None)
    return meta


def load_weights(path: str | os.PathLike, step: int | None = None) -> Weights:
    """Read backbone and head weights (as numpy) and metadata from a checkpoint (latest step unless ``step``),
    verified against their checksums; a step that does not read back is named with the newest one that does."""
    root, step = resolve(path, step)
    try:
        meta, arrays = orbax_io.read_arrays(root, step, (WEIGHTS,))
    except UnreadableCheckpoint as e:
        raise _naming_the_newest(root, e, (WEIGHTS,)) from e
    meta.pop(CHECKSUMS, None)
    weights = arrays[WEIGHTS]
    head = weights.get("head") or None
    if head:
        head = {**head, "params": unpad_head(head["params"], meta.get("head") or {})}
    return Weights(step=step, meta=meta, backbone=weights["backbone"], head=head)


def save_weights(directory: str | os.PathLike, *, step: int, backbone: dict[str, Any], head: dict[str, Any] | None,
                 meta: dict[str, Any]) -> Path:
    """Write an inference checkpoint (backbone + optional head, with checksums) as ``<dir>/checkpoints/<step>``."""
    root = Path(directory).expanduser().resolve() / CHECKPOINTS
    if (root / str(step)).exists():
        raise FileExistsError(f"{root / str(step)} already exists: choose another output folder or remove it")
    weights = {"backbone": integrity.to_numpy(backbone), "head": integrity.to_numpy(head) if head else {}}
    meta = integrity.with_checksums(meta, step, {WEIGHTS: weights}, (WEIGHTS, META))
    return orbax_io.write_step(root, step, {WEIGHTS: weights}, meta)
