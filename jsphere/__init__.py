"""jsphere: hyperspherical face recognition in JAX/Flax NNX.

The packages (each imported on first use, so that a command's ``--help`` answers at once):

* ``jsphere.models``: backbones by name (``models.build('iresnet100', embed_dim=512)``: NHWC float [N, 112, 112, 3]
  in [-1, 1] -> [N, embed_dim]);
* ``jsphere.heads``: the margin losses (``heads.build('arcface')``; ``head.loss(params, state, embeddings [B, D],
  labels [B], step, key=None) -> (loss, state, metrics)``), ``ShardedHead`` (classes split over devices);
* ``jsphere.trainers``: the jit-compiled step (``build_setup``, ``init_state``, ``make_step``) and trainer hooks;
* ``jsphere.data``: training sources, the Grain pipeline, pair sets, alignment, synthetic identities;
* ``jsphere.eval``: verification metrics of both protocols, the evaluators of ``--mode=eval``;
* ``jsphere.checkpoint``: reading and writing checkpoints (``load_weights``).

And the names used most: ``Embedder`` (embeddings [N, D] of aligned faces [N, 112, 112, 3]), ``load_weights``,
``Weights``, ``train_and_evaluate(config, workdir)``, ``make_mesh`` and ``global_batch`` (the batch sharded over
the devices).
"""

from typing import TYPE_CHECKING

from jsphere import lazy_exports

EXPORTS = {
    **{name: f"jsphere.{name}" for name in ("checkpoint", "data", "eval", "heads", "models", "trainers")},
    "Embedder": "jsphere.inference",
    "Weights": "jsphere.checkpoint",
    "load_weights": "jsphere.checkpoint",
    "train_and_evaluate": "jsphere.train",
    "make_mesh": "jsphere.parallel",
    "global_batch": "jsphere.parallel",
}
__all__ = ["Embedder", "Weights", "checkpoint", "data", "eval", "global_batch", "heads", "load_weights", "make_mesh",
           "models", "train_and_evaluate", "trainers"]
__getattr__, __dir__ = lazy_exports.attach(__name__, EXPORTS)

if TYPE_CHECKING:
    from jsphere import checkpoint, data, eval, heads, models, trainers
    from jsphere.checkpoint import Weights, load_weights
    from jsphere.inference import Embedder
    from jsphere.parallel import global_batch, make_mesh
    from jsphere.train import train_and_evaluate
