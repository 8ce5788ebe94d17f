"""Use jsphere as a library: your own data loading and your own training loop around jsphere's backbone, head and
jit-compiled step, then verification on held-out pairs.

    python examples/library_loop.py [--tiny] [--steps N]

What it shows: ``trainers.build_setup(model, head, optimizer)`` (no config), a jitted train step of one's own
made of the setup's parts (the backbone rebuilt by ``setup.merge``, the head's loss, the optimizer; batches of
images [B, 112, 112, 3] in [-1, 1] and int32 labels [B], sharded over the devices by ``global_batch``), a plain
Python loop, and evaluation with ``jsphere.Embedder`` and ``jsphere.eval``. ``trainers.make_step(setup)`` is the
ready-made step. ``--tiny`` is the test suite's run.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jsphere import Embedder, global_batch, heads, make_mesh, models, trainers
from jsphere.data import load_images, read_list, synthetic
from jsphere.eval import make_evaluator


def load_training_set(root: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """All training images of a list file in memory: float32 [N, 112, 112, 3] in [-1, 1], labels [N], classes."""
    source = read_list(root / "train_list.txt")
    images = load_images([str(Path(source.root) / p) for p in source.paths])
    return (images.astype(np.float32) - 127.5) / 127.5, source.labels.astype(np.int32), len(source.class_names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a few steps on a few identities (the test suite's run)")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    size = dict(identities=8, images_per_identity=4, holdout_identities=4, holdout_images=3, pairs=20) if args.tiny \
        else dict(identities=100, images_per_identity=20, holdout_identities=30, holdout_images=6, pairs=600)
    steps = args.steps or (4 if args.tiny else 300)
    batch_size = 8 if args.tiny else 64

    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic.generate(Path(tmp) / "faces", **size)
        images, labels, classes = load_training_set(data)

        # ---- model, head, optimizer: the setup and the step
        width = 0.125 if args.tiny else 0.5
        setup = trainers.build_setup(
            lambda: models.build("sfnet4_bn", embed_dim=64, rngs=nnx.Rngs(0), width=width),
            heads.build("cosface", s=30.0, m=0.3),
            optax.adamw(optax.cosine_decay_schedule(1e-3, steps), weight_decay=5e-4),
            num_classes=classes, mesh=make_mesh(), seed=0)
        state = trainers.init_state(setup)

        # ---- a step of one's own: the head's loss plus a regulariser on the embedding norms. trainers.make_step
        # (setup) is the ready-made one (no regulariser; dropout reseeded, gradient norms reported). setup.merge
        # rebuilds the backbone inside the differentiated function; it merges with copy=True, without which
        # BatchNorm's update fails with "TraceContextError: Cannot mutate BatchStat from a different trace level".
        @functools.partial(jax.jit, donate_argnums=0)
        def step(state: trainers.TrainState, batch: dict) -> tuple[trainers.TrainState, jax.Array]:
            params = {"backbone": state.params["backbone"], "head": setup.head.project(state.params["head"])}

            def objective(params):
                model = setup.merge(params["backbone"], state.frozen, state.batch_stats, state.rest)
                embeddings = model(batch["image"])
                loss, head_state, _ = setup.head.loss(params["head"], state.head_state, embeddings, batch["label"],
                                                      state.step, key=trainers.head_key(state))
                norm_penalty = 1e-3 * jnp.mean((jnp.linalg.norm(embeddings, axis=-1) - 10.0) ** 2)
                return loss + norm_penalty, (nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)), head_state)

            (loss, (batch_stats, head_state)), grads = jax.value_and_grad(objective, has_aux=True)(params)
            updates, opt = setup.tx.update(grads, state.opt, params)
            return state.replace(step=state.step + 1, params=optax.apply_updates(params, updates),
                                 batch_stats=batch_stats, head_state=head_state, opt=opt), loss

        # ---- the loop: your sampling, your logging
        rng = np.random.default_rng(0)
        for i in range(steps):
            pick = rng.choice(len(images), batch_size, replace=False)
            state, loss = step(state, global_batch({"image": images[pick], "label": labels[pick]}, setup.mesh))
            if (i + 1) % max(1, steps // 4) == 0:
                print(f"step {i + 1}: loss {float(loss):.3f}")

        # ---- verification on the held-out identities, with the weights to evaluate
        held_out = dict(name="held-out", type="pairs", path=str(data / "val_pairs.txt"), data_dir=str(data))
        result = make_evaluator(held_out)(Embedder(setup.eval_model(state)))
    print(f"held-out pairs: ACC {result.metrics['ACC']:.1f}, EER {result.metrics['EER']:.1f}")


if __name__ == "__main__":
    main()
