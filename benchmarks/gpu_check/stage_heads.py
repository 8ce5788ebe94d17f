"""Stage ``heads``: every head's loss and gradients on the device against float64 references, on random inputs,
at JAX's default matmul precision (TF32 on Ampere/Hopper GPUs) and at ``highest``.

The float64 reference of every head is jsphere's own head run in float64 on the CPU — the function the suite
checks against OpenSphere's float64 values (``tests/heads/test_reference_values.py``) and against independent
float64 PyTorch implementations (``converters/torch_reference/losses.py``). Where the suite has such an independent
implementation (``losses.HEAD_CASES``), the device result is also compared with it directly.

Errors: the loss's relative error, and per gradient leaf max |device - reference| over max |reference|. Pass:
at ``highest`` every loss within 1e-4 and every gradient within 1e-3 (float32 rounding of a D-term dot product
and a softmax over C classes stays orders of magnitude below these); the default precision's errors are
reported, not judged (TF32 keeps 10 mantissa bits by design).
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.gpu_check.context import Context
from benchmarks.gpu_check.profiles import Profile
from jsphere import heads

LOSS_RTOL, GRAD_TOL = 1e-4, 1e-3
STEP = 10  # past the first step: annealed heads (A-Softmax) are in their schedule


def _inputs(b: int, d: int, c: int, rows: int, seed: int):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(b, d)) * 3).astype(np.float32)
    w = rng.normal(size=(rows, d))
    w = (w / np.linalg.norm(w, axis=1, keepdims=True)).astype(np.float32)
    y = rng.integers(0, c, b).astype(np.int32)
    y[0] = y[1]  # a repeated label
    return x, w, y


def _loss_kwargs(name: str, x: np.ndarray, y: np.ndarray, seed: int) -> dict:
    """SimPLE's memory bank (it has no class centres): the batch's own features plus random others."""
    if name != "simple":
        return {}
    rng = np.random.default_rng(seed + 1)
    bank = np.concatenate([x, rng.normal(size=x.shape).astype(np.float32) * 3])
    labels = np.concatenate([y, rng.integers(0, int(y.max()) + 1, len(y)).astype(np.int32)])
    return {"bank_features": bank, "bank_labels": labels, "self_offset": 0}


def _f64(tree, cpu):
    """``tree`` on the CPU with its floating arrays in float64 (call with x64 enabled)."""

    def leaf(a):
        a = np.asarray(a)
        return jax.device_put(a.astype(np.float64) if np.issubdtype(a.dtype, np.floating) else a, cpu)

    return jax.tree.map(leaf, tree)


def _value_and_grads(head, params, state, x, y, kwargs, precision: str | None):
    """Loss and gradients w.r.t. the embeddings and every parameter, jitted on the arrays' device."""

    def f(x, params, kw):  # a head that draws random numbers (ElasticFace) draws the same ones on both sides
        key = {"key": jax.random.key(STEP)} if head.stochastic else {}
        return head.loss(params, state, x, y, STEP, **kw, **key)[0]

    ctx = jax.default_matmul_precision(precision) if precision else contextlib.nullcontext()
    with ctx:
        loss, (gx, gp) = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))(x, params, kwargs)
    return float(loss), {"x": np.asarray(gx, np.float64), **{k: np.asarray(v, np.float64) for k, v in gp.items()}}


def _errors(ours: tuple[float, dict], ref: tuple[float, dict]) -> dict:
    loss_err = abs(ours[0] - ref[0]) / max(abs(ref[0]), 1e-12)
    grads = {}
    for k, r in ref[1].items():
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        grads[k] = float(np.max(np.abs(ours[1][k] - r))) / scale if scale > 0 else float(np.max(np.abs(ours[1][k])))
    return {"loss_rel": loss_err, "grad_rel": max(grads.values()) if grads else 0.0, "grads": grads}


def _torch_reference(cases, name: str, hparams: dict, x, w, y):
    """The suite's independent float64 PyTorch loss for this head and hyper-parameters, if it has one."""
    for case_name, case_hparams, fn, kw in cases:
        if case_name == name and all(hparams.get(k) == v for k, v in case_hparams.items()):
            import torch  # optional: CASES is empty without it

            tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            tw = torch.tensor(w, dtype=torch.float64, requires_grad=True)
            loss = fn(tx, tw, torch.tensor(y.astype(np.int64)), **kw)
            loss.backward()
            return float(loss.detach()), {"x": tx.grad.numpy(), "w": tw.grad.numpy()}
    return None


def run(name: str, profile: Profile, ctx: Context) -> None:
    try:  # PyTorch is optional here: without it, the float64 jsphere references alone
        from converters.torch_reference.losses import HEAD_CASES as CASES
    except ImportError as e:  # no PyTorch: the float64 jsphere references alone
        print(f"  no independent PyTorch references: {e}", flush=True)
        CASES = []

    b, d, c = profile.head_shape
    device, cpu = jax.devices()[0], jax.devices("cpu")[0]
    rows = {}
    names = list(profile.head_names or [n for n in heads.names() if n not in heads.ALIASES])
    for i, head_name in enumerate(names):
        head = heads.build(head_name)
        params, state = head.init(jax.random.key(i), d, c)
        x, w, y = _inputs(b, d, c, params["w"].shape[0] if "w" in params else c, seed=i)
        if "w" in params:
            params = {**params, "w": w}
        params = {k: np.asarray(v) for k, v in params.items()}
        kwargs = _loss_kwargs(head_name, x, y, seed=i)
        with jax.enable_x64(True):
            ref = _value_and_grads(head, _f64(params, cpu), _f64(state, cpu), _f64(x, cpu), jax.device_put(y, cpu),
                                   _f64(kwargs, cpu), None)
        on_device = [jax.device_put(jnp.asarray(a), device) for a in (x, y)]
        row = {"reference": "jsphere float64 (CPU)"}
        for precision in ("default", "highest"):
            ours = _value_and_grads(head, jax.device_put(params, device), jax.device_put(state, device),
                                    *on_device, jax.device_put(kwargs, device),
                                    None if precision == "default" else precision)
            row[precision] = _errors(ours, ref)
            if "w" in params:
                torch_ref = _torch_reference(CASES, head_name, head.hparams, x, w, y)
                if torch_ref is not None:
                    row[f"{precision}_vs_torch_float64"] = _errors((ours[0], {k: ours[1][k] for k in ("x", "w")}),
                                                                   torch_ref)
        rows[head_name] = row
        ctx.record(heads=rows)
        high = row["highest"]
        ctx.check(f"{head_name} at 'highest': loss rel err {high['loss_rel']:.1e} <= {LOSS_RTOL:.0e} and grad err "
                  f"{high['grad_rel']:.1e} <= {GRAD_TOL:.0e}",
                  high["loss_rel"] <= LOSS_RTOL and high["grad_rel"] <= GRAD_TOL)
        print(f"  {head_name:<18} default: loss {row['default']['loss_rel']:.1e} grad {row['default']['grad_rel']:.1e}"
              f"   highest: loss {high['loss_rel']:.1e} grad {high['grad_rel']:.1e}", flush=True)
    worst = {p: {k: max(r[p][k] for r in rows.values()) for k in ("loss_rel", "grad_rel")}
             for p in ("default", "highest")}
    ctx.record(worst=worst, shape={"batch": b, "dim": d, "classes": c})
