"""The names of a checkpoint directory's folders and items (the layout in ``jsphere.checkpoint``'s docstring), and
which steps a folder holds: its non-empty numbered folders (orbax writes a step in a temporary folder and renames it
when complete)."""

from __future__ import annotations

import os
from pathlib import Path

CHECKPOINTS = "checkpoints"  # <dir>/checkpoints/<step>/
UNREADABLE = "checkpoints_unreadable"  # beside checkpoints/: where resume moves a step that does not read back
WEIGHTS = "weights"  # item: backbone + head weights
TRAIN = "train"  # item: the rest of the training state (step, RNG, optimizer, a trainer's own state)
DATA = "data"  # item: the data iterator's position
META = "meta"  # item: JSON metadata
CHECKSUMS = "checksums"  # meta key: {'algorithm', 'arrays': {item: {leaf: checksum}}}
ITEMS = "items"  # meta key: the items the step was written with


def step_folders(root: Path) -> list[int]:
    """The steps of a checkpoints folder, ascending."""
    if not root.is_dir():
        return []
    return sorted(int(c.name) for c in root.iterdir() if c.name.isdigit() and c.is_dir() and any(c.iterdir()))


def resolve(path: str | os.PathLike, step: int | None) -> tuple[Path, int]:
    """Return (checkpoints folder, step) for a workdir, a checkpoints folder or a step folder (the latest step
    unless ``step``)."""
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise FileNotFoundError(f"checkpoint path {p} does not exist")
    if (p / CHECKPOINTS).is_dir():
        p = p / CHECKPOINTS
    elif p.name.isdigit() and int(p.name) in step_folders(p.parent):
        if step is not None and step != int(p.name):
            raise ValueError(f"{p} is the checkpoint of step {p.name}, not {step}")
        return p.parent, int(p.name)
    steps = step_folders(p)
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
    """The steps of the checkpoints under ``path`` (workdir or checkpoints folder), ascending; each is checked
    when read."""
    return step_folders(resolve(path, None)[0])
