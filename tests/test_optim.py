"""Optimizers and schedules reproduce PyTorch's SGD + MultiStepLR and arcface_torch's polynomial warm-up."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from jsphere.optim import lr_schedule, make_optimizer

SGD = dict(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="multistep", milestones=(3, 5),
           gamma=0.1, clip_grad_norm=None, clip_scope="joint")


def _trees(seed, steps):
    rng = np.random.default_rng(seed)

    def tree():
        return {"backbone": {"a": rng.normal(size=(3, 4)).astype(np.float32)},
                "head": {"w": rng.normal(size=(5, 4)).astype(np.float32)}}

    return tree(), [tree() for _ in range(steps)]


def _run_optax(cfg, params, grads, total):
    tx, _ = make_optimizer(cfg, total)
    params = jax.tree.map(jnp.asarray, params)
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(jax.tree.map(jnp.asarray, g), state, params)
        params = optax.apply_updates(params, updates)
    return params


def _run_torch(params, grads, *, lr, milestones, clip=None, scope="joint", head_lr=None):
    a = torch.tensor(params["backbone"]["a"], requires_grad=True)
    w = torch.tensor(params["head"]["w"], requires_grad=True)
    opt = torch.optim.SGD([{"params": [a]}, {"params": [w], "lr": head_lr or lr}], lr=lr, momentum=0.9,
                          weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), 0.1)
    for g in grads:
        a.grad, w.grad = torch.tensor(g["backbone"]["a"]), torch.tensor(g["head"]["w"])
        if clip and scope == "joint":
            torch.nn.utils.clip_grad_norm_([a, w], clip)
        elif clip:
            torch.nn.utils.clip_grad_norm_([a], clip)
            torch.nn.utils.clip_grad_norm_([w], clip)
        opt.step()
        sched.step()
    return a.detach().numpy(), w.detach().numpy()


@pytest.mark.parametrize("clip,scope", [(None, "joint"), (1.0, "joint"), (1.0, "per_module")])
def test_sgd_multistep_matches_torch(clip, scope):
    params, grads = _trees(0, 8)
    out = _run_optax({**SGD, "clip_grad_norm": clip, "clip_scope": scope}, params, grads, 8)
    a, w = _run_torch(params, grads, lr=0.1, milestones=(3, 5), clip=clip, scope=scope)
    np.testing.assert_allclose(np.asarray(out["backbone"]["a"]), a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["head"]["w"]), w, rtol=1e-5, atol=1e-6)


def test_separate_head_learning_rate_matches_torch_param_groups():
    params, grads = _trees(1, 4)
    out = _run_optax({**SGD, "head_lr": 0.01}, params, grads, 4)
    a, w = _run_torch(params, grads, lr=0.1, milestones=(3, 5), head_lr=0.01)
    np.testing.assert_allclose(np.asarray(out["head"]["w"]), w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["backbone"]["a"]), a, rtol=1e-5, atol=1e-6)


def test_multistep_schedule_drops_after_each_milestone():
    sched = lr_schedule({"schedule": "multistep", "milestones": (2, 4), "gamma": 0.1}, 0.1, 6)
    np.testing.assert_allclose([float(sched(i)) for i in range(6)], [0.1, 0.1, 0.01, 0.01, 0.001, 0.001],
                               rtol=1e-6)


def test_poly_schedule_is_arcface_torchs_polynomial_lr_warmup():
    """PolynomialLRWarmup's first value is the optimizer's own lr (``last_epoch == 0``), warm-up included; then
    base * i / warmup up to the warm-up's end, then the linear decay to 0."""
    sched = lr_schedule({"schedule": "poly", "warmup_steps": 2, "power": 1.0}, 0.4, 6)
    np.testing.assert_allclose([float(sched(i)) for i in range(8)], [0.4, 0.2, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0],
                               atol=1e-7)
    sched = lr_schedule({"schedule": "poly", "warmup_steps": 0, "power": 2.0}, 0.4, 4)
    np.testing.assert_allclose([float(sched(i)) for i in range(5)], [0.4, 0.225, 0.1, 0.025, 0.0], atol=1e-7)


def test_clipping_uses_torchs_coefficient():
    """torch scales by max_norm / (norm + 1e-6): at norm 2 and max_norm 1 that is 1e-6 / 2 below optax's 1 / 2."""
    tx = make_optimizer({**SGD, "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "clip_grad_norm": 1.0,
                         "schedule": "constant"}, 4)[0]
    params = {"backbone": {"a": jnp.zeros(4)}, "head": {"w": jnp.zeros(4)}}
    grads = {"backbone": {"a": jnp.full(4, 0.5)}, "head": {"w": jnp.full(4, 0.5)}}  # norm 1.414
    with jax.enable_x64(True):
        updates, _ = tx.update(jax.tree.map(lambda g: g.astype(jnp.float64), grads), tx.init(params), params)
        norm = np.sqrt(2.0)
        np.testing.assert_allclose(np.asarray(updates["backbone"]["a"]), -0.5 / (norm + 1e-6), rtol=1e-12)


def test_unknown_optimizer_and_schedule_are_named():
    with pytest.raises(ValueError, match="optim.name='adam'"):
        make_optimizer({**SGD, "name": "adam"}, 10)
    with pytest.raises(ValueError, match="optim.schedule='step'"):
        make_optimizer({**SGD, "schedule": "step"}, 10)
    with pytest.raises(ValueError, match="clip_scope='all'"):
        make_optimizer({**SGD, "clip_scope": "all"}, 10)
