"""Add a trainer hook: an exponential moving average (EMA) of the backbone's weights, a per-step metric of its
own, and the EMA as the weights that are validated, saved for evaluation and exported.

This file is also a config file: the trainer is registered when it is loaded, and ``get_config`` is the quickstart
recipe with it::

    python -m jsphere.main --config=examples/trainer_hook.py --workdir=runs/ema
    python -m jsphere.main --config=examples/trainer_hook.py --workdir=runs/ema --config.ema.momentum=0.99
    python examples/trainer_hook.py [--tiny]     # trains in-process, then shows what the checkpoint holds

The trainer is jsphere's proxy trainer (a classifier head over the embeddings) plus three hooks:

* ``init_extra``: the EMA starts as a copy of the initial weights (and again from ``config.init_from``'s);
* ``finish``: after each update, ``ema = m ema + (1 - m) online`` (parameters and BatchNorm statistics), and the
  metric ``ema/distance`` (the L2 distance between the EMA and the online parameters), logged as is;
* ``eval_weights``: the EMA is what validation, the checkpoint's weights (``--mode=eval``, ``jsphere.embed``,
  ``Embedder.from_checkpoint``, ``converters.export_torch`` / ``export_onnx``) see; training resumes from the
  online weights.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections

from configs import quickstart
from jsphere import checkpoint, train, trainers
from jsphere.data import synthetic
from jsphere.optim import global_norm


# --- README "Add a trainer hook" (tests/test_examples.py keeps the two the same)
def init_extra(config, backbone, batch_stats, key):  # the EMA starts as a copy of the weights
    return {"ema": jax.tree.map(jnp.copy, {"params": backbone, "batch_stats": batch_stats})}


def finish(setup, state):  # after each update: ema = m ema + (1 - m) online, and a metric of its own
    m = setup.config.ema.momentum
    ema = jax.tree.map(lambda e, w: m * e + (1.0 - m) * w, state.extra["ema"],
                       {"params": state.params["backbone"], "batch_stats": state.batch_stats})
    distance = global_norm(jax.tree.map(jnp.subtract, ema["params"], state.params["backbone"]))
    return state.replace(extra={**state.extra, "ema": ema}), {"ema/distance": distance}


def eval_weights(setup, state):  # the weights to validate, save for evaluation and export: the EMA's
    return state.extra["ema"]  # {'params': ..., 'batch_stats': ...}, laid out as the online backbone's


EMA = trainers.register("ema", trainers.Trainer(loss=trainers.proxy.loss, init_extra=init_extra, finish=finish,
                                                eval_weights=eval_weights))
# --- end


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The quickstart recipe (``arg``: its head) trained with the EMA trainer."""
    config = quickstart.get_config(arg)
    config.trainer = "ema"
    config.ema = ml_collections.ConfigDict({"momentum": 0.995})
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a few steps on a few identities (the test suite's run)")
    args = parser.parse_args()
    config = get_config("arcface")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(config.data.data_dir)
        if args.tiny:
            data = synthetic.generate(Path(tmp) / "data", identities=8, images_per_identity=4, holdout_identities=4,
                                      holdout_images=3, pairs=20)
            config.model.kwargs.width, config.model.embed_dim = 0.125, 32
            config.batch_size, config.total_steps, config.optim.warmup_steps, config.log_every = 8, 4, 1, 2
            config.ema.momentum, config.progress_bar = 0.5, False
        elif not (data / "train_list.txt").exists():
            synthetic.generate(data)
        config.data.source, config.data.data_dir = str(data / "train_list.txt"), str(data)
        config.val = [dict(name="held-out", type="pairs", path=str(data / "val_pairs.txt"), data_dir=str(data))]
        config.val_every = config.total_steps
        result = train.train_and_evaluate(config, str(Path(tmp) / "run"))
        meta = checkpoint.load_meta(Path(tmp) / "run")  # beside the weights --mode=eval, embed and the exporters read
    print(f"step {result['step']}: loss {result['train/loss']:.3f}, ema/distance {result['train/ema/distance']:.4f}, "
          f"held-out ACC of the EMA {result['val/held-out/ACC']:.1f}")
    print(f"the checkpoint's backbone: {meta['source']['backbone']}")

if __name__ == "__main__":
    main()
