"""Stages ``speed_*`` (train step) and ``embed_*`` (inference): jsphere against PyTorch on the same device, in
one process, timed in turns (``benchmarks.common.interleaved``) with the runners of ``benchmarks.train_step``
and ``benchmarks.embed``.

Train step: jsphere bf16 (bf16 compute, float32 parameters and head) against PyTorch AMP (bf16 autocast) in NCHW
and in channels_last, cuDNN autotuning on (``cudnn.benchmark``); the faster PyTorch layout is the reference.
Per framework: img/s, peak memory (PyTorch: ``max_memory_allocated`` over its own steps; jsphere: XLA's
memory analysis of the compiled step, and the allocator's process peak), and MFU = XLA's FLOP count of the step
(``cost_analysis``) over the step time, over a measured bf16 matmul peak and over 989 TFLOP/s (H100 SXM dense
bf16). Embedding: the forward in eval mode, float32 and bf16, both layouts of PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from benchmarks.common import interleaved
from benchmarks.embed import jsphere_runner, torch_runner
from benchmarks.gpu_check.context import Context
from benchmarks.gpu_check.measure import device_memory
from benchmarks.gpu_check.profiles import Profile
from benchmarks.train_step import jsphere_step, matmul_peak_flops, torch_step

H100_BF16_PEAK = 989e12
LAYOUTS = ("nchw", "channels_last")


def torch_built(profile: Profile, build: Callable[[], Callable[[], object]]) -> tuple[Callable[[], object], Any]:
    """(runner, peak GiB of its own allocations over two calls, None off CUDA); the runner is warm."""
    cuda = profile.device == "gpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    run = build()
    run()
    run()
    return run, round((torch.cuda.max_memory_allocated() - base) / 2**30, 3) if cuda else None


def _torch_variants(profile: Profile, ctx: Context, build: Callable[[str], Callable[[], object]],
                    key: str) -> dict[str, Callable[[], object]]:
    """PyTorch runners per layout; one that fails to build (out of memory) is recorded and left out."""
    runners = {}
    for layout in LAYOUTS:
        try:
            runners[f"torch_{layout}"], memory = torch_built(profile, lambda layout=layout: build(layout))
            ctx.record(**{f"{key}torch_{layout}_memory_gib": memory})
        except RuntimeError as e:  # torch.OutOfMemoryError is a RuntimeError
            ctx.record(**{f"{key}torch_{layout}_error": " ".join(str(e).split())[:300]})
            print(f"  PyTorch {layout}: {e}", flush=True)
    return runners


def train_speed(name: str, profile: Profile, ctx: Context) -> None:
    case = profile.speed[name]
    arch, kw = case.model.arch, case.model.kwargs
    ctx.record(arch=arch, kwargs=kw, head=case.head, batch=case.batch, classes=case.classes, dtype="bf16")
    peak = matmul_peak_flops(profile.matmul_n)
    ctx.record(matmul_peak_tflops=round(peak / 1e12, 1))
    runners: dict[str, Callable[[], object]] = {}
    runners["jsphere"], facts = jsphere_step(arch, case.head, case.batch, case.classes, "bf16", model_kwargs=kw)
    runners["jsphere"]()
    runners["jsphere"]()
    # MFU's numerator: XLA's count of the compiled step, unless it misses work the program as written has (a count
    # below half of the lowered program's: e.g. convolutions handed to cuDNN that the analysis cannot see into)
    flops, source = facts["flops"], "compiled"
    if flops < 0.5 * facts["flops_lowered"]:
        flops, source = facts["flops_lowered"], "lowered"
    ctx.record(compile_s=round(facts["compile_s"], 2), flops_per_step=flops, flops_source=source,
               flops_compiled=facts["flops"], flops_lowered=facts["flops_lowered"],
               jsphere_xla_step_gib=round(facts["peak_bytes"] / 2**30, 3), jsphere_process_memory_gib=device_memory())
    runners.update(_torch_variants(profile, ctx, lambda layout: torch_step(
        arch, case.head, case.batch, case.classes, "bf16", profile.device, channels_last=layout == "channels_last",
        model_kwargs=kw), ""))
    seconds = interleaved(runners, profile.rounds, profile.warmup, profile.settle)
    rows = {}
    for runner, s in seconds.items():
        rows[runner] = {"step_ms": round(s * 1e3, 2), "img_per_s": round(case.batch / s, 1),
                        "mfu_measured_peak": flops / s / peak, "mfu_989": flops / s / H100_BF16_PEAK}
    ctx.record(runners=rows)
    torch_best = max((r["img_per_s"] for k, r in rows.items() if k.startswith("torch")), default=None)
    if torch_best:
        ctx.record(vs_best_torch=round(rows["jsphere"]["img_per_s"] / torch_best, 3))
    for runner, r in rows.items():
        print(f"  {runner:<20} {r['step_ms']:9.1f} ms {r['img_per_s']:9.1f} img/s  MFU "
              f"{100 * r['mfu_measured_peak']:.1f}% of measured, {100 * r['mfu_989']:.1f}% of 989 TFLOP/s", flush=True)


def embed_speed(name: str, profile: Profile, ctx: Context) -> None:
    model = profile.embed[name]
    b = profile.embed_batch
    ctx.record(arch=model.arch, kwargs=model.kwargs, batch=b)
    for dtype in ("fp32", "bf16"):
        runners = {"jsphere": jsphere_runner(model.arch, b, dtype=dtype, model_kwargs=model.kwargs)}
        runners.update(_torch_variants(profile, ctx, lambda layout, dtype=dtype: torch_runner(
            model.arch, b, profile.device, dtype=dtype, channels_last=layout == "channels_last",
            model_kwargs=model.kwargs), f"{dtype}_"))
        seconds = interleaved(runners, profile.rounds, profile.warmup, profile.settle)
        rates = {k: round(b / s, 1) for k, s in seconds.items()}
        best = max((v for k, v in rates.items() if k.startswith("torch")), default=None)
        ratio = round(rates["jsphere"] / best, 3) if best else None
        ctx.record(**{dtype: {"img_per_s": rates, "vs_best_torch": ratio}})
        print(f"  {model.arch} {dtype} b{b}: " + "  ".join(f"{k} {v:,.0f}" for k, v in rates.items()) + " img/s",
              flush=True)


def run(name: str, profile: Profile, ctx: Context) -> None:
    (train_speed if name.startswith("speed_") else embed_speed)(name, profile, ctx)
