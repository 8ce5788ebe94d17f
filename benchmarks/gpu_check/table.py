"""The short table printed last (and written to ``gpu_check.md``): one row per stage, its status, time and its
headline figures (device and versions, worst errors against float64, img/s against PyTorch, MFU, memory)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _f(value: Any, fmt: str = ",.0f") -> str:
    return "?" if value is None else format(value, fmt)


def _env(r: dict) -> str:
    v = r.get("versions", {})
    return (f"{r.get('device_kind', '?')} ({_f(r.get('device_memory_gib'), '.1f')} GiB); jax {v.get('jax')}, "
            f"jaxlib {v.get('jaxlib')}, flax {v.get('flax')}, torch {v.get('torch')}, cuDNN jax "
            f"{r.get('jax_cudnn')} / torch {r.get('torch_cudnn')}")


def _heads(r: dict) -> str:
    w = r.get("worst", {})
    d, h = w.get("default", {}), w.get("highest", {})
    return (f"{len(r.get('heads', {}))} heads, worst vs float64: default loss {_f(d.get('loss_rel'), '.1e')} grad "
            f"{_f(d.get('grad_rel'), '.1e')}; highest loss {_f(h.get('loss_rel'), '.1e')} grad "
            f"{_f(h.get('grad_rel'), '.1e')}")


def _convert(r: dict) -> str:
    return (f"{r.get('arch')}: min cos fp32 {_f(r.get('cos_min_fp32'), '.6f')}, bf16 {_f(r.get('cos_min_bf16'), '.5f')}"
            f" (PyTorch bf16 {_f(r.get('cos_min_torch_bf16'), '.5f')})")


def _train5(r: dict) -> str:
    losses = r.get("losses") or []
    trend = f"loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "no loss"
    return f"{r.get('arch')} b{r.get('batch')}: {trend}; step {_f(r.get('img_per_s'))} img/s"


def _loop(r: dict) -> str:
    ratio = r.get("loop_over_step")
    return (f"loop {_f(r.get('loop_img_per_s'))} img/s vs step {_f(r.get('step_img_per_s'))} img/s "
            f"({_f(None if ratio is None else 100 * ratio)}%), {r.get('workers')} Grain workers")


def _speed(r: dict) -> str:
    rows = r.get("runners", {})
    parts = [f"{k.replace('torch_', 'pt ')} {_f(v.get('img_per_s'))}" for k, v in rows.items()]
    j = rows.get("jsphere", {})
    mem = (f"mem jsphere {_f(r.get('jsphere_xla_step_gib'), '.1f')} GiB, pt "
           f"{_f(r.get('torch_nchw_memory_gib'), '.1f')}/{_f(r.get('torch_channels_last_memory_gib'), '.1f')} GiB")
    return (f"{r.get('arch')} b{r.get('batch')} img/s: " + ", ".join(parts)
            + f"; {_f(r.get('vs_best_torch'), '.2f')}x best PyTorch; MFU "
            f"{_f(100 * j['mfu_measured_peak'] if j else None, '.1f')}% of {_f(r.get('matmul_peak_tflops'))} / "
            f"{_f(100 * j['mfu_989'] if j else None, '.1f')}% of 989 TFLOP/s; {mem}")


def _sharded(r: dict) -> str:
    return (f"{_f(r.get('classes'))} classes, rate {r.get('sample_rate')}: {_f(r.get('rows_touched'))} rows, loss err "
            f"{_f(r.get('loss_rel_err'), '.1e')}; head {_f(r.get('sampled_ms'), '.2f')} ms sampled vs "
            f"{_f(r.get('dense_ms'), '.2f')} ms dense")


def _embed(r: dict) -> str:
    out = []
    for dtype in ("fp32", "bf16"):
        d = r.get(dtype)
        if d:
            rates = d["img_per_s"]
            out.append(f"{dtype} jsphere {_f(rates.get('jsphere'))} vs pt {_f(rates.get('torch_nchw'))}/"
                       f"{_f(rates.get('torch_channels_last'))} ({_f(d.get('vs_best_torch'), '.2f')}x)")
    return f"{r.get('arch')} b{r.get('batch')} img/s: " + "; ".join(out)


SUMMARIES: dict[str, Callable[[dict], str]] = {
    "environment": _env, "heads": _heads, "convert": _convert, "train5": _train5, "loop": _loop,
    "sharded": _sharded}


def summary(record: dict) -> str:
    name, result = record["name"], record.get("result") or {}
    fn = SUMMARIES.get(name) or (_speed if name.startswith("speed_") else _embed)
    try:
        text = fn(result) if result else ""
    except (KeyError, TypeError, ValueError, IndexError) as e:
        text = f"(figures incomplete: {type(e).__name__})"
    problems = record.get("failures", []) + ([record["error"]] if record.get("error") else [])
    return "; ".join([t for t in (text, " / ".join(problems)) if t])


def render(doc: dict) -> str:
    lines = [f"gpu_check ({doc.get('profile')}) {doc.get('started')}, {doc.get('seconds', 0):.0f} s",
             "", "| stage | status | s | figures |", "|---|---|---:|---|"]
    for r in doc["stages"]:
        lines.append(f"| {r['name']} | {r['status']} | {r.get('seconds', 0):.0f} | {summary(r).replace('|', '/')} |")
    return "\n".join(lines)
