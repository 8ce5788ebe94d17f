"""Stages ``train5`` and ``sharded``, and the loop recipe's step (``recipe_step``, also timed by ``loop``).

* ``train5``: the loop's recipe (iresnet50 + ArcFace, bf16, batch 256 on a GPU) built through the public
  trainer API exactly as ``jsphere.main`` builds it; 5 steps on one fixed batch must give finite losses, the
  last below the first; then the step's own img/s over ``timed_steps`` more.
* ``sharded``: the class-sharded ArcFace head over every device (85,742 classes, batch 512) with
  ``sample_rate=0.2``: exactly devices x k centre rows get gradient, every positive class among them, and the
  loss equals the dense head's over those rows (both at ``highest`` precision: rtol 1e-4); the sampled head's
  forward+backward time is reported next to the dense head's.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.gpu_check.child import Context
from benchmarks.gpu_check.profiles import Profile


def device_memory() -> dict[str, float]:
    """The device's allocator figures (GiB) when the backend reports them (GPUs do, CPUs may not)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    return {k: round(stats[k] / 2**30, 3) for k in ("peak_bytes_in_use", "bytes_in_use") if k in stats}


def cost_flops(compiled) -> float:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def recipe_step(profile: Profile, seed: int = 0) -> tuple[Any, dict, dict, dict[str, Any]]:
    """(compiled step, state holder, batch, facts) of the loop's recipe on a random batch of its shapes."""
    import jax

    from benchmarks.gpu_check import loop_config
    from jsphere import parallel, trainers

    config = loop_config.get_config(f"{profile.name},")
    mesh = parallel.make_mesh(config.num_devices or None)
    trainer = trainers.get(config.trainer)
    setup = trainers.make_setup(config, mesh, profile.identities, trainer.init_extra)
    holder = {"state": trainers.init_state(setup)}
    step = trainers.make_step(setup, trainer)
    rng = np.random.default_rng(seed)
    b = config.batch_size
    batch = parallel.global_batch({"image": rng.uniform(-1, 1, (b, 112, 112, 3)).astype(np.float32),
                                   "label": rng.integers(0, profile.identities, b).astype(np.int32)}, mesh)
    start = time.perf_counter()
    compiled = step.lower(holder["state"], batch).compile()
    facts = {"compile_s": round(time.perf_counter() - start, 2), "flops_per_step": cost_flops(compiled),
             "arch": config.model.name, "batch": b, "classes": profile.identities, "dtype": config.model.dtype}
    jax.block_until_ready(holder["state"])
    return compiled, holder, batch, facts


def time_steps(compiled, holder: dict, batch: dict, steps: int) -> float:
    """Median seconds of ``steps`` steps (after one untimed)."""
    import jax

    from benchmarks.common import timed

    def run():
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready(metrics)

    return timed(run, steps, warmup=1)[0]


def train5(profile: Profile, ctx: Context) -> None:
    import jax

    compiled, holder, batch, facts = recipe_step(profile)
    ctx.record(**facts)
    losses = []
    for _ in range(profile.train_steps):
        holder["state"], metrics = compiled(holder["state"], batch)
        losses.append(float(jax.device_get(metrics["loss"])))
    ctx.record(losses=losses)
    print(f"  {facts['arch']} + arcface {facts['dtype']}, batch {facts['batch']}: losses "
          + " ".join(f"{v:.4f}" for v in losses), flush=True)
    ctx.check(f"finite losses {losses}", bool(np.all(np.isfinite(losses))))
    ctx.check(f"falling loss: last {losses[-1]:.4f} < first {losses[0]:.4f}", losses[-1] < losses[0])
    seconds = time_steps(compiled, holder, batch, profile.timed_steps)
    ctx.record(step_s=seconds, img_per_s=facts["batch"] / seconds, memory_gib=device_memory())
    print(f"  step {seconds * 1e3:.1f} ms, {facts['batch'] / seconds:,.0f} img/s (compile {facts['compile_s']} s)",
          flush=True)


def sharded(profile: Profile, ctx: Context) -> None:
    import jax
    import jax.numpy as jnp

    from benchmarks.common import timed
    from jsphere import heads, parallel
    from jsphere.heads.sharded import ShardedHead

    classes, b, d, rate = profile.sharded
    mesh = parallel.make_mesh()
    head = heads.build("arcface")
    with jax.default_matmul_precision("highest"):
        sh = ShardedHead(head, mesh, classes, d, sample_rate=rate)
        params, state = sh.init(jax.random.key(0))
        x = jax.random.normal(jax.random.key(1), (b, d)) * 3
        y = jax.random.randint(jax.random.key(2), (b,), 0, classes)
        grad_fn = jax.jit(jax.value_and_grad(lambda p, x: sh.loss(p, state, x, y, 7)[0]))
        loss, g = grad_fn(params, x)
        touched = np.flatnonzero(np.any(np.asarray(g["w"]) != 0, axis=1))
        c_local = sh.classes_per_device
        keep = min(c_local, max(int(rate * c_local), min(b, c_local)))
        index = {c: i for i, c in enumerate(touched.tolist())}
        labels = np.asarray(y).tolist()
        dense = jax.jit(lambda w, yy: head.loss({"w": w}, state, x, yy, 7)[0])
        dense_loss = float(dense(params["w"][touched], jnp.asarray([index.get(c, 0) for c in labels], jnp.int32)))
    positives = set(labels) <= set(index)
    rel = abs(float(loss) - dense_loss) / abs(dense_loss)
    ctx.record(devices=sh.devices, classes=classes, batch=b, dim=d, sample_rate=rate, rows_touched=len(touched),
               rows_expected=sh.devices * keep, positives_kept=positives, loss=float(loss),
               dense_loss_over_rows=dense_loss, loss_rel_err=rel)
    ctx.check(f"{len(touched)} rows got gradient, expected {sh.devices} x {keep}", len(touched) == sh.devices * keep)
    ctx.check("every positive class got gradient", positives)
    ctx.check(f"loss {float(loss):.6f} = dense loss over the sampled rows {dense_loss:.6f} (rel {rel:.1e} <= 1e-4)",
              rel <= 1e-4)
    full = jax.jit(jax.value_and_grad(lambda w, x: head.loss({"w": w}, state, x, y, 7)[0]))
    w_full = jnp.asarray(params["w"][:classes])
    times = {"sampled_ms": timed(lambda: jax.block_until_ready(grad_fn(params, x)), 5)[0] * 1e3,
             "dense_ms": timed(lambda: jax.block_until_ready(full(w_full, x)), 5)[0] * 1e3}
    ctx.record(**times)
    print(f"  {classes} classes on {sh.devices} device(s), rate {rate}: {len(touched)} rows, loss rel err {rel:.1e}; "
          f"head fwd+bwd {times['sampled_ms']:.2f} ms sampled vs {times['dense_ms']:.2f} ms dense", flush=True)


def run(name: str, profile: Profile, ctx: Context) -> None:
    {"train5": train5, "sharded": sharded}[name](profile, ctx)
