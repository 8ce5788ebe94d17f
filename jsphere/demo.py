"""`make demo`: build every backbone and print its parameter count and output shape.

(The quickstart training run replaces this once the training loop lands.)
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
from flax import nnx

from jsphere import models


def backbone_table(embed_dim: int = 512) -> list[tuple[str, int, tuple[int, ...]]]:
    rows = []
    x = jax.ShapeDtypeStruct((1,) + models.INPUT_SHAPE, jnp.float32)
    for name in models.names():
        model = nnx.eval_shape(lambda n=name: models.build(n, embed_dim=embed_dim, rngs=nnx.Rngs(0)))
        out = nnx.eval_shape(lambda m, x: m(x), model, x)
        rows.append((name, models.param_count(model), tuple(out.shape)))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=None, help="unused until training lands")
    parser.add_argument("--embed-dim", type=int, default=512)
    args = parser.parse_args(argv)
    print(f"{'model':<22}{'parameters':>14}  output for [1, 112, 112, 3]")
    for name, count, shape in backbone_table(args.embed_dim):
        print(f"{name:<22}{count:>14,}  {list(shape)}")


if __name__ == "__main__":
    main()
