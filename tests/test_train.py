"""Training end to end on a tiny config: it learns, resumes bit-exactly after kill -9, gives the same loss
curve on 8 devices as on 1, stops on NaN naming the last good checkpoint, and rejects bad configs early."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest

from jsphere import checkpoint, parallel, train, trainers
from jsphere.checkpoint import train_items
from tests import train_config
from tests.curves import assert_different_training, assert_same_training, read_curves

ROOT = Path(__file__).resolve().parents[1]


def _losses(workdir):
    return list(read_curves(workdir)["train/loss"])


def _run_cli(workdir, data, *extra):
    cmd = [sys.executable, "-m", "jsphere.main", f"--config={ROOT}/tests/train_config.py:{data}",
           f"--workdir={workdir}", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_training_writes_metrics_checkpoints_and_lowers_the_loss(tmp_path, synthetic_data):
    config = train_config.get_config(str(synthetic_data))
    config.total_steps = 24
    config.optim.milestones = (20,)
    config.val = [dict(name="syn", type="pairs", path=str(synthetic_data / "val_pairs.txt"),
                       data_dir=str(synthetic_data))]
    config.val_every = 24
    result = train.train_and_evaluate(config, str(tmp_path))
    losses = _losses(tmp_path)
    # 9.2 -> 6.4 on an AVX-512 CPU; another summation order (XLA's own convolutions) moves these by ~5e-3
    assert len(losses) == 8 and np.mean(losses[-2:]) < np.mean(losses[:2])
    assert 0 <= result["val/syn/ACC"] <= 100
    assert checkpoint.list_steps(tmp_path)[-1] == 24
    meta = checkpoint.load_meta(tmp_path)
    assert meta["model"]["name"] == "sfnet4_bn" and meta["head"]["num_classes"] == 12
    assert (tmp_path / "config.json").exists() and any((tmp_path / "tensorboard").iterdir())


def test_kill_minus_nine_then_rerun_resumes_to_bit_identical_parameters(tmp_path, synthetic_data):
    full = _run_cli(tmp_path / "full", synthetic_data)
    assert full.wait(timeout=300) == 0, full.stdout.read()
    victim = _run_cli(tmp_path / "killed", synthetic_data)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not (ckpts / "6" / "commit_success.txt").exists():
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert 12 not in checkpoint.list_steps(tmp_path / "killed")
    resumed = _run_cli(tmp_path / "killed", synthetic_data)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert "resuming from step" in out
    a, b = checkpoint.load_weights(tmp_path / "full"), checkpoint.load_weights(tmp_path / "killed")
    assert a.step == b.step == 12
    for x, y in zip(jax.tree.leaves((a.backbone, a.head)), jax.tree.leaves((b.backbone, b.head)), strict=True):
        np.testing.assert_array_equal(x, y)


def test_eight_devices_follow_the_one_device_training(tmp_path, synthetic_data):
    """Same global batch, global BatchNorm statistics, same updates: 8 devices follow the curves of 1 (loss,
    global and per-module gradient norms of every step of an unclipped BatchNorm net, first gradient norm in the
    hundreds). Why ``curves.RTOL`` holds on any CPU: float64 (``train_config.comparison``), see tests/curves.py.
    That it catches a fault: 8 devices normalising with the statistics of their own 2 images (``bn_per_device``,
    what a lost all-reduce computes) differ from the 1-device curves by far more than ``RTOL``."""
    steps, curves = 4, {}
    for name, devices, per_device in (("1", 1, False), ("8", 8, False), ("8-local-bn", 8, True)):
        config = train_config.comparison(train_config.get_config(str(synthetic_data)))
        config.num_devices = devices
        config.model.bn_per_device = per_device
        config.batch_size = 16
        config.log_every = 1
        config.total_steps = steps
        config.optim.milestones = (steps,)
        with jax.enable_x64(True):
            train.train_and_evaluate(config, str(tmp_path / name))
        curves[name] = read_curves(tmp_path / name)
    assert_same_training(curves["8"], curves["1"], steps=steps)
    assert_different_training(curves["8-local-bn"], curves["1"], steps=steps)


def test_per_device_batchnorm_trains_on_eight_devices(tmp_path, synthetic_data):
    config = train_config.get_config(str(synthetic_data))
    config.model.bn_per_device = True
    config.batch_size = 16  # two images per device
    config.total_steps = 3
    config.optim.milestones = ()  # constant lr: the milestone of train_config lies past the end
    result = train.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(result["train/loss"])


def test_non_finite_loss_stops_and_names_the_last_good_checkpoint(tmp_path, synthetic_data):
    config = train_config.get_config(str(synthetic_data))
    config.optim.lr = 1e30
    with pytest.raises(train.NonFiniteLoss, match="at step [0-9]+; .*(checkpoints/3|no checkpoint)"):
        train.train_and_evaluate(config, str(tmp_path))


def test_sigterm_saves_a_checkpoint_and_exits_non_zero(tmp_path, synthetic_data):
    proc = _run_cli(tmp_path, synthetic_data, "--config.total_steps=100000", "--config.checkpoint.every_steps=100000")
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out
    assert "SIGTERM received: saved the checkpoint of step" in out
    assert checkpoint.list_steps(tmp_path)


def test_config_errors_are_reported_before_compilation(tmp_path, synthetic_data):
    config = train_config.get_config(str(synthetic_data))
    config.data.source = str(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="config.data.source=.*missing.txt.* does not exist"):
        train.train_and_evaluate(config, str(tmp_path))
    config = train_config.get_config(str(synthetic_data))
    config.batch_size = 12
    with pytest.raises(ValueError, match="batch_size=12 is not divisible by the 8 devices"):
        train.train_and_evaluate(config, str(tmp_path))
    config = train_config.comparison(train_config.get_config(str(synthetic_data)))  # float64 without 64-bit JAX
    with pytest.raises(ValueError, match="model.dtype='float64' needs 64-bit JAX: .*JAX_ENABLE_X64=1"):
        train.train_and_evaluate(config, str(tmp_path))
    config = train_config.get_config(str(synthetic_data))
    config.head.hparams.margin = 0.3
    with pytest.raises(ValueError, match="unknown hyper-parameter\\(s\\) margin"):
        train.train_and_evaluate(config, str(tmp_path))


def test_config_typo_on_the_command_line_fails_at_parse_time(tmp_path, synthetic_data):
    proc = _run_cli(tmp_path, synthetic_data, "--config.optim.lrr=0.1")
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "lrr" in out
    assert not (tmp_path / "checkpoints").exists()


def test_simple_trainer_fills_the_bank_and_updates_the_ema_encoder(tmp_path, synthetic_data):
    config = train_config.get_config(str(synthetic_data))
    config.trainer = "simple"
    config.head.name = "simple"
    config.head.hparams = ml_collections.ConfigDict(dict(wrap="polarlike", b_theta=0.3, alpha=0.001, r=2.0, m=0.0,
                                                         lw=500.0, init_bias=-10.0))
    config.simple.num_bank = 32
    config.simple.encoder_momentum = 0.9
    config.data.sampler = ml_collections.ConfigDict(dict(type="grouped", samples_per_identity=2,
                                                         unbalance_factor=0.5, total_size=0))
    config.total_steps = 6
    config.optim.milestones = (4,)
    result = train.train_and_evaluate(config, str(tmp_path))
    assert np.isfinite(result["train/loss"])
    setup = trainers.make_setup(config, parallel.make_mesh(), 12)
    state = trainers.init_state(setup)
    ckpt = checkpoint.TrainCheckpointer(tmp_path, with_data=False)
    weights_target, train_target = train_items.restore_targets(setup, state, None)
    _, restored = ckpt.restore(6, weights=weights_target, train=train_target)
    ckpt.close()
    assert int(restored["bank"]["ptr"]) == (6 * 8) % 32
    assert (np.asarray(restored["bank"]["labels"]) >= 0).all()  # 6 batches of 8 filled all 32 slots
    weights = checkpoint.load_weights(tmp_path)
    ema = jax.tree.leaves(restored["ema"]["params"])
    online = jax.tree.leaves(weights.backbone)
    assert len(ema) > 0 and not all(np.array_equal(a, b) for a, b in zip(ema, online[: len(ema)], strict=False))


def test_simple_head_requires_the_simple_trainer(tmp_path, synthetic_data):
    config = train_config.get_config(str(synthetic_data))
    config.head.name = "simple"
    config.head.hparams = ml_collections.ConfigDict()
    with pytest.raises(ValueError, match="needs trainer 'simple'"):
        train.train_and_evaluate(config, str(tmp_path))


def test_init_from_loads_a_converted_or_trained_checkpoint_before_training(tmp_path, synthetic_data):
    first = train_config.get_config(str(synthetic_data))
    first.total_steps = 3
    first.optim.milestones = ()  # constant lr: the milestone of train_config lies past the end
    train.train_and_evaluate(first, str(tmp_path / "a"))
    source = checkpoint.load_weights(tmp_path / "a")
    second = train_config.get_config(str(synthetic_data))
    second.init_from = str(tmp_path / "a")
    second.total_steps = 3
    second.optim.milestones = ()  # constant lr: the milestone of train_config lies past the end
    second.optim.lr = 0.0  # no update: the saved weights must come back unchanged
    second.optim.weight_decay = 0.0
    train.train_and_evaluate(second, str(tmp_path / "b"))
    loaded = checkpoint.load_weights(tmp_path / "b")
    np.testing.assert_array_equal(loaded.backbone["fc"]["kernel"], source.backbone["fc"]["kernel"])
    saved = np.asarray(source.head["params"]["w"], np.float64)
    # the step's float32 projection of a 16-d row, in any summation order: 16 roundings of 6e-8 in its sum of
    # squares (halved by the square root), 2 in rsqrt and the product: <= 6e-7 from the exact one on any CPU
    np.testing.assert_allclose(loaded.head["params"]["w"], saved / np.linalg.norm(saved, axis=1, keepdims=True),
                               rtol=1e-6)
    wrong = train_config.get_config(str(synthetic_data))
    wrong.model.name = "sfnet4"
    wrong.init_from = str(tmp_path / "a")
    with pytest.raises(ValueError, match="holds a 'sfnet4_bn' backbone but config.model.name is 'sfnet4'"):
        train.train_and_evaluate(wrong, str(tmp_path / "c"))


def test_training_resumes_from_the_newest_readable_checkpoint(tmp_path, synthetic_data, caplog):
    config = train_config.get_config(str(synthetic_data))
    config.total_steps = 6
    config.optim.milestones = ()
    train.train_and_evaluate(config, str(tmp_path))
    arrays = [p for p in (tmp_path / "checkpoints" / "6" / "weights").rglob("*") if "ocdbt.process_" in str(p)
              and p.is_file()]
    victim = max(arrays, key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    config.total_steps = 9
    result = train.train_and_evaluate(config, str(tmp_path))
    assert result["step"] == 9 and np.isfinite(result["train/loss"])
    assert "checkpoint of step 6" in caplog.text and (tmp_path / "checkpoints_unreadable" / "6").is_dir()
    assert checkpoint.list_steps(tmp_path) == [3, 6, 9]  # step 6 written again from step 3
