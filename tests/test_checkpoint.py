"""Checkpoint layout: weights round-trip, resolution of workdir/step paths, retention, clear errors."""

import shutil

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


def _train_checkpoints(tmp_path, steps):
    ckpt = checkpoint.TrainCheckpointer(tmp_path, keep=10, async_save=False, with_data=False)
    template = {"backbone": {"x": jax.numpy.zeros(4096)}, "head": {}}
    for step in steps:
        x = np.random.default_rng(step).normal(size=4096).astype(np.float32)  # incompressible
        x[0] = step
        ckpt.save(step, weights={"backbone": {"x": jax.numpy.asarray(x)}, "head": {}}, train={"step": np.int32(step)},
                  meta=META)
    ckpt.wait()
    return ckpt, template


def _truncate_largest_array_file(step_dir):
    files = [p for p in (step_dir / "weights").rglob("*") if p.is_file() and "ocdbt.process_" in str(p)]
    victim = max(files, key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])


def test_resume_skips_a_truncated_newest_checkpoint_with_a_warning_and_keeps_it(tmp_path, caplog):
    ckpt, template = _train_checkpoints(tmp_path, (3, 6))
    _truncate_largest_array_file(tmp_path / "checkpoints" / "6")
    step, weights, train = ckpt.restore_latest(weights=template, train={"step": np.int32(0)})
    assert step == 3 and int(train["step"]) == 3 and float(weights["backbone"]["x"][0]) == 3.0
    assert "checkpoint of step 6 at" in caplog.text and str(tmp_path / "checkpoints" / "6") in caplog.text
    assert ckpt.all_steps() == [3]
    assert (tmp_path / "checkpoints_unreadable" / "6" / "weights").is_dir()  # set aside, not deleted
    ckpt.save(6, weights={"backbone": {"x": jax.numpy.ones(4096)}, "head": {}}, train={"step": np.int32(6)},
              meta=META)  # training writes that step again
    ckpt.wait()
    ckpt.close()
    assert checkpoint.list_steps(tmp_path) == [3, 6]


def test_resume_skips_a_checkpoint_missing_its_weights_item(tmp_path, caplog):
    ckpt, template = _train_checkpoints(tmp_path, (2, 4))
    shutil.rmtree(tmp_path / "checkpoints" / "4" / "weights")
    step, _, _ = ckpt.restore_latest(weights=template, train={"step": np.int32(0)})
    ckpt.close()
    assert step == 2 and "checkpoint of step 4" in caplog.text and "weights" in caplog.text


def test_resume_and_list_steps_ignore_foreign_and_half_written_folders(tmp_path):
    ckpt, template = _train_checkpoints(tmp_path, (5,))
    ckpt.close()
    root = tmp_path / "checkpoints"
    (root / "notes").mkdir()
    (root / "readme.txt").write_text("not a checkpoint")
    (root / "9").mkdir()  # a numbered folder with nothing in it
    (root / "7.orbax-checkpoint-tmp-3").mkdir()  # an interrupted save
    assert checkpoint.list_steps(tmp_path) == [5]
    ckpt = checkpoint.TrainCheckpointer(tmp_path, keep=10, async_save=False, with_data=False)
    step, _, _ = ckpt.restore_latest(weights=template, train={"step": np.int32(0)})
    ckpt.close()
    assert step == 5 and checkpoint.load_weights(tmp_path).step == 5


def test_no_readable_checkpoint_is_an_error_naming_each_step_and_moves_nothing(tmp_path):
    ckpt, template = _train_checkpoints(tmp_path, (1, 2))
    for step in (1, 2):
        _truncate_largest_array_file(tmp_path / "checkpoints" / str(step))
    with pytest.raises(ValueError, match="no checkpoint in .* reads back: step 2: .*; step 1: "):
        ckpt.restore_latest(weights=template, train={"step": np.int32(0)})
    ckpt.close()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1", "2"]
    with pytest.raises(ValueError, match="checkpoints/2: the checkpoint does not read back"):
        checkpoint.load_weights(tmp_path)


def test_a_workdir_without_checkpoints_restores_nothing(tmp_path):
    ckpt = checkpoint.TrainCheckpointer(tmp_path, async_save=False, with_data=False)
    assert ckpt.restore_latest(weights={"backbone": {}, "head": {}}, train={}) is None
    ckpt.close()
