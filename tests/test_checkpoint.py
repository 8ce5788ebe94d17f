"""Checkpoint layout: weights round-trip, resolution of workdir/step paths, retention, clear errors."""

import jax
import numpy as np
import pytest

from jsphere import checkpoint

META = {"model": {"name": "sfnet4", "embed_dim": 8, "kwargs": {}}, "head": None}


def _weights(seed):
    rng = np.random.default_rng(seed)
    return {"layer1": {0: {"conv1": {"kernel": rng.normal(size=(3, 3, 3, 4)).astype(np.float32)}}},
            "fc": {"bias": rng.normal(size=(8,)).astype(np.float32)}}


def test_weights_round_trip_from_workdir_checkpoints_folder_and_step_folder(tmp_path):
    checkpoint.save_weights(tmp_path, step=5, backbone=_weights(0), head=None, meta=META)
    checkpoint.save_weights(tmp_path, step=9, backbone=_weights(1), head={"params": {"w": np.ones((3, 8))}},
                            meta=META)
    latest = checkpoint.load_weights(tmp_path)
    assert latest.step == 9 and latest.meta["model"]["name"] == "sfnet4"
    np.testing.assert_array_equal(latest.head["params"]["w"], np.ones((3, 8)))
    first = checkpoint.load_weights(tmp_path / "checkpoints" / "5")
    assert first.head is None
    np.testing.assert_array_equal(first.backbone["fc"]["bias"], _weights(0)["fc"]["bias"])
    assert checkpoint.load_weights(tmp_path / "checkpoints", step=5).step == 5
    assert checkpoint.list_steps(tmp_path) == [5, 9]
    assert checkpoint.load_meta(tmp_path)["step"] == 9


def test_missing_paths_and_steps_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load_weights(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="holds no jsphere checkpoint"):
        checkpoint.load_weights(tmp_path)
    checkpoint.save_weights(tmp_path, step=1, backbone=_weights(0), head=None, meta=META)
    with pytest.raises(FileNotFoundError, match="no checkpoint for step 7; available steps: \\[1\\]"):
        checkpoint.load_weights(tmp_path, step=7)


def test_unfinished_temporary_checkpoint_folders_are_ignored(tmp_path):
    checkpoint.save_weights(tmp_path, step=2, backbone=_weights(0), head=None, meta=META)
    (tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1").mkdir()
    assert checkpoint.load_weights(tmp_path).step == 2


def test_train_checkpointer_keeps_the_last_k_and_the_save_steps(tmp_path):
    ckpt = checkpoint.TrainCheckpointer(tmp_path, keep=2, save_steps=(2,), async_save=False, with_data=False)
    state = {"x": jax.numpy.arange(4.0)}
    for step in range(1, 6):
        ckpt.save(step, weights={"backbone": state, "head": {}}, train={"step": np.int32(step)}, meta=META)
    ckpt.wait()
    assert ckpt.all_steps() == [2, 4, 5]
    weights, train = ckpt.restore(5, weights={"backbone": state, "head": {}}, train={"step": np.int32(0)})
    assert int(train["step"]) == 5
    ckpt.close()
    assert checkpoint.load_weights(tmp_path).step == 5
