"""The one step builder: every trainer reseeds dropout each step, the state is created in its declared
shardings, a float64 model trains in float64 throughout, and a trainer is only a loss function."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from jsphere import models, parallel, trainers
from tests import train_config


def _config(trainer: str, dropout: float) -> ml_collections.ConfigDict:
    """lr 0 and the same batch every step: only dropout masks can make two steps differ."""
    config = train_config.get_config()
    config.model.name = "sfnet4_bn"
    config.model.kwargs = ml_collections.ConfigDict(dict(dropout=dropout))
    config.optim.lr = 0.0
    config.optim.weight_decay = 0.0
    if trainer == "proxy":
        return config
    config.trainer = "simple"
    config.head.name = "simple"
    config.head.hparams = ml_collections.ConfigDict(dict(wrap="polarlike", b_theta=0.3, alpha=0.001, r=2.0, m=0.0,
                                                         lw=500.0, init_bias=-10.0))
    config.simple.num_bank = config.batch_size  # the bank is refilled with the same batch every step
    config.simple.encoder_momentum = 1.0  # the EMA encoder stays exactly the initial backbone
    return config


def _two_losses(config):
    mesh = parallel.make_mesh(1)
    setup = trainers.make_setup(config, mesh, 12)
    state = trainers.init_state(setup)
    step = trainers.make_step(setup)
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(rng.uniform(-1, 1, (8, 112, 112, 3)), jnp.float32),
             "label": jnp.asarray(rng.integers(0, 12, 8), jnp.int32)}
    losses = []
    for _ in range(2):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    return losses


@pytest.mark.parametrize("trainer", ["proxy", "simple"])
def test_every_trainer_draws_new_dropout_masks_every_step(trainer):
    """lr 0 (and SimPLE's EMA momentum 1), the same batch twice: without dropout both steps compute the same loss;
    with dropout 0.5 the encoders draw new masks at step 2, so the loss changes. Why the tolerances hold on any
    CPU: with lr 0 the parameters come back bit for bit (an update of -0), so the two steps run one compiled
    program on identical inputs and agree to the last bit; new masks move the loss by percents."""
    same = _two_losses(_config(trainer, 0.0))
    np.testing.assert_allclose(same[0], same[1], rtol=1e-6)
    first, second = _two_losses(_config(trainer, 0.5))
    assert abs(first - second) > 1e-3 * abs(first)


def test_the_state_is_created_in_its_declared_shardings():
    config = train_config.get_config()
    config.head.sharded = True
    mesh = parallel.make_mesh(8)
    setup = trainers.make_setup(config, mesh, 12)
    state = trainers.init_state(setup)
    assert state.params["head"]["w"].shape == (16, 16)  # 12 classes padded for 8 devices
    assert state.params["head"]["w"].sharding.spec == jax.sharding.PartitionSpec("data")
    momentum = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(state.opt) if leaf.shape == (16, 16)]
    assert momentum and all(m.sharding.spec == jax.sharding.PartitionSpec("data") for m in momentum)
    assert state.params["backbone"]["fc"]["kernel"].sharding.is_fully_replicated


def _float_dtypes(jaxpr) -> set:
    """The dtypes of every floating value ``jaxpr`` computes, inner jaxprs (jit, custom_vjp, loops) included."""
    out = {v.aval.dtype for eqn in jaxpr.eqns for v in eqn.outvars
           if hasattr(v.aval, "dtype") and jnp.issubdtype(v.aval.dtype, jnp.floating)}
    for eqn in jaxpr.eqns:
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    out |= _float_dtypes(inner)
    return out


@pytest.mark.parametrize(("model", "kwargs"), [("sfnet4_bn", {"width": 0.25}),
                                               ("mobilefacenet", {"blocks": (1, 1, 1, 1), "scale": 1})])
def test_a_float64_model_trains_in_float64_throughout(model, kwargs):
    """``model.dtype='float64'`` (64-bit JAX), what the comparison tests rely on: every parameter (the head's
    centres too), BatchNorm statistic and optimizer value is float64, and so is every floating value the train
    step computes from the float32 images (the embedding tail, BatchNorm statistics, the head, the update)."""
    with jax.enable_x64(True):
        config = train_config.get_config()
        config.model.name, config.model.dtype = model, "float64"
        config.model.kwargs = ml_collections.ConfigDict(kwargs)
        setup = trainers.make_setup(config, parallel.make_mesh(1), 12)
        state = jax.eval_shape(setup.create)
        leaves = jax.tree.leaves((state.params, state.frozen, state.batch_stats, state.opt))
        assert {leaf.dtype for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)} == {jnp.dtype("float64")}
        assert state.params["head"]["w"].dtype == jnp.float64
        step = trainers.make_step(setup)
        batch = {"image": jax.ShapeDtypeStruct((8, 112, 112, 3), jnp.float32),
                 "label": jax.ShapeDtypeStruct((8,), jnp.int32)}
        assert _float_dtypes(jax.make_jaxpr(step)(state, batch).jaxpr) == {jnp.dtype("float64")}


@pytest.mark.parametrize("name", ["sfnet4_bn", "sfnet4_deprecated", "iresnet18", "mobilefacenet",
                                  "mobilefacenet_relu6", "ir_se_18"])
def test_every_backbone_family_has_float64_parameters_and_embeddings_at_dtype_float64(name):
    """Shapes only (``jax.eval_shape``): no float32 parameter, statistic or embedding tail left behind."""
    with jax.enable_x64(True):
        def build_and_embed(x):
            model = models.build(name, embed_dim=16, dtype=jnp.float64)
            return model(x), nnx.state(model)

        embedding, state = jax.eval_shape(build_and_embed, jax.ShapeDtypeStruct((2, 112, 112, 3), jnp.float32))
    assert embedding.dtype == jnp.float64
    assert {leaf.dtype for leaf in jax.tree.leaves(state) if jnp.issubdtype(leaf.dtype, jnp.floating)} == {
        jnp.dtype("float64")}


def test_an_unknown_trainer_is_named():
    with pytest.raises(ValueError, match="config.trainer='distill' is not one of"):
        trainers.get("distill")
