"""``python -m benchmarks.conv [--repeats 5]``

Single convolution layers of the backbones on the CPU, fp32, NHWC, jitted, median ms: forward and forward +
backward (input and weight gradients) with XLA's convolution and with ``jsphere.models.cpu_conv``, and the
same layer in PyTorch (oneDNN, NCHW) when torch is installed; the two JAX variants and PyTorch run
interleaved, so machine noise hits them alike. This is the measurement behind ``cpu_conv``'s choices.
"""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks.common import machine, setup_threads
from jsphere import cli

# (name, batch, spatial, in, out, kernel, stride, padding, depthwise)
LAYERS = [
    ("sfnet 3x3 64 @56", 32, 56, 64, 64, 3, 1, 1, False),
    ("sfnet 3x3 64->128 s2 @56", 32, 56, 64, 128, 3, 2, 1, False),
    ("sfnet 3x3 128 @28", 32, 28, 128, 128, 3, 1, 1, False),
    ("sfnet 3x3 512 @7", 32, 7, 512, 512, 3, 1, 1, False),
    ("iresnet 3x3 64 @112", 16, 112, 64, 64, 3, 1, 1, False),
    ("iresnet 1x1 64->128 s2 @56", 16, 56, 64, 128, 1, 2, 0, False),
    ("mbf depthwise 3x3 64 @56", 64, 56, 64, 64, 3, 1, 1, True),
    ("mbf depthwise 3x3 128 s2 @56", 64, 56, 128, 128, 3, 2, 1, True),
    ("mbf GDC 7x7 512 @7", 64, 7, 512, 512, 7, 1, 0, True),
]


def _jax_fns(layer):
    import jax
    import jax.numpy as jnp
    from jax import lax

    from jsphere.models import cpu_conv

    _, n, size, cin, cout, k, s, p, depthwise = layer
    x = jax.random.normal(jax.random.key(0), (n, size, size, cin), jnp.float32)
    w = jax.random.normal(jax.random.key(1), (k, k, 1 if depthwise else cin, cout), jnp.float32) * 0.05
    args = dict(window_strides=(s, s), padding=((p, p), (p, p)), dimension_numbers=cpu_conv.NHWC,
                feature_group_count=cin if depthwise else 1)
    out = {}
    for name, conv in (("xla", lax.conv_general_dilated), ("jsphere", cpu_conv.cpu_conv_general_dilated)):
        forward = jax.jit(lambda x, w, conv=conv: conv(x, w, **args))
        both = jax.jit(jax.grad(lambda x, w, conv=conv: jnp.sum(conv(x, w, **args) ** 2), argnums=(0, 1)))
        out[name] = (lambda f=forward: jax.block_until_ready(f(x, w)), lambda f=both: jax.block_until_ready(f(x, w)))
    return out


def _torch_fns(layer):
    import torch

    _, n, size, cin, cout, k, s, p, depthwise = layer
    conv = torch.nn.Conv2d(cin, cout, k, s, p, groups=cin if depthwise else 1, bias=False)
    x = torch.randn(n, cin, size, size, requires_grad=True)

    def forward():
        with torch.no_grad():
            conv(x)

    def both():
        conv.zero_grad(set_to_none=True)
        x.grad = None
        (conv(x) ** 2).sum().backward()

    return {"torch": (forward, both)}


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="benchmarks.conv", description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args(argv)
    if a.repeats < 1:
        raise cli.UserError(f"--repeats {a.repeats}: must be >= 1")
    threads = setup_threads("cpu")
    fns_of = [_jax_fns]
    if not a.no_torch:
        import torch

        torch.set_num_threads(threads)
        fns_of.append(_torch_fns)
    print(f"single layers, fp32, median of {a.repeats} (ms): forward | forward+backward, on {machine()}")
    rows = []
    for layer in LAYERS:
        fns = {k: v for make in fns_of for k, v in make(layer).items()}
        times = {k: ([], []) for k in fns}
        for f, b in fns.values():  # warm-up and compilation
            f()
            b()
        for _ in range(a.repeats):
            for name, (f, b) in fns.items():
                for i, fn in enumerate((f, b)):
                    start = time.perf_counter()
                    fn()
                    times[name][i].append(time.perf_counter() - start)
        row = {"layer": layer[0], **{f"{k}_{part}_ms": 1e3 * float(np.median(v[i])) for k, v in times.items()
                                     for i, part in enumerate(("fwd", "fwd_bwd"))}}
        rows.append(row)
        print(f"  {layer[0]:<30}" + "  ".join(f"{k} {row[f'{k}_fwd_ms']:7.1f} | {row[f'{k}_fwd_bwd_ms']:7.1f}"
                                              for k in fns), flush=True)
    print(json.dumps({"benchmark": "conv", "machine": machine(), "rows": rows}))
    return 0


if __name__ == "__main__":
    cli.run("benchmarks.conv", main)
