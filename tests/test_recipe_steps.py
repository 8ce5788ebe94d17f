"""Several full train steps of jsphere equal an independent PyTorch replica of each reference codebase's own
training loop, from the same weights on the same batches: loss and learning rate of every step, every updated
parameter and BatchNorm statistic after every step.

* OpenSphere v1 (``runner.py``, ``Runner.train`` + ``update_model``, branch OpenSphere_v0): an SGD and a
  MultiStepLR per module, ``clip_grad_norm_`` per module, the head's ``w`` [D, C] normalised in place before
  each forward;
* OpenSphere v2 (``opensphere/proxy_based_trainer.py``, ``train_step``): one SGD with a backbone and a head
  group, ``clip_grad_norm_`` of both together, MultiStepLR, the head's ``w`` [C, D] normalised in place;
* arcface_torch (``recognition/arcface_torch/train_v2.py``, the fp32 path): ``PartialFC_V2`` (sample rate 1, one
  process) scoring with ``CombinedMarginLoss`` into ``DistCrossEntropy``, one SGD over backbone + centres,
  ``clip_grad_norm_(backbone.parameters(), 5)``, ``PolynomialLRWarmup`` stepped after every update.

Why the tolerance holds on any CPU: both sides compute in float64. Summation order (thread count, AVX2 or
AVX-512 kernels, XLA's or oneDNN's convolutions) moves a float64 result by ~1e-16 of its magnitude; four SGD steps
of a BatchNorm net on 8 images amplify that by at most ~1e4 (measured: the first update's gradient norm is in
the hundreds at lr 0.1), so the two sides agree to ~1e-12. The test allows 1e-8 of each update's largest entry:
far above that noise, and far below what any difference in semantics gives (projecting arcface_torch's
centres moves their update by ~90 %, optax's clipping coefficient instead of torch's ``max_norm / (norm + 1e-6)``
by 1e-6, the warm-up's first learning rate by 100 %). A tensor whose update is itself rounding noise (exactly zero
gradient) is compared to 1e-12 of its size instead.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch

from configs.base import get_base_config
from converters.core import mapping
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference import heads as torch_heads
from converters.torch_reference.loops import (
    CombinedMarginLoss,
    PartialFC,
    arcface_torch_loop,
    opensphere_v1_loop,
    opensphere_v2_loop,
)
from jsphere import models, parallel, trainers

BATCH, CLASSES, EMBED, STEPS = 8, 300, 32, 4
RTOL = 1e-8
ATOL = 1e-12  # float64 rounding (1e-16) amplified 1e4 times, of a tensor of size 1


# ---------------------------------------------------------------------------------------------- recipes
def _config(model: str, model_kwargs: dict, head: str, hparams: dict, **optim) -> ml_collections.ConfigDict:
    c = get_base_config()
    c.model.name, c.model.embed_dim, c.model.dtype = model, EMBED, "float64"
    c.model.kwargs = ml_collections.ConfigDict(model_kwargs)
    c.head.name, c.head.hparams = head, ml_collections.ConfigDict(hparams)
    c.batch_size, c.total_steps, c.num_devices = BATCH, 6, 1
    c.optim.update(optim)
    return c


SFNET_V1 = ("sfnet4_deprecated", {"width": 0.25})
SFNET_V2 = ("sfnet4_bn", {"width": 0.25, "features_scale_init": 0.1})
MBF = ("mobilefacenet", {"blocks": (1, 1, 1, 1), "scale": 1})
SF2_V1 = dict(magn_type="C", alpha=0.7, r=40.0, m=0.4, t=3.0, lw=10.0)
SF2_V2 = dict(magn_type="C", alpha=0.8, r=64.0, m=0.5, t=3.0, lw=50.0)
ARC = dict(s=64.0, m1=1.0, m2=0.5, m3=0.0)

CASES = {
    # family, backbone, head, head hparams, optimizer
    "opensphere_v1-sfnet-sphereface2C-clip": (
        "v1", SFNET_V1, "sphereface2", SF2_V1, dict(clip_scope="per_module", clip_grad_norm=5.0,
                                                   milestones=(2, 3))),
    "opensphere_v2-sfnet_bn-arcface-joint_clip": (
        "v2", SFNET_V2, "arcface", dict(s=64.0, m=0.5), dict(clip_scope="joint", clip_grad_norm=5.0,
                                                             milestones=(3, 5))),
    "opensphere_v2-sfnet_bn-sphereface2": (
        "v2", SFNET_V2, "sphereface2", SF2_V2, dict(clip_scope="joint", clip_grad_norm=100.0, milestones=(3, 5))),
    "arcface_torch-mbf-arcface-warmup-filtering": (
        "arcface_torch", MBF, "combined_margin", dict(ARC, interclass_filtering_threshold=0.1),
        dict(schedule="poly", warmup_steps=2, clip_scope="backbone", clip_grad_norm=5.0, weight_decay=1e-4)),
    "arcface_torch-mbf-cosface": (
        "arcface_torch", MBF, "combined_margin", dict(s=64.0, m1=1.0, m2=0.0, m3=0.4),
        dict(schedule="poly", warmup_steps=0, clip_scope="backbone", clip_grad_norm=5.0)),
}


def _batches(seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(STEPS):
        labels = rng.integers(0, CLASSES, BATCH)
        labels[1] = labels[0]  # a repeated identity
        yield rng.uniform(-1, 1, (BATCH, 112, 112, 3)), labels


def _torch_pair(family, model, hparams_head, config, jsphere_model, state):
    backbone = torch_backbones.build(model[0], EMBED, **model[1]).double().train()
    pure = models.pure_state(jsphere_model)
    missing, unexpected = backbone.load_state_dict(
        {k: torch.from_numpy(np.array(v, np.float64)) for k, v in mapping.pure_to_torch(jsphere_model, pure).items()},
        strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    w = np.array(state.params["head"]["w"], np.float64)
    if family == "arcface_torch":
        return backbone, PartialFC(CombinedMarginLoss(**hparams_head), w)
    v2 = family == "v2"
    head = torch_heads.HEADS[config.head.name](EMBED, CLASSES, v2=v2, **dict(hparams_head)).double()
    with torch.no_grad():
        head.w.copy_(torch.from_numpy(w if v2 else w.T.copy()))
        if "b" in state.params["head"]:
            head.b.copy_(torch.from_numpy(np.array(state.params["head"]["b"], np.float64)))
    return backbone, head


def _torch_weights(backbone, head, family):
    out = {f"backbone.{k}": v.detach().numpy().copy() for k, v in backbone.state_dict().items()
           if not k.endswith("num_batches_tracked")}
    for k, v in head.state_dict().items():
        value = v.detach().numpy().copy()
        out[f"head.{'w' if k == 'weight' else k}"] = value.T if family == "v1" and k == "w" else value
    return out


def _jsphere_weights(setup, state):
    model = setup.merge(state.params["backbone"], state.frozen, state.batch_stats, state.rest)
    out = {f"backbone.{k}": np.asarray(v) for k, v in mapping.pure_to_torch(model, models.pure_state(model)).items()}
    out.update({f"head.{k}": np.asarray(v) for k, v in state.params["head"].items()})
    return out


def _assert_update_close(step, ours, ref, before):
    """Each tensor's change in this step, jsphere vs the replica: to RTOL of the change's largest entry, plus ATOL
    of the tensor's own size for the tensors whose change is itself rounding noise (a bias or running mean
    behind a BatchNorm has an exactly zero gradient: its ~1e-17 change carries no relative precision)."""
    assert set(ours) <= set(ref), sorted(set(ours) - set(ref))
    for key, value in ours.items():
        delta_ref, delta = ref[key] - before[key], value - before[key]
        err = float(np.max(np.abs(delta - delta_ref)))
        tol = RTOL * float(np.max(np.abs(delta_ref))) + ATOL * max(1.0, float(np.max(np.abs(ref[key]))))
        assert err <= tol, f"step {step}: {key} update differs by {err:.2e} (allowed {tol:.2e})"


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_train_steps_equal_the_reference_training_loop_in_float64(case):
    family, model, head_name, hparams, optim = CASES[case]
    with jax.enable_x64(True):
        config = _config(*model, head_name, hparams, **optim)
        setup = trainers.make_setup(config, parallel.make_mesh(1), CLASSES)
        state = trainers.init_state(setup)
        assert state.params["head"]["w"].dtype == jnp.float64
        jsphere_model = setup.merge(state.params["backbone"], state.frozen, state.batch_stats, state.rest)
        backbone, head = _torch_pair(family, model, hparams, config, jsphere_model, state)
        if family == "arcface_torch":  # PartialFC_V2's centres: N(0, 0.01), left unnormalised
            assert float(np.std(np.asarray(state.params["head"]["w"]))) == pytest.approx(0.01, rel=0.05)
            loop = arcface_torch_loop(backbone, head, _torch_batches(), lr=config.optim.lr,
                                      weight_decay=config.optim.weight_decay, warmup=config.optim.warmup_steps,
                                      total=config.total_steps)
        else:
            fn = opensphere_v1_loop if family == "v1" else opensphere_v2_loop
            loop = fn(backbone, head, _torch_batches(), lr=config.optim.lr, weight_decay=config.optim.weight_decay,
                      milestones=config.optim.milestones, clip=config.optim.clip_grad_norm)
        step_fn = trainers.make_step(setup)
        before = _jsphere_weights(setup, state)
        for i, ((images, labels), (ref_loss, ref_lr)) in enumerate(zip(_batches(0), loop, strict=True)):
            batch = {"image": jnp.asarray(images, jnp.float64), "label": jnp.asarray(labels, jnp.int32)}
            state, metrics = step_fn(state, batch)
            assert float(metrics["lr"]) == pytest.approx(ref_lr, rel=1e-12, abs=1e-15), f"step {i} lr"
            assert float(metrics["loss"]) == pytest.approx(ref_loss, rel=RTOL), f"step {i} loss"
            ours, ref = _jsphere_weights(setup, state), _torch_weights(backbone, head, family)
            _assert_update_close(i, ours, ref, before)
            before = ref


def _torch_batches():
    for images, labels in _batches(0):
        yield torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), torch.from_numpy(labels)
