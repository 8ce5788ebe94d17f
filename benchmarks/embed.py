"""``python -m benchmarks.embed [--archs mobilefacenet sfnet20 iresnet50] [--batch 64] [--steps 10]
[--device cpu|gpu] [--xla-baseline]``

Inference throughput (eval mode, no flip) of jsphere's jitted forward and of the same PyTorch model
(``converters.torch_reference.backbones``) under ``torch.inference_mode``, same batch and threads, timed in turns. With
``--xla-baseline`` jsphere also runs with XLA's own CPU convolution (what ``jsphere.models.cpu_conv`` replaces).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from benchmarks.common import interleaved, machine, setup_threads, torch_device, xla_convolutions
from jsphere import cli, errors, models
from jsphere.inference import check_batch_size


def jsphere_runner(arch: str, batch: int, xla_conv: bool = False, *, dtype: str = "fp32",
                   model_kwargs: dict | None = None) -> Callable[[], object]:
    """jsphere's jitted eval-mode forward (``dtype``: fp32 | bf16 compute) on a fixed batch."""
    model = models.build(arch, embed_dim=512, rngs=nnx.Rngs(0), dtype=jnp.bfloat16 if dtype == "bf16" else jnp.float32,
                         **(model_kwargs or {}))
    model.eval()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (batch, 112, 112, 3)).astype(np.float32))
    with xla_convolutions(xla_conv):
        compiled = forward.lower(state, x).compile()
    return lambda: compiled(state, x).block_until_ready()


def torch_runner(arch: str, batch: int, device: str, *, dtype: str = "fp32", channels_last: bool = False,
                 model_kwargs: dict | None = None) -> Callable[[], object]:
    """The same model in PyTorch under ``inference_mode`` (``dtype='bf16'``: bf16 autocast; ``channels_last``:
    model and input in NHWC memory order)."""
    import torch  # optional (jsphere[torch]), as are the reference models built on it

    from converters.torch_reference import backbones as torch_backbones

    torch.set_num_threads(setup_threads(device))
    dev = torch_device(device)
    model = torch_backbones.build(arch, 512, **(model_kwargs or {})).to(dev).eval()
    x = torch.rand(batch, 3, 112, 112, device=dev) * 2 - 1
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bf16")

    def run():
        with torch.inference_mode(), autocast:
            model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return run


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="benchmarks.embed", description=__doc__)
    p.add_argument("--archs", nargs="+", default=["mobilefacenet", "sfnet20", "iresnet50"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--xla-baseline", action="store_true", help="also time jsphere with XLA's CPU convolution")
    a = p.parse_args(argv)
    if a.batch < 1 or a.steps < 1:
        raise errors.UserError(f"--batch {a.batch} / --steps {a.steps}: both must be >= 1")
    check_batch_size(a.batch, "--batch")
    unknown = [arch for arch in a.archs if arch not in models.names()]
    if unknown:
        raise errors.UserError(f"--archs {' '.join(a.archs)}: unknown model {unknown[0]!r}; valid names: "
                               f"{', '.join(models.names())}")
    setup_threads(a.device)
    print(f"embedding img/s, batch {a.batch}, median of {a.steps} interleaved rounds, on {machine()}")
    rows = []
    for arch in a.archs:
        runners = {"jsphere": jsphere_runner(arch, a.batch)}
        if a.xla_baseline:
            runners["jsphere_xla_conv"] = jsphere_runner(arch, a.batch, xla_conv=True)
        runners["torch"] = torch_runner(arch, a.batch, a.device)
        seconds = interleaved(runners, a.steps)
        row = {"arch": arch, "batch": a.batch, **{f"{k}_img_per_s": a.batch / v for k, v in seconds.items()}}
        rows.append(row)
        print(f"  {arch:<14}" + "  ".join(f"{k} {a.batch / v:7.1f}" for k, v in seconds.items())
              + f"  jsphere/PyTorch {seconds['torch'] / seconds['jsphere']:.2f}x", flush=True)
    print(json.dumps({"benchmark": "embed", "machine": machine(), "rows": rows}))
    return 0


if __name__ == "__main__":
    cli.run("benchmarks.embed", main)
