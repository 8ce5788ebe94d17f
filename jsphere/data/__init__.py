"""Input data: sources in every format the field uses, numpy-only decoding/augmentation, Grain pipelines, the inputs
of the commands, landmark alignment, synthetic identities and the packed format.

No module here computes with JAX: Grain's worker processes run the decoding and augmentation. The names below are
imported on first use (``jsphere.lazy_exports``), so ``python -m jsphere.data.pack --help`` answers at once.

* training sources: ``open_source(spec, data_dir=None)`` (list file, image folder, ``train.rec``, packed
  ArrayRecord folder, ``tfds:<name>``), ``read_list``, ``read_folder``, ``FileSource``;
* the training input: ``make_train_iterator(data_cfg, global_batch_size=, seed=) -> (iterator, DataInfo)``, each
  batch ``{'image': float32 [B, 112, 112, 3] in [-1, 1], 'label': int32 [B]}`` (this process's slice);
* images: ``decode_image(bytes) -> uint8 [H, W, 3]``, ``load_images(paths) -> uint8 [N, 112, 112, 3]``,
  ``load_inputs(path, landmarks=None)`` (what ``jsphere.embed`` reads), ``align_face(image, landmarks [5, 2])``;
* pair sets: ``read_pair_list(path, data_dir) -> PairList``, ``read_bin(path)`` (insightface ``.bin``);
* ``synthetic``: ``synthetic.generate(out, identities=300, ...)`` writes learnable synthetic identities.
"""

from typing import TYPE_CHECKING

from jsphere import lazy_exports

EXPORTS = {
    "open_source": "jsphere.data.sources",
    "read_list": "jsphere.data.sources",
    "read_folder": "jsphere.data.sources",
    "FileSource": "jsphere.data.sources",
    "make_train_iterator": "jsphere.data.pipeline",
    "DataInfo": "jsphere.data.pipeline",
    "decode_image": "jsphere.data.decode",
    "load_images": "jsphere.data.images",
    "load_inputs": "jsphere.data.inputs",
    "align_face": "jsphere.data.landmark_align",
    "read_pair_list": "jsphere.data.pair_files",
    "PairList": "jsphere.data.pair_files",
    "read_bin": "jsphere.data.binset",
    "synthetic": "jsphere.data.synthetic",
}
__all__ = ["DataInfo", "FileSource", "PairList", "align_face", "decode_image", "load_images", "load_inputs",
           "make_train_iterator", "open_source", "read_bin", "read_folder", "read_list", "read_pair_list", "synthetic"]
__getattr__, __dir__ = lazy_exports.attach(__name__, EXPORTS)

if TYPE_CHECKING:
    from jsphere.data import synthetic
    from jsphere.data.binset import read_bin
    from jsphere.data.decode import decode_image
    from jsphere.data.images import load_images
    from jsphere.data.inputs import load_inputs
    from jsphere.data.landmark_align import align_face
    from jsphere.data.pair_files import PairList, read_pair_list
    from jsphere.data.pipeline import DataInfo, make_train_iterator
    from jsphere.data.sources import FileSource, open_source, read_folder, read_list
