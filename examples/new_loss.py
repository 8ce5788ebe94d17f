"""Write your own loss: Li-ArcFace as a jsphere head, its parity test, and a short training run with it.

Li et al., "AirFace: Lightweight and Efficient Model for Face Recognition" (arXiv 1907.12256): the logits fall
linearly with the angle instead of with its cosine::

    logits_ij = s (pi - 2 (theta_ij + m [j = y_i])) / pi,    loss = CE(logits, y)

    python examples/new_loss.py [--tiny] [--workdir DIR]

What to copy: the class (one file of your own, imported from your config file, then
``--config.head.name=li_arcface``); ``numpy_li_arcface`` and ``check_parity`` (a pytest test in your suite: an
independent float64 reference, the same loss dense and class-sharded). ``--tiny`` trains a few steps on a few
synthetic identities (what the test suite runs); without it, the quickstart's 400 steps.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs.quickstart import get_config
from jsphere import heads, make_mesh, train
from jsphere.data import synthetic
from jsphere.heads import MarginSoftmax, ShardedHead, register


@register
class LiArcFace(MarginSoftmax):
    """Li-ArcFace: ``s (pi - 2 (theta + m [j = y])) / pi`` (see the module docstring)."""

    name = "li_arcface"
    defaults = {"s": 64.0, "m": 0.45}

    def logits(self, cos, onehot, ctx):  # cos [B, C]: embeddings and class centres normalised
        theta = jnp.arccos(jnp.clip(cos, -1.0 + 1e-7, 1.0 - 1e-7))
        return self.s * (jnp.pi - 2.0 * (theta + self.m * onehot)) / jnp.pi


def numpy_li_arcface(x: np.ndarray, w: np.ndarray, y: np.ndarray, s: float = 64.0, m: float = 0.45) -> float:
    """The loss written again from the formula, in float64 NumPy: x [B, D], w [C, D], y [B]."""
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    logits = s * (np.pi - 2.0 * (np.arccos(cos) + m * np.eye(w.shape[0])[y])) / np.pi
    logits -= logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(logits).sum(axis=1)) - logits[np.arange(len(y)), y]))


def check_parity() -> None:
    """jsphere's head against the NumPy reference in float64 (both compute the same sums; 1e-10 is far above their
    rounding and far below any mistake in the formula), dense and class-sharded over every device."""
    with jax.enable_x64(True):
        head = heads.build("li_arcface", s=32.0, m=0.4)
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(8, 16)), rng.integers(0, 10, 8)
        params, state = head.init(jax.random.key(0), feat_dim=16, num_classes=10)
        w = np.asarray(params["w"], np.float64)
        expected = numpy_li_arcface(x, w, y, s=32.0, m=0.4)
        dense, _, _ = head.loss({"w": jnp.asarray(w)}, state, jnp.asarray(x), jnp.asarray(y), step=0)
        np.testing.assert_allclose(float(dense), expected, rtol=1e-10)
        sharded = ShardedHead(head, make_mesh(), num_classes=10, feat_dim=16)
        padded = sharded.pad({"w": jnp.asarray(w)})
        loss, _, _ = jax.jit(lambda p: sharded.loss(p, state, jnp.asarray(x), jnp.asarray(y), 0))(padded)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-10)
    print(f"parity: li_arcface = {float(dense):.6f}, NumPy reference = {expected:.6f}, class-sharded the same")


def train_with_it(workdir: Path, tiny: bool) -> dict:
    """The quickstart recipe with this head (what ``--config.head.name=li_arcface`` does on the command line)."""
    config = get_config()
    config.head.name = "li_arcface"
    config.head.hparams = ml_collections.ConfigDict({"s": 30.0, "m": 0.3})
    if tiny:
        data = synthetic.generate(workdir / "data", identities=8, images_per_identity=4, holdout_identities=4,
                                  holdout_images=3, pairs=20)
        config.model.kwargs.width, config.model.embed_dim = 0.125, 32
        config.batch_size, config.total_steps, config.optim.warmup_steps, config.log_every = 8, 4, 1, 2
        config.progress_bar = False
    else:
        data = Path(config.data.data_dir)
        if not (data / "train_list.txt").exists():
            synthetic.generate(data)
    config.data.source, config.data.data_dir = str(data / "train_list.txt"), str(data)
    config.val = [dict(name="held-out", type="pairs", path=str(data / "val_pairs.txt"), data_dir=str(data))]
    config.val_every = config.total_steps
    return train.train_and_evaluate(config, str(workdir / "run"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a few steps on a few identities (the test suite's run)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to train (default: a temporary folder)")
    args = parser.parse_args()
    check_parity()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_with_it(args.workdir or Path(tmp), args.tiny)
    print(f"trained {result['step']} steps: loss {result['train/loss']:.3f}, held-out ACC "
          f"{result['val/held-out/ACC']:.1f}")


if __name__ == "__main__":
    main()
