"""Trainer hooks: a trainer's own metrics keep their names (from its loss and from ``finish``), and a trainer that
keeps an EMA of the weights and names it in ``eval_weights`` has that EMA evaluated and exported everywhere:
validation during training, the checkpoint's weights (what ``--mode=eval``, ``jsphere.embed``,
``Embedder.from_checkpoint`` and the exporters read), while training resumes from the trained weights.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from converters import export_torch
from jsphere import checkpoint, heads, models, parallel, train, trainers
from jsphere.checkpoint import train_items
from jsphere.eval.evaluators import make_evaluator
from jsphere.inference import Embedder
from jsphere.optim import global_norm
from tests import tiny_model, train_config

MOMENTUM = 0.5


def ema_init(config, backbone, batch_stats, key):
    return {"ema": {"params": jax.tree.map(jnp.copy, backbone), "batch_stats": jax.tree.map(jnp.copy, batch_stats)}}


def ema_finish(setup, state):
    ema = state.extra["ema"]
    params = jax.tree.map(lambda e, p: MOMENTUM * e + (1 - MOMENTUM) * p, ema["params"], state.params["backbone"])
    stats = jax.tree.map(lambda e, p: MOMENTUM * e + (1 - MOMENTUM) * p, ema["batch_stats"], state.batch_stats)
    distance = global_norm(jax.tree.map(jnp.subtract, params, state.params["backbone"]))
    return state.replace(extra={"ema": {"params": params, "batch_stats": stats}}), {"ema/distance": distance}


def ema_loss(setup, model, params, state, batch, context):
    loss, out = trainers.proxy.loss(setup, model, params, state, batch, context)
    return loss, out.replace(metrics={"embedding_rms": jnp.sqrt(jnp.mean(model(batch["image"]) ** 2))})


EMA = trainers.Trainer(loss=ema_loss, init_extra=ema_init, finish=ema_finish,
                       eval_weights=lambda setup, state: state.extra["ema"])


def _tiny_setup(trainer):
    return trainers.build_setup(lambda: tiny_model.TinyNet(8, rngs=nnx.Rngs(0)), heads.build("cosface", s=8.0),
                                optax.sgd(0.1), num_classes=5, trainer=trainer, mesh=parallel.make_mesh(1))


def test_trainer_metrics_keep_their_names_and_finish_reports_metrics():
    setup = _tiny_setup(EMA)
    state, step = trainers.init_state(setup), trainers.make_step(setup)
    for i in range(2):
        state, metrics = step(state, tiny_model.batch(8, 5, seed=i))
    assert {"embedding_rms", "ema/distance", "loss", "head/cos_target"} <= set(metrics)
    assert float(metrics["ema/distance"]) > 0


def test_a_trainer_metric_named_like_a_step_metric_is_refused():
    def finish(setup, state):
        return state, {"loss": jnp.zeros(())}

    setup = _tiny_setup(trainers.Trainer(loss=trainers.proxy.loss, finish=finish))
    with pytest.raises(ValueError, match="the trainer reports metric\\(s\\) loss, which the step reports itself"):
        trainers.make_step(setup)(trainers.init_state(setup), tiny_model.batch(8, 5))


def test_eval_model_is_the_ema_and_the_trained_weights_stay_the_online_ones():
    setup = _tiny_setup(EMA)
    state, step = trainers.init_state(setup), trainers.make_step(setup)
    for i in range(3):
        state, _ = step(state, tiny_model.batch(8, 5, seed=i))
    evaluated = nnx.state(setup.eval_model(state), nnx.Param)
    np.testing.assert_array_equal(np.asarray(evaluated["fc"]["kernel"][...]),
                                  np.asarray(state.extra["ema"]["params"]["fc"]["kernel"]))
    assert not np.allclose(state.extra["ema"]["params"]["fc"]["kernel"], state.params["backbone"]["fc"]["kernel"])


def _leaves(tree):
    """{'layer1/0/bn1/scale': array}: a checkpoint read back names list positions as strings, a live tree as ints."""
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): np.asarray(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _restored(config, workdir, step):
    """The train item of ``step``: the trainer's extra state and the trained backbone."""
    setup = trainers.make_setup(config, parallel.make_mesh(), 12)
    weights_target, train_target = train_items.restore_targets(setup, trainers.init_state(setup), None)
    ckpt = checkpoint.TrainCheckpointer(workdir, with_data=False)
    _, restored = ckpt.restore(step, weights=weights_target, train=train_target)
    ckpt.close()
    return restored


def test_an_ema_trainer_is_validated_saved_evaluated_and_exported_with_its_ema(tmp_path, synthetic_data):
    trainers.register("ema_test", EMA)
    config = train_config.get_config(str(synthetic_data))
    config.trainer = "ema_test"
    config.total_steps = 4
    config.optim.milestones = ()
    config.checkpoint.every_steps = 2
    config.val = [dict(name="syn", type="pairs", path=str(synthetic_data / "val_pairs.txt"),
                       data_dir=str(synthetic_data))]
    config.val_every = 4
    result = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert "train/ema/distance" in result

    restored = _restored(config, tmp_path / "run", 4)
    ema = {**_leaves(restored["ema"]["params"]), **_leaves(restored["ema"]["batch_stats"])}
    saved = _leaves(checkpoint.load_weights(tmp_path / "run").backbone)  # what the exporters read
    for key, value in ema.items():
        np.testing.assert_array_equal(saved[key], value)
    trained = _leaves(restored[train_items.TRAINED_BACKBONE])
    assert any(not np.array_equal(saved[key], value) for key, value in trained.items())
    assert checkpoint.load_meta(tmp_path / "run")["source"]["backbone"] == "eval_weights of trainer 'ema_test'"

    embedder = Embedder.from_checkpoint(tmp_path / "run")  # what --mode=eval and jsphere.embed embed with
    loaded = _leaves(models.pure_state(embedder.model))
    for key, value in ema.items():
        np.testing.assert_array_equal(loaded[key], value)
    offline = make_evaluator(config.val[0])(embedder).metrics
    assert result["val/syn/ACC"] == pytest.approx(offline["ACC"], abs=1e-9)
    export_torch.main(["--ckpt", str(tmp_path / "run"), "--layout", "opensphere-v2", "--out", str(tmp_path / "m.pth")])
    exported = torch.load(tmp_path / "m.pth", weights_only=True)["backbone"]["fc.weight"].numpy()
    np.testing.assert_array_equal(exported, np.asarray(restored["ema"]["params"]["fc"]["kernel"]).T)

    # resuming trains on from the trained weights, not the EMA: 4 + 2 steps end where 6 straight steps end
    config.total_steps, config.val = 6, []
    train.train_and_evaluate(config, str(tmp_path / "run"))
    train.train_and_evaluate(config, str(tmp_path / "straight"))
    for name in ("run", "straight"):
        assert checkpoint.list_steps(tmp_path / name)[-1] == 6
    resumed, straight = _restored(config, tmp_path / "run", 6), _restored(config, tmp_path / "straight", 6)
    for key, value in _leaves(straight[train_items.TRAINED_BACKBONE]).items():
        np.testing.assert_array_equal(_leaves(resumed[train_items.TRAINED_BACKBONE])[key], value)

    # a run starting from these weights (config.init_from) starts its EMA from them, not from its random init
    setup = trainers.make_setup(config, parallel.make_mesh(), 12)
    state = train_items.init_from_checkpoint(setup, trainers.init_state(setup), str(tmp_path / "run"))
    for key, value in _leaves(state.extra["ema"]["params"]).items():
        np.testing.assert_array_equal(value, _leaves(checkpoint.load_weights(tmp_path / "run").backbone)[key])
