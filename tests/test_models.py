"""Backbones: parameter counts of every name against the reference numbers, shapes, modes, dtypes, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jsphere import models

# PyTorch parameter counts of the reference implementations (OpenSphere sfnet.py / insightface iresnet.py and
# mobilefacenet.py), frozen features.weight included, as sum(p.numel() for p in model.parameters()) counts them.
REFERENCE_PARAMS = {
    "sfnet4": 14_396_544,
    "sfnet10": 17_052_032,
    "sfnet20": 24_500_992,
    "sfnet36": 34_605_440,
    "sfnet64": 50_020_864,
    "sfnet20_bn": 24_506_688,
    "sfnet64_bn": 50_036_544,
    "iresnet18": 24_025_600,
    "iresnet34": 34_139_328,
    "iresnet50": 43_590_848,
    "iresnet100": 65_156_160,
    "iresnet200": 118_833_920,
    "mobilefacenet": 2_059_520,
    "mobilefacenet_large": 6_314_880,
}
# The _deprecated SFNets have the same tensors as the plain ones (identical state_dict keys and shapes).
REFERENCE_PARAMS.update({f"sfnet{d}_deprecated": REFERENCE_PARAMS[f"sfnet{d}"] for d in (4, 10, 20, 36, 64)})
# Each BN SFNet adds per conv a BN (2C) and drops the conv bias (C): net +C per conv, plus features (2*512).
BN_EXTRA = {4: 64 + 128 + 256 + 512, 10: 64 + 128 * 3 + 256 * 5 + 512, 36: 64 * 5 + 128 * 9 + 256 * 17 + 512 * 5}
REFERENCE_PARAMS.update({f"sfnet{d}_bn": REFERENCE_PARAMS[f"sfnet{d}"] + extra + 2 * 512
                         for d, extra in BN_EXTRA.items()})


def abstract(name, **kw):
    return nnx.eval_shape(lambda: models.build(name, rngs=nnx.Rngs(0), **kw))


def test_registry_lists_every_family():
    names = models.names()
    for d in (4, 10, 20, 36, 64):
        assert {f"sfnet{d}", f"sfnet{d}_bn", f"sfnet{d}_deprecated"} <= set(names)
    assert {"iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet200", "mobilefacenet",
            "mobilefacenet_large"} <= set(names)


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_count_equals_reference(name):
    assert models.param_count(abstract(name)) == REFERENCE_PARAMS[name]


@pytest.mark.parametrize("name", ["sfnet64_bn", "iresnet100", "mobilefacenet", "sfnet20_deprecated"])
def test_output_shape_by_abstract_evaluation(name):
    model = abstract(name, embed_dim=256)
    out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, 112, 112, 3), jnp.float32))
    assert out.shape == (2, 256)
    assert out.dtype == jnp.float32


def test_state_paths_mirror_torch_state_dict_keys():
    model = abstract("iresnet18")
    paths = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(model))}
    for key in ["conv1.kernel", "bn1.scale", "bn1.mean", "prelu.slope", "layer1.0.bn1.var",
                "layer1.0.downsample.0.kernel", "layer1.0.downsample.1.bias", "layer4.1.conv2.kernel",
                "bn2.scale", "fc.kernel", "features.scale", "features.bias"]:
        assert key in paths
    mbf = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(abstract("mobilefacenet")))}
    assert {"layers.0.layers.0.kernel", "layers.1.layers.0.kernel", "layers.3.layers.0.layers.1.layers.2.slope",
            "conv_sep.layers.1.mean", "features.layers.0.layers.0.kernel", "features.layers.2.kernel",
            "features.layers.3.scale"} <= mbf


def test_insightface_features_scale_is_frozen_and_opensphere_v2_trains_it():
    frozen = abstract("iresnet18")
    assert isinstance(frozen.features.scale, models.FrozenParam)
    assert not nnx.state(frozen, nnx.Param)["features"].get("scale")
    trainable = abstract("iresnet18", features_scale="trainable", features_scale_init=0.1)
    assert isinstance(trainable.features.scale, nnx.Param)


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 112, 112, 3)), jnp.float32)


def test_small_model_forward_is_jittable_and_eval_is_deterministic(images):
    model = models.build("sfnet4_bn", embed_dim=32, rngs=nnx.Rngs(0))
    model.eval()

    @nnx.jit
    def embed(m, x):
        return m(x)

    first, second = embed(model, images), embed(model, images)
    assert first.shape == (4, 32)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    np.testing.assert_allclose(np.asarray(model(images)), np.asarray(first), rtol=1e-4, atol=1e-4)


def test_train_mode_updates_batch_statistics_eval_mode_does_not(images):
    model = models.build("sfnet4_bn", embed_dim=16, rngs=nnx.Rngs(0))
    before = np.asarray(model.layer1[0].bn1.mean[...]).copy()
    model.train()
    model(images)
    after_train = np.asarray(model.layer1[0].bn1.mean[...]).copy()
    assert not np.allclose(before, after_train)
    model.eval()
    model(images)
    np.testing.assert_array_equal(after_train, np.asarray(model.layer1[0].bn1.mean[...]))


def test_batchnorm_matches_pytorch_training_semantics():
    """Biased variance to normalise, unbiased variance in the running estimate, momentum 0.1."""
    x = np.random.default_rng(1).normal(2.0, 3.0, (6, 5, 5, 4)).astype(np.float32)
    bn = models.BatchNorm(4)
    y = np.asarray(bn(jnp.asarray(x)))
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)
    n = 6 * 5 * 5
    np.testing.assert_allclose(np.asarray(bn.mean[...]), 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.var[...]), 0.9 + 0.1 * var * n / (n - 1), rtol=1e-5)


def test_batchnorm_stat_groups_normalise_each_group_separately():
    x = np.random.default_rng(2).normal(0, 1, (8, 3)).astype(np.float32)
    x[4:] = x[4:] * 5 + 10
    bn = models.BatchNorm(3)
    bn.stat_groups = 2
    y = np.asarray(bn(jnp.asarray(x)))
    for g in (slice(0, 4), slice(4, 8)):
        xs = x[g]
        np.testing.assert_allclose(y[g], (xs - xs.mean(0)) / np.sqrt(xs.var(0) + 1e-5), rtol=1e-4, atol=1e-4)


def test_channel_prelu_has_one_slope_per_channel():
    prelu = models.ChannelPReLU(3)
    prelu.slope[...] = jnp.array([0.0, 0.5, 2.0])
    y = np.asarray(prelu(-jnp.ones((1, 2, 2, 3))))
    np.testing.assert_allclose(y[0, 0, 0], [0.0, -0.5, -2.0])


def test_bfloat16_compute_keeps_float32_params_and_embedding(images):
    model = models.build("iresnet18", embed_dim=8, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    model.eval()
    out = model(images[:2])
    assert out.dtype == jnp.float32 and out.shape == (2, 8)
    assert bool(jnp.all(jnp.isfinite(out)))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_stride_two_convolutions_pad_symmetrically_like_pytorch():
    model = abstract("sfnet4")
    assert model.layer1[0].conv1.padding == ((1, 1), (1, 1))
    assert abstract("iresnet18").layer1[0].conv2.padding == ((1, 1), (1, 1))


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: .*iresnet100"):
        models.build("resnet50")


@pytest.mark.parametrize("shape,hint", [((2, 3, 112, 112), "NCHW"), ((2, 112, 96, 3), "112x96"),
                                        ((112, 112, 3), "batch axis")])
def test_wrong_input_shape_says_what_is_expected(shape, hint):
    model = abstract("sfnet4")
    with pytest.raises(ValueError, match=r"\[N, 112, 112, 3\].*" + hint):
        nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct(shape, jnp.float32))


def test_weights_round_trip_through_pure_state_and_reject_other_architectures(images):
    src = models.build("sfnet4_bn", embed_dim=8, rngs=nnx.Rngs(0))
    dst = models.build("sfnet4_bn", embed_dim=8, rngs=nnx.Rngs(1))
    src.eval()
    dst.eval()
    models.load_pure_state(dst, models.pure_state(src))
    np.testing.assert_array_equal(np.asarray(src(images)), np.asarray(dst(images)))
    with pytest.raises(ValueError, match="missing.*conv1.bias"):
        models.load_pure_state(models.build("sfnet4", embed_dim=8), models.pure_state(src))


def test_sfnet_width_scales_every_stage_and_refuses_non_positive():
    model = abstract("sfnet4_bn", width=0.5)
    assert [getattr(model, f"layer{s}")[0].conv1.kernel.shape[-1] for s in (1, 2, 3, 4)] == [32, 64, 128, 256]
    assert model.fc.kernel.shape == (256 * 7 * 7, 512)
    out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, 112, 112, 3), jnp.float32))
    assert out.shape == (2, 512)
    with pytest.raises(ValueError, match="width must be > 0"):
        models.build("sfnet4_bn", width=0.0)
