"""The training input pipeline (Grain), checkpointable and sharded by process.

``MapDataset.range(N)`` -> seeded shuffle, reshuffled every epoch -> repeat -> (lazily, for this process's
slice only) load + decode + augment + normalise (numpy only; on a corrupt image either raise or, with
``on_corrupt='skip'``, take the next sample deterministically, count it and log the file's name once, as an
absl warning) -> batch (static shape, drop
remainder) -> multiprocess prefetch (``workers > 0``). Every batch is a dict of numpy arrays
``image`` float32 [b, 112, 112, 3], ``label`` int32 [b], ``corrupt`` int32 [b] (how many unreadable samples
each element replaced). The iterator's ``get_state``/``set_state`` (and Grain's orbax handler) resume it at
the next unseen batch.

The ``grouped`` sampler (SimPLE) instead draws each global batch as ``batch / k`` distinct identities,
weighted by ``count ** unbalance_factor``, with ``k`` distinct images each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import grain
import numpy as np
from absl import logging

from jsphere.data import transforms
from jsphere.data.decode import CorruptImageError, decode_aligned
from jsphere.data.sources import open_source

MAX_CONSECUTIVE_CORRUPT = 64


@dataclasses.dataclass
class DataInfo:
    """Facts about a training source: its identity count, image count and identity names (label i is
    ``class_names[i]``)."""

    num_classes: int
    num_images: int
    class_names: list[str]


def noisy_labels(labels: np.ndarray, num_classes: int, ratio: float, seed: int) -> np.ndarray:
    """SphereFace2 §3.3 label noise: each label replaced, with probability ``ratio``, by a uniform label."""
    if ratio <= 0:
        return labels
    if not 0 < ratio <= 1:
        raise ValueError(f"config.data.label_noise.ratio must be in [0, 1], got {ratio}")
    rng = np.random.default_rng(seed)
    replace = rng.random(len(labels)) < ratio
    return np.where(replace, rng.integers(0, num_classes, len(labels)), labels)


class LoadSample:
    """index -> {'image', 'label', 'corrupt'}: read, decode, check 112x112, augment, flip, normalise."""

    def __init__(self, source, labels: np.ndarray, cfg: Mapping[str, Any]):
        self.source = source
        self.labels = labels
        self.flip = float(cfg.get("flip", 0.5))
        self.augment = dict(cfg.get("augment", {}) or {})
        self.skip_corrupt = cfg.get("on_corrupt", "raise") == "skip"
        self.reported: set[int] = set()  # corrupt samples already named in the log (per process)

    def read(self, index: int) -> tuple[np.ndarray, int, int]:
        """Decoded image, label and number of corrupt samples skipped to get it."""
        n = len(self.source)
        for attempt in range(MAX_CONSECUTIVE_CORRUPT):
            i = (index + attempt) % n
            try:
                data, _ = self.source[i]
                image = decode_aligned(data, what=self.source.describe(i))
                return image, int(self.labels[i]), attempt
            except (CorruptImageError, FileNotFoundError) as e:
                if not self.skip_corrupt:
                    raise
                self._report(i, e)
        raise CorruptImageError(f"{MAX_CONSECUTIVE_CORRUPT} consecutive unreadable samples from "
                                f"{self.source.describe(index % n)}: is the data set readable at all?")

    def _report(self, index: int, error: Exception) -> None:
        """Name a skipped sample in the log, the first time it is met."""
        if index not in self.reported:
            self.reported.add(index)
            logging.warning("config.data.on_corrupt='skip': skipping the unreadable image %s (%s)",
                            self.source.describe(index), error)

    def transform(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.augment:
            image = transforms.augment_opensphere_v2(image, rng, **self.augment)
        return transforms.normalize(transforms.flip(image, rng, self.flip))

    def __call__(self, index: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        image, label, skipped = self.read(int(index))
        return {"image": self.transform(image, rng), "label": np.int32(label), "corrupt": np.int32(skipped)}


class GroupedBatch:
    """Global batch number -> this process's share of a SimPLE batch (identities x k images)."""

    def __init__(self, load: LoadSample, *, global_batch: int, k: int, unbalance_factor: float, seed: int,
                 process_index: int, process_count: int):
        if global_batch % k:
            raise ValueError(f"batch size {global_batch} is not a multiple of samples_per_identity={k}")
        self.load, self.k, self.seed = load, k, seed
        self.ids_per_batch = global_batch // k
        groups: dict[int, list[int]] = {}
        for i, label in enumerate(load.labels):
            groups.setdefault(int(label), []).append(i)
        self.groups = [np.asarray(v) for _, v in sorted(groups.items()) if len(v) >= 2 * k]
        if len(self.groups) < self.ids_per_batch:
            raise ValueError(f"grouped sampler: only {len(self.groups)} identities have >= {2 * k} images, "
                             f"but a batch needs {self.ids_per_batch}")
        counts = np.asarray([len(g) for g in self.groups], np.float64) ** unbalance_factor
        self.weights = counts / counts.sum()
        per_process = self.ids_per_batch // process_count
        self.mine = slice(process_index * per_process, (process_index + 1) * per_process)

    def __call__(self, batch_index: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(batch_index)])
        ids = rng.choice(len(self.groups), self.ids_per_batch, replace=False, p=self.weights)[self.mine]
        items = []
        for identity in ids:
            for index in rng.choice(self.groups[identity], self.k, replace=False):
                image, _, skipped = self.load.read(int(index))
                items.append({"image": self.load.transform(image, rng), "label": np.int32(self.load.labels[index]),
                              "corrupt": np.int32(skipped)})
        return {key: np.stack([item[key] for item in items]) for key in items[0]}


def make_train_iterator(data_cfg: Mapping[str, Any], *, global_batch_size: int, seed: int, process_index: int = 0,
                        process_count: int = 1) -> tuple[Any, DataInfo]:
    """This process's infinite, checkpointable iterator over training batches, and facts about the data. Each batch
    is this process's slice of the global one: ``{'image': float32 [b, 112, 112, 3] in [-1, 1], 'label': int32 [b],
    'corrupt': [b]}`` with b = ``global_batch_size / process_count``; ``data_cfg`` is a run config's ``data``."""
    cfg = dict(data_cfg)
    source = open_source(cfg["source"], cfg.get("data_dir"), cfg.get("format", "auto"))
    noise = dict(cfg.get("label_noise") or {})
    labels = noisy_labels(np.asarray(source.labels), source.num_classes, float(noise.get("ratio", 0.0)),
                          int(noise.get("seed", 0)))
    if global_batch_size % process_count:
        raise ValueError(f"batch size {global_batch_size} is not divisible by {process_count} processes")
    local_batch = global_batch_size // process_count
    load = LoadSample(source, labels, cfg)
    sampler = dict(cfg.get("sampler") or {"type": "shuffle"})
    if sampler.get("type", "shuffle") == "grouped":
        batches = GroupedBatch(load, global_batch=global_batch_size, k=int(sampler["samples_per_identity"]),
                               unbalance_factor=float(sampler.get("unbalance_factor", 1.0)), seed=seed,
                               process_index=process_index, process_count=process_count)
        ds = grain.MapDataset.range(2**62).map(batches)
    else:
        if len(source) < global_batch_size:
            raise ValueError(f"the data set has {len(source)} images, fewer than one batch of {global_batch_size}")
        # augmentation randomness is keyed by the global element index (random_map before the process slice; the
        # dataset is lazy, so each process still loads only its own elements): any process count sees the same
        # global batches
        ds = (grain.MapDataset.range(len(source)).seed(seed).shuffle().repeat().random_map(load)
              [process_index::process_count].batch(local_batch, drop_remainder=True))
    workers = int(cfg.get("workers", 0))
    it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=max(int(cfg.get("threads", 2)), 1),
                                                 prefetch_buffer_size=max(int(cfg.get("prefetch", 4)), 1)))
    if workers > 0:
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    info = DataInfo(num_classes=source.num_classes, num_images=len(source), class_names=list(source.class_names))
    return iter(it_ds), info
