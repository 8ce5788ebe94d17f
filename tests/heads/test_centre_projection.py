"""Class centres follow their recipe: OpenSphere's heads project them onto the sphere and pass the gradient
straight through; arcface_torch's combined margin (Partial FC) starts them N(0, 0.01), never projects them and
differentiates through the normalisation. Both are checked against PyTorch autograd in float64 (the only
rounding is float32's in jsphere, ~1e-7 of the gradient, against a 1e-5 tolerance)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jsphere import heads

B, D, C = 6, 16, 11


def _inputs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D)).astype(np.float32) * 3
    w = (rng.normal(size=(C, D)) * 0.01).astype(np.float32)  # norm ~0.04: far from the sphere
    y = rng.integers(0, C, B)
    return x, w, y


def _centre_gradient(head, w, x, y):
    params, state = head.init(jax.random.key(0), D, C)
    return np.asarray(jax.grad(lambda w: head.loss({**params, "w": w}, state, jnp.asarray(x), jnp.asarray(y), 0)[0])(
        jnp.asarray(w)))


def _torch_cosface_gradient(x, w, y, *, through_normalisation):
    tw = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    unit = F.normalize(tw, dim=1) if through_normalisation else tw / tw.detach().norm(dim=1, keepdim=True)
    cos = F.normalize(torch.tensor(x, dtype=torch.float64), dim=1) @ unit.t()
    F.cross_entropy(64.0 * (cos - 0.4 * F.one_hot(torch.tensor(y), C)), torch.tensor(y)).backward()
    return tw.grad.numpy()


def test_combined_margin_keeps_raw_centres_and_differentiates_through_the_normalisation():
    head = heads.build("combined_margin", m2=0.0, m3=0.4)
    assert not head.project_centres
    params, _ = head.init(jax.random.key(1), 512, 2000)
    assert float(jnp.std(params["w"])) == pytest.approx(0.01, rel=0.02)
    assert head.project(params) is params
    x, w, y = _inputs()
    grad, ref = _centre_gradient(head, w, x, y), _torch_cosface_gradient(x, w, y, through_normalisation=True)
    np.testing.assert_allclose(grad, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_opensphere_heads_project_and_pass_the_gradient_straight_through():
    head = heads.build("cosface", s=64.0, m=0.4)
    assert head.project_centres
    x, w, y = _inputs()
    projected = np.asarray(head.project({"w": jnp.asarray(w)})["w"])
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1.0, rtol=1e-6)
    grad = _centre_gradient(head, projected, x, y)
    ref = _torch_cosface_gradient(x, projected, y, through_normalisation=False)
    np.testing.assert_allclose(grad, ref, rtol=0, atol=1e-5 * np.abs(ref).max())
    # the two recipes give different centre gradients even on the sphere (the tangent projection)
    other = _torch_cosface_gradient(x, projected, y, through_normalisation=True)
    assert np.abs(grad - other).max() > 1e-2 * np.abs(ref).max()


def test_the_config_overrides_a_heads_recipe():
    config = ml_collections.ConfigDict(dict(name="combined_margin", hparams={}, project_centres=True, init_std=None))
    head = heads.from_config(config)
    assert head.project_centres and head.init_std == 0.01
    config.update(dict(name="arcface", project_centres=None, init_std=0.05))
    head = heads.from_config(config)
    assert head.project_centres and head.init_std == 0.05
    with pytest.raises(ValueError, match="init_std=-1.0 must be > 0"):
        heads.build("arcface", init_std=-1.0)
