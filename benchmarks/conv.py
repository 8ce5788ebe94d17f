"""``python -m benchmarks.conv [--repeats 5] [--layers SUBSTRING ...] [--no-torch]``

The measurement behind ``jsphere.models.cpu_conv.plan``: for each convolution layer kind of the backbones (at
the batch of the train-step benchmarks), the median ms of every formulation of each pass (forward, input
gradient, weight gradient) on the CPU, fp32, NHWC, jitted; then the whole forward + backward with the plan
``cpu_conv`` picks, with XLA's convolution, and in PyTorch (oneDNN, NCHW) when torch is installed. Everything
of one layer runs interleaved, so machine noise hits every variant alike.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from benchmarks.common import machine, setup_threads
from jsphere import cli, errors
from jsphere.models import cpu_conv

# (name, batch, spatial, in, out, kernel, stride, padding, groups)
LAYERS = [
    ("sfnet 3x3 64 @56", 32, 56, 64, 64, 3, 1, 1, 1),
    ("sfnet 3x3 64->128 s2 @56", 32, 56, 64, 128, 3, 2, 1, 1),
    ("sfnet 3x3 128 @28", 32, 28, 128, 128, 3, 1, 1, 1),
    ("sfnet 3x3 256 @14", 32, 14, 256, 256, 3, 1, 1, 1),
    ("sfnet 3x3 512 @7", 32, 7, 512, 512, 3, 1, 1, 1),
    ("sfnet4 3x3 3->64 s2 @112", 64, 112, 3, 64, 3, 2, 1, 1),
    ("sfnet4 3x3 64->128 s2 @56", 64, 56, 64, 128, 3, 2, 1, 1),
    ("sfnet4 3x3 128->256 s2 @28", 64, 28, 128, 256, 3, 2, 1, 1),
    ("sfnet4 3x3 256->512 s2 @14", 64, 14, 256, 512, 3, 2, 1, 1),
    ("iresnet 3x3 64 @112", 16, 112, 64, 64, 3, 1, 1, 1),
    ("iresnet 3x3 64 s2 @112", 16, 112, 64, 64, 3, 2, 1, 1),
    ("iresnet 1x1 64 s2 @112", 16, 112, 64, 64, 1, 2, 0, 1),
    ("iresnet 3x3 64 @56", 16, 56, 64, 64, 3, 1, 1, 1),
    ("iresnet 3x3 128 @28", 16, 28, 128, 128, 3, 1, 1, 1),
    ("iresnet 3x3 256 @14", 16, 14, 256, 256, 3, 1, 1, 1),
    ("iresnet 3x3 512 @7", 16, 7, 512, 512, 3, 1, 1, 1),
    ("iresnet stem 3x3 3->64 @112", 16, 112, 3, 64, 3, 1, 1, 1),
    ("iresnet 3x3 64->128 @56", 16, 56, 64, 128, 3, 1, 1, 1),
    ("iresnet 3x3 128 s2 @56", 16, 56, 128, 128, 3, 2, 1, 1),
    ("iresnet 1x1 64->128 s2 @56", 16, 56, 64, 128, 1, 2, 0, 1),
    ("iresnet 3x3 128->256 @28", 16, 28, 128, 256, 3, 1, 1, 1),
    ("iresnet 3x3 256 s2 @28", 16, 28, 256, 256, 3, 2, 1, 1),
    ("iresnet 1x1 128->256 s2 @28", 16, 28, 128, 256, 1, 2, 0, 1),
    ("iresnet 3x3 256->512 @14", 16, 14, 256, 512, 3, 1, 1, 1),
    ("iresnet 3x3 512 s2 @14", 16, 14, 512, 512, 3, 2, 1, 1),
    ("iresnet 1x1 256->512 s2 @14", 16, 14, 256, 512, 1, 2, 0, 1),
    ("mbf depthwise 3x3 64 @56", 64, 56, 64, 64, 3, 1, 1, 64),
    ("mbf 3x3 128, groups of 2 @56", 64, 56, 128, 128, 3, 1, 1, 64),
    ("mbf depthwise 3x3 128 s2 @56", 64, 56, 128, 128, 3, 2, 1, 128),
    ("mbf GDC 7x7 512 @7", 64, 7, 512, 512, 7, 1, 0, 512),
]


def _jax_fns(layer) -> tuple[dict, str]:
    """Runners of each pass's formulations (dense layers) and of the whole forward + backward; the plan."""
    _, n, size, cin, cout, k, s, p, groups = layer
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((n, size, size, cin), np.float32))
    w = jnp.asarray(rng.standard_normal((k, k, cin // groups, cout), np.float32) * 0.05)
    strides, pads = (s, s), ((p, p), (p, p))
    args = dict(window_strides=strides, padding=pads, dimension_numbers=cpu_conv.NHWC, feature_group_count=groups)
    plan = cpu_conv.plan(x.shape, w.shape, strides, pads, groups)
    out = {}
    if groups == 1:
        dy = jnp.asarray(rng.standard_normal(lax.conv_general_dilated(x, w, **args).shape, np.float32))
        for part, kinds in zip(("fwd", "dx", "dw"), cpu_conv.formulations(k, s), strict=True):
            for kind in kinds:
                if part == "fwd":
                    f = jax.jit(lambda x, w, kind=kind: cpu_conv.forward_pass(x, w, strides, pads, kind))
                    out[f"{part} {kind}"] = lambda f=f: jax.block_until_ready(f(x, w))
                else:
                    fn = cpu_conv.input_grad_pass if part == "dx" else cpu_conv.weight_grad_pass
                    f = jax.jit(lambda x, w, dy, fn=fn, kind=kind: fn(x, w, dy, strides, pads, kind))
                    out[f"{part} {kind}"] = lambda f=f: jax.block_until_ready(f(x, w, dy))
    for name, conv in (("all xla", lax.conv_general_dilated), ("all plan", cpu_conv.cpu_conv_general_dilated)):
        both = jax.jit(jax.grad(lambda x, w, conv=conv: jnp.sum(conv(x, w, **args) ** 2), argnums=(0, 1)))
        out[name] = lambda f=both: jax.block_until_ready(f(x, w))
    return out, "/".join(plan)


def _torch_fn(layer):
    import torch  # optional (--no-torch; jsphere[torch])

    _, n, size, cin, cout, k, s, p, groups = layer
    conv = torch.nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False)
    x = torch.randn(n, cin, size, size, requires_grad=True)

    def both():
        conv.zero_grad(set_to_none=True)
        x.grad = None
        (conv(x) ** 2).sum().backward()

    return both


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="benchmarks.conv", description=__doc__)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--layers", nargs="+", default=[], help="only the layers whose name contains one of these")
    p.add_argument("--no-torch", action="store_true")
    a = p.parse_args(argv)
    if a.repeats < 1:
        raise errors.UserError(f"--repeats {a.repeats}: must be >= 1")
    layers = [layer for layer in LAYERS if not a.layers or any(s in layer[0] for s in a.layers)]
    if not layers:
        raise errors.UserError(f"--layers {' '.join(a.layers)}: matches no layer; the layers are "
                            + ", ".join(repr(layer[0]) for layer in LAYERS))
    threads = setup_threads("cpu")
    if not a.no_torch:
        import torch  # optional (--no-torch; jsphere[torch])

        torch.set_num_threads(threads)
    print(f"single layers, fp32, median ms of {a.repeats} interleaved rounds, on {machine()}")
    rows = []
    for layer in layers:
        fns, plan = _jax_fns(layer)
        if not a.no_torch:
            fns["torch"] = _torch_fn(layer)
        times = {name: [] for name in fns}
        for fn in fns.values():  # warm-up and compilation
            fn()
        for _ in range(a.repeats):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        row = {"layer": layer[0], "plan": plan, **{name: 1e3 * float(np.median(t)) for name, t in times.items()}}
        rows.append(row)
        passes = "  ".join(f"{part}: " + " ".join(f"{name.split()[1]} {row[name]:.0f}" for name in fns
                                                  if name.startswith(part + " ")) for part in ("fwd", "dx", "dw")
                           if any(name.startswith(part + " ") for name in fns))
        whole = (f"fwd+bwd: plan {plan} {row['all plan']:.0f}, xla {row['all xla']:.0f}"
                 + (f", torch {row['torch']:.0f}" if "torch" in row else ""))
        print(f"  {layer[0]:<30} {passes}  | {whole}", flush=True)
    print(json.dumps({"benchmark": "conv", "machine": machine(), "rows": rows}))
    return 0


if __name__ == "__main__":
    cli.run("benchmarks.conv", main)
