"""A prepared TFDS data set as a training source: ``tfds:<name>[:<split>]`` (optional extra ``jsphere[tfds]``).

Read through ``tfds.data_source`` (ArrayRecord-backed; TensorFlow is not needed to read). The data set needs
an ``image`` feature (encoded bytes, e.g. ``tfds.features.Tensor(shape=(), dtype=np.object_)``, or an
``Image`` feature, which TFDS decodes to an array) and an integer ``label`` (``ClassLabel`` preferred).
``config.data.data_dir`` is passed to TFDS as its ``data_dir``.
"""

from __future__ import annotations

import numpy as np


class TfdsSource:
    def __init__(self, spec: str, data_dir: str | None = None):
        try:  # an optional dependency (the extra jsphere[tfds]), imported by the one source that needs it
            import tensorflow_datasets as tfds
        except ImportError:
            raise ImportError(f"data source {spec!r} needs tensorflow-datasets: pip install 'jsphere[tfds]'") from None
        parts = spec.split(":")
        if len(parts) not in (2, 3) or parts[0] != "tfds" or not parts[1]:
            raise ValueError(f"a TFDS source is written tfds:<name>[:<split>], got {spec!r}")
        self.name, self.split = parts[1], parts[2] if len(parts) == 3 else "train"
        builder = tfds.builder(self.name, data_dir=data_dir)
        self._source = builder.as_data_source(split=self.split)
        features = builder.info.features
        for key in ("image", "label"):
            if key not in features:
                raise ValueError(f"{spec}: the data set has no {key!r} feature (features: {list(features)})")
        label = features["label"]
        self._num_classes = getattr(label, "num_classes", None)
        self._names = list(getattr(label, "names", []) or [])
        self._labels = None

    def __len__(self) -> int:
        return len(self._source)

    def describe(self, i: int) -> str:
        return f"tfds:{self.name}:{self.split} example {i}"

    def __getitem__(self, i: int):
        record = self._source[int(i)]
        return record["image"], int(record["label"])

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            self._labels = np.asarray([int(self._source[i]["label"]) for i in range(len(self))], np.int64)
        return self._labels

    @property
    def num_classes(self) -> int:
        return int(self._num_classes) if self._num_classes else int(self.labels.max()) + 1

    @property
    def class_names(self) -> list[str]:
        return self._names or [str(i) for i in range(self.num_classes)]
