"""The PyTorch side's training data, written as the reference codebases read it and independently of jsphere's
pipeline, so that a jsphere pipeline fault (an augmentation applied twice, a wrong channel order or scale, a
shuffle that repeats) shows up as a difference between the two frameworks instead of being shared by both.

As OpenSphere's ``ClassDataset`` (v1 list ``path name``; classes = index of the name in ``sorted(set(names))``)
and ``image_pipeline``: ``cv2.imread`` (BGR) reversed to RGB, a random horizontal flip with p = 0.5 drawn with
Python's ``random`` before normalisation (v2's order), ``(x - 127.5) / 127.5``, HWC -> CHW float32. Batches come
from a ``DataLoader`` that reshuffles every epoch from a seeded generator and drops the last partial batch, as
both references' training loaders do.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from jsphere.errors import UserError


class ClassDataset(Dataset):
    """An OpenSphere v1 training list: ``relative/path name`` lines, images under ``data_dir``."""

    def __init__(self, list_path: Path, data_dir: Path, flip: float = 0.5):
        rows = [line.split() for line in Path(list_path).read_text().splitlines() if line.strip()]
        bad = next((i for i, row in enumerate(rows, start=1) if len(row) != 2), None)
        if bad is not None:
            raise UserError(f"{list_path}:{bad}: expected 'relative/path name'")
        self.paths = [str(Path(data_dir) / path) for path, _ in rows]
        self.class_names = sorted({name for _, name in rows})
        index = {name: i for i, name in enumerate(self.class_names)}
        self.labels = np.asarray([index[name] for _, name in rows], np.int64)
        self.flip = flip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = cv2.imread(self.paths[i])
        if image is None:
            raise UserError(f"cannot read image {self.paths[i]}")
        image = image[:, :, ::-1]  # BGR -> RGB
        if random.random() < self.flip:
            image = image[:, ::-1, :]
        image = (image.astype(np.float32) - 127.5) / 127.5
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), int(self.labels[i])


def batches(dataset: ClassDataset, batch_size: int, steps: int, seed: int) -> Iterator[tuple[torch.Tensor,
                                                                                          torch.Tensor]]:
    """``steps`` training batches (images NCHW, labels), reshuffled every epoch; flips seeded by ``seed``."""
    if len(dataset) < batch_size:
        raise UserError(f"the training list has {len(dataset)} images, fewer than one batch of {batch_size}")
    random.seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0,
                        generator=torch.Generator().manual_seed(seed))
    done = 0
    while done < steps:
        for images, labels in loader:
            yield images, labels
            done += 1
            if done == steps:
                return
