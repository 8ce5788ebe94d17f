"""Checkpoints: what a jsphere checkpoint directory holds, how it is read, verified and written.

Layout of a checkpoint directory (a training workdir, or what ``converters.import_torch`` writes)::

    <dir>/checkpoints/<step>/weights/   pure dict {'backbone': nnx pure dict (params + batch stats),
                                                    'head': {'params': {...}, 'state': {...}}}
    <dir>/checkpoints/<step>/meta/      JSON {'model': {'name', 'embed_dim', 'kwargs'},
                                              'head': {'name', 'hparams', 'num_classes', 'feat_dim'} | None,
                                              'step', 'source', 'items': [...],
                                              'checksums': {'algorithm', 'arrays': {item: {leaf: checksum}}}}
    (training adds items of its own beside these: optimizer state, RNG, data iterator)

The readers accept the workdir, its ``checkpoints`` folder or one ``checkpoints/<step>`` folder; the steps are the
non-empty numbered folders.

One rule says whether a step is readable, for every reader (training resume, ``embed``, the exporters, evaluation,
``Embedder.from_checkpoint``, the NaN guard): its ``meta`` item reads back; every item that ``meta`` lists (and
every item the reader needs) is there, an OCDBT item with its manifest and each process's manifest; every array
read matches the checksum recorded in ``meta`` (``checksums``). Checkpoints written before checksums were
recorded are read with a warning that they are unverified.

The modules, each with one job:

* ``layout``: the folder and item names, and the steps a folder holds;
* ``checksums``: the checksum of a saved array (its docstring is the specification);
* ``integrity``: the readable rule and how failures are told (no orbax);
* ``orbax_io``: every orbax call, reading and writing steps, and ``TrainCheckpointer`` (the only orbax user);
* ``saved_model``: the weights and metadata as inference, fine-tuning and the converters read and write them;
* ``train_items``: a training run's state as checkpoint items, and back;
* ``workdir_lock``: one training run per workdir.

This package's namespace is the API the rest of jsphere, the converters and the benchmarks use.
"""

from jsphere.checkpoint.integrity import CheckpointWriteError, UnreadableCheckpoint
from jsphere.checkpoint.layout import META, list_steps
from jsphere.checkpoint.orbax_io import TrainCheckpointer
from jsphere.checkpoint.saved_model import Weights, load_meta, load_weights, save_weights

__all__ = ["META", "CheckpointWriteError", "TrainCheckpointer", "UnreadableCheckpoint", "Weights", "list_steps",
           "load_meta", "load_weights", "save_weights"]
