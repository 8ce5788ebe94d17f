"""``python -m benchmarks.train_step --arch sfnet20_deprecated --head sphereface2 --batch 32 --steps 20
[--dtype fp32|bf16] [--device cpu|gpu] [--classes 8631] [--no-torch] [--xla-baseline]``

Median step time and img/s of jsphere's jit train step (forward + loss + backward + SGD update; compilation
timed separately) and of the same model/head/optimizer step in PyTorch (``converters.torch_reference.backbones`` and
``converters.torch_reference.heads``), in one run, same batch, same threads, timed in turns; ``--xla-baseline`` adds
jsphere with XLA's own CPU convolution (what ``jsphere.models.cpu_conv`` replaces). On a GPU also MFU (XLA's
FLOP count over the measured bf16 matmul peak) and peak memory, with PyTorch AMP (bf16 autocast) as the
reference.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from benchmarks.common import interleaved, machine, setup_threads, timed, torch_device, xla_convolutions
from configs.base import get_base_config
from configs.opensphere_recipes import HEADS_VGGFACE2, V2_HEADS
from jsphere import cli, errors, models, parallel, trainers
from jsphere.inference import check_batch_size
from jsphere.memory import available_memory

# The heads a step can be timed with, and their hyper-parameters (which do not change a step's cost): OpenSphere
# v1's VGGFace2 recipe for the SFNet losses, v2's MS1M recipe for the margins of the IResNet rows.
HEAD_HPARAMS = {"sphereface2": HEADS_VGGFACE2["sphereface2"], "sphereface": HEADS_VGGFACE2["sphereface"],
                "arcface": V2_HEADS["arcface"], "cosface": V2_HEADS["cosface"]}
HEAD_BYTES_PER_CLASS = 512 * 4 * 4  # a 512-d float32 class centre, its gradient, momentum and update


def jsphere_step(arch, head, batch, classes, dtype, xla_conv=False, *, model_kwargs=None):
    """(runner, facts): one jitted train step on a fixed batch, and its compile time, FLOPs and memory;
    ``model_kwargs``: the backbone's extra constructor arguments (e.g. ``{"width": 0.5}``)."""
    flags.FLAGS.mark_as_parsed()
    c = get_base_config()
    c.model.name, c.model.dtype = arch, {"bf16": "bfloat16", "fp32": "float32"}[dtype]
    c.model.kwargs.update(model_kwargs or {})
    c.head.name = head
    c.head.hparams.update(HEAD_HPARAMS.get(head, {}))
    c.batch_size, c.total_steps, c.num_devices = batch, 10**6, 1
    mesh = parallel.make_mesh(1)
    setup = trainers.make_setup(c, mesh, classes)
    holder = {"state": trainers.init_state(setup)}
    step = trainers.make_step(setup)
    rng = np.random.default_rng(0)
    data = parallel.global_batch({"image": rng.uniform(-1, 1, (batch, 112, 112, 3)).astype(np.float32),
                                  "label": rng.integers(0, classes, batch).astype(np.int32)}, mesh)
    with xla_convolutions(xla_conv):
        lowered = step.lower(holder["state"], data)
    start = time.perf_counter()
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start

    def run():
        holder["state"], metrics = compiled(holder["state"], data)
        jax.block_until_ready(metrics)

    cost, written = compiled.cost_analysis(), lowered.cost_analysis()  # after XLA's passes; as written
    cost = cost[0] if isinstance(cost, list) else cost
    written = written[0] if isinstance(written, list) else written
    memory = compiled.memory_analysis()
    return run, {"compile_s": compile_s, "flops": float(cost.get("flops", 0.0)) if cost else 0.0,
                 "flops_lowered": float(written.get("flops", 0.0)) if written else 0.0,
                 "peak_bytes": getattr(memory, "temp_size_in_bytes", 0) + getattr(memory, "argument_size_in_bytes", 0)
                 if memory else 0}


def torch_step(arch, head, batch, classes, dtype, device, *, channels_last=False, model_kwargs=None):
    """A runner of the same model/head/optimizer step in PyTorch (``channels_last``: model and input in NHWC
    memory order)."""
    import torch  # optional (--no-torch; jsphere[torch]), as are the reference models built on it

    from converters.torch_reference import backbones as torch_backbones
    from converters.torch_reference import heads as torch_heads

    dev = torch_device(device)
    torch.set_num_threads(setup_threads(device))
    model = torch_backbones.build(arch, 512, **(model_kwargs or {})).to(dev).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_head = torch_heads.HEADS[head](512, classes, **HEAD_HPARAMS.get(head, {})).to(dev)
    opt = torch.optim.SGD(list(model.parameters()) + list(loss_head.parameters()), lr=0.1, momentum=0.9,
                          weight_decay=5e-4)
    x = torch.rand(batch, 3, 112, 112, device=dev) * 2 - 1
    y = torch.randint(0, classes, (batch,), device=dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bf16")

    def run():
        opt.zero_grad(set_to_none=True)
        with autocast:
            feats = model(x)
        loss = loss_head(feats.float(), y)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return run


def matmul_peak_flops(n: int = 8192) -> float:
    """Measured bf16 matmul throughput of the accelerator (FLOP/s) on n x n matrices, the MFU denominator."""
    a = jnp.ones((n, n), jnp.bfloat16)
    f = jax.jit(lambda a: a @ a)
    median, _ = timed(lambda: f(a).block_until_ready(), 10, warmup=2)
    return 2 * n**3 / median


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="benchmarks.train_step", description=__doc__)
    p.add_argument("--arch", default="sfnet20_deprecated")
    p.add_argument("--head", default="sphereface2", choices=sorted(HEAD_HPARAMS))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--classes", type=int, default=8631)
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--xla-baseline", action="store_true", help="also time jsphere with XLA's CPU convolution")
    a = p.parse_args(argv)
    if a.batch < 1 or a.steps < 1:
        raise errors.UserError(f"--batch {a.batch} / --steps {a.steps}: both must be >= 1")
    check_batch_size(a.batch, "--batch")
    if a.arch not in models.names():
        raise errors.UserError(f"--arch {a.arch}: unknown model {a.arch!r}; valid names: {', '.join(models.names())}")
    memory = available_memory()
    if a.classes < 2 or (memory is not None and a.classes * HEAD_BYTES_PER_CLASS > memory):
        most = f" and at most {memory // HEAD_BYTES_PER_CLASS:,} (what this machine's memory holds)" if memory else ""
        raise errors.UserError(f"--classes {a.classes:,}: must be at least 2{most}")
    setup_threads(a.device)
    runners, facts = {}, {}
    runners["jsphere"], facts["jsphere"] = jsphere_step(a.arch, a.head, a.batch, a.classes, a.dtype)
    if a.xla_baseline:
        runners["jsphere_xla_conv"], facts["jsphere_xla_conv"] = jsphere_step(a.arch, a.head, a.batch, a.classes,
                                                                              a.dtype, xla_conv=True)
    if not a.no_torch:
        runners["torch"] = torch_step(a.arch, a.head, a.batch, a.classes, a.dtype, a.device)
    seconds = interleaved(runners, a.steps)
    result = {"benchmark": "train_step", "arch": a.arch, "head": a.head, "batch": a.batch, "dtype": a.dtype,
              "machine": machine(), **{k: {"median_s": v, "img_per_s": a.batch / v, **facts.get(k, {})}
                                       for k, v in seconds.items()}}
    if a.device == "gpu":
        peak = matmul_peak_flops()
        result["mfu"] = facts["jsphere"]["flops"] / seconds["jsphere"] / peak
        result["matmul_peak_tflops"] = peak / 1e12
    print(f"{a.arch} + {a.head}, batch {a.batch}, {a.dtype}, median of {a.steps} interleaved steps, on "
          f"{result['machine']}")
    for name, value in seconds.items():
        extra = f" (compile {facts[name]['compile_s']:.1f} s)" if name in facts else ""
        print(f"  {name:<18} {value * 1e3:9.1f} ms/step {a.batch / value:8.1f} img/s{extra}")
    if "torch" in seconds:
        for name in runners:
            if name != "torch":
                print(f"  {name} / PyTorch step time: {seconds[name] / seconds['torch']:.2f}x")
    if "mfu" in result:
        print(f"  MFU {100 * result['mfu']:.1f}% of a measured {result['matmul_peak_tflops']:.0f} TFLOP/s bf16 peak")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    cli.run("benchmarks.train_step", main)
