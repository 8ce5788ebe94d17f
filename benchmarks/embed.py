"""``python -m benchmarks.embed [--archs iresnet50 sfnet20] [--batch 64] [--steps 10] [--device cpu|gpu]``

Inference throughput (eval mode, no flip) of jsphere's jitted forward and of the same PyTorch model
(``converters.torch_models``) under ``torch.inference_mode``, same batch and threads.
"""

from __future__ import annotations

import json

from benchmarks.common import machine, setup_threads, timed
from jsphere import cli


def jsphere_embed(arch: str, batch: int, steps: int) -> float:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx

    from jsphere import models

    model = models.build(arch, embed_dim=512, rngs=nnx.Rngs(0))
    model.eval()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, 112, 112, 3)).astype(np.float32))
    median, _ = timed(lambda: forward(state, x).block_until_ready(), steps, warmup=2)
    return batch / median


def torch_embed(arch: str, batch: int, steps: int, device: str) -> float:
    import torch

    from converters import torch_models

    torch.set_num_threads(setup_threads(device))
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    model = torch_models.build(arch, 512).to(dev).eval()
    x = torch.rand(batch, 3, 112, 112, device=dev) * 2 - 1

    def run():
        with torch.inference_mode():
            model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    median, _ = timed(run, steps, warmup=2)
    return batch / median


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="benchmarks.embed", description=__doc__)
    p.add_argument("--archs", nargs="+", default=["iresnet50", "sfnet20"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    a = p.parse_args(argv)
    setup_threads(a.device)
    rows = []
    for arch in a.archs:
        ours, theirs = jsphere_embed(arch, a.batch, a.steps), torch_embed(arch, a.batch, a.steps, a.device)
        rows.append({"arch": arch, "batch": a.batch, "jsphere_img_per_s": ours, "torch_img_per_s": theirs})
        print(f"{arch:<12} batch {a.batch}: jsphere {ours:8.1f} img/s, PyTorch {theirs:8.1f} img/s "
              f"({ours / theirs:.2f}x)")
    print(json.dumps({"benchmark": "embed", "machine": machine(), "rows": rows}))
    return 0


if __name__ == "__main__":
    cli.run("benchmarks.embed", main)
