"""A TFDS data set prepared by a real TFDS builder (ArrayRecord output, no TensorFlow) trains like any source."""

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow-datasets is not installed (jsphere[tfds])")

from jsphere.data import pipeline, sources  # noqa: E402
from jsphere.data.decode import encode_jpeg  # noqa: E402


class TinyFaces(tfds.core.GeneratorBasedBuilder):
    """Six 112x112 JPEGs of three identities; images stored as encoded bytes (no TensorFlow needed)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),
            "label": tfds.features.ClassLabel(names=["ann", "bo", "cy"])}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(6):
            yield i, {"image": encode_jpeg(np.full((112, 112, 3), 40 * i, np.uint8)), "label": i % 3}


def test_tfds_source_reads_a_prepared_array_record_dataset(tmp_path):
    TinyFaces(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    src = sources.open_source("tfds:tiny_faces:train", tmp_path)
    assert len(src) == 6 and src.num_classes == 3 and src.class_names == ["ann", "bo", "cy"]
    assert sorted(src.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    it, info = pipeline.make_train_iterator({"source": "tfds:tiny_faces", "data_dir": str(tmp_path), "flip": 0.0},
                                            global_batch_size=6, seed=0)
    batch = next(it)
    assert batch["image"].shape == (6, 112, 112, 3) and sorted(batch["label"].tolist()) == [0, 0, 1, 1, 2, 2]


def test_malformed_tfds_spec_is_explained():
    with pytest.raises(ValueError, match="tfds:<name>\\[:<split>\\]"):
        sources.open_source("tfds:")
