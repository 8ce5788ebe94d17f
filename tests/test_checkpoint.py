"""Checkpoint layout: weights round-trip, resolution of workdir/step paths, retention, clear errors; the readable
rule (checksums, items, manifests) and failing writes."""

import errno
import json
import os
import resource
import shutil
import subprocess
import threading
import time

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


def _flip_bytes_of_largest_array_file(step_dir, count=400):
    """Flip ``count`` bytes in the middle of the step's largest array data file: it still decodes, to wrong values."""
    files = [p for p in (step_dir / "weights").rglob("*") if p.is_file() and "ocdbt.process_" in str(p)]
    victim = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    start = len(data) // 4
    for i in range(start, start + count):
        data[i] ^= 0xFF
    victim.write_bytes(bytes(data))


def test_resume_sets_aside_a_step_with_flipped_bytes_and_resumes_from_the_previous_one(tmp_path, caplog):
    ckpt, template = _train_checkpoints(tmp_path, (3, 6))
    _flip_bytes_of_largest_array_file(tmp_path / "checkpoints" / "6")
    step, weights, _ = ckpt.restore_latest(weights=template, train={"step": np.int32(0)})
    ckpt.close()
    assert step == 3 and float(weights["backbone"]["x"][0]) == 3.0
    assert "checkpoint of step 6" in caplog.text and "backbone/x does not match its checksum" in caplog.text
    assert (tmp_path / "checkpoints_unreadable" / "6" / "weights").is_dir()
    assert checkpoint.list_steps(tmp_path) == [3]


def test_load_weights_names_a_corrupt_step_and_the_newest_readable_one(tmp_path):
    checkpoint.save_weights(tmp_path, step=5, backbone=_weights(0), head=None, meta=META)
    checkpoint.save_weights(tmp_path, step=9, backbone={"big": np.random.default_rng(2).normal(size=8192)
                                                        .astype(np.float32)}, head=None, meta=META)
    _flip_bytes_of_largest_array_file(tmp_path / "checkpoints" / "9")
    for path, step in ((tmp_path, None), (tmp_path / "checkpoints" / "9", None), (tmp_path, 9)):
        with pytest.raises(checkpoint.UnreadableCheckpoint, match=r"checkpoints/9: the checkpoint does not read back "
                           r"\('weights' array backbone/big does not match its checksum\); the newest readable "
                           r"checkpoint is step 5 \(.*checkpoints/5\)$"):
            checkpoint.load_weights(path, step)
    assert checkpoint.load_weights(tmp_path, 5).step == 5


@pytest.mark.parametrize("missing", ["meta", "weights/manifest.ocdbt", "weights/ocdbt.process_0/manifest.ocdbt",
                                     "train"])
def test_a_step_missing_an_item_or_a_manifest_is_unreadable_for_resume_and_for_readers(tmp_path, caplog, missing):
    ckpt, template = _train_checkpoints(tmp_path, (2, 4))
    target = tmp_path / "checkpoints" / "4" / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert checkpoint.list_steps(tmp_path) == [2, 4]  # every reader sees step 4, and names what is wrong with it
    with pytest.raises(checkpoint.UnreadableCheckpoint, match=f"checkpoints/4: .*{missing.split('/')[-1]}.* is "
                       "missing.*; the newest readable checkpoint is step 2"):
        checkpoint.load_weights(tmp_path)
    step, _, _ = ckpt.restore_latest(weights=template, train={"step": np.int32(0)})
    ckpt.close()
    assert step == 2 and "checkpoint of step 4" in caplog.text and "is missing" in caplog.text
    assert (tmp_path / "checkpoints_unreadable" / "4").is_dir() and checkpoint.list_steps(tmp_path) == [2]


def test_a_checkpoint_written_without_checksums_loads_with_a_warning_that_it_is_unverified(tmp_path, caplog):
    """Checkpoints written before checksums were recorded: same layout, no 'checksums' in the metadata."""
    step_dir = checkpoint.save_weights(tmp_path, step=3, backbone=_weights(0), head=None, meta=META)
    meta_file = step_dir / "meta" / "metadata"
    old = {k: v for k, v in json.loads(meta_file.read_text()).items() if k not in ("checksums", "items")}
    meta_file.write_text(json.dumps(old))
    loaded = checkpoint.load_weights(tmp_path)
    np.testing.assert_array_equal(loaded.backbone["fc"]["bias"], _weights(0)["fc"]["bias"])
    assert f"{step_dir} was written without checksums" in caplog.text and "unverified" in caplog.text


def test_checksums_depend_on_the_values_only_not_on_how_the_array_is_sharded():
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jsphere.checkpoint import checksums

    mesh = jax.make_mesh((8,), ("d",))
    x = np.random.default_rng(0).normal(size=(16, 8, 3)).astype(np.float32)
    whole = checksums.tree_checksums({"x": x})
    for spec in (P("d"), P(None, "d"), P()):
        assert checksums.tree_checksums({"x": jax.device_put(x, NamedSharding(mesh, spec))}) == whole
    y = x.copy()
    y[5, 3, 1] = np.nextafter(y[5, 3, 1], np.float32(np.inf))  # one bit of one element
    z = x.copy()
    z[[0, 1]] = z[[1, 0]]  # two rows swapped
    assert len({whole["x"], checksums.tree_checksums({"x": y})["x"], checksums.tree_checksums({"x": z})["x"]}) == 3


def test_a_write_that_runs_out_of_space_fails_in_one_line_naming_the_step_kept(tmp_path, caplog):
    """RLIMIT_FSIZE makes every write past 4 KiB fail (EFBIG), as a full disk does (ENOSPC), for root too."""
    _train_checkpoints(tmp_path, (3,))[0].close()
    ckpt = checkpoint.TrainCheckpointer(tmp_path, keep=10, async_save=True, with_data=False)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    start = time.monotonic()
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limit[1]))
    try:
        with pytest.raises(checkpoint.CheckpointWriteError) as error:
            ckpt.save(6, weights={"backbone": {"x": jax.numpy.asarray(np.random.default_rng(6).normal(size=4096)
                                                                      .astype(np.float32))}, "head": {}},
                      train={"step": np.int32(6)}, meta=META)
            ckpt.wait()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
    ckpt.close()
    assert time.monotonic() - start < 30
    message = str(error.value)
    assert "\n" not in message and "could not write the checkpoint of step 6" in message
    assert os.strerror(errno.EFBIG) in message
    assert f"the checkpoint of step 3 is kept ({tmp_path / 'checkpoints' / '3'})" in message
    assert not [r for r in caplog.records if "orbax" in r.pathname and r.levelname == "ERROR"]
    assert checkpoint.list_steps(tmp_path) == [3] and checkpoint.load_weights(tmp_path).step == 3


def _make_read_only(folder):
    """Make ``folder`` refuse new entries (chattr +i for root, chmod for other users); False if impossible."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", folder], capture_output=True).returncode:
            return False
    else:
        folder.chmod(0o555)
    return True


def _make_writable(folder):
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", folder], check=True)
    else:
        folder.chmod(0o755)


def test_a_read_only_checkpoints_folder_fails_the_save_at_once_and_leaves_no_thread_waiting(tmp_path):
    ckpt, _ = _train_checkpoints(tmp_path, (3,))
    threads = set(threading.enumerate())
    if not _make_read_only(tmp_path / "checkpoints"):
        pytest.skip("cannot make a folder read-only here (root without chattr +i)")
    try:
        with pytest.raises(checkpoint.CheckpointWriteError, match="could not write the checkpoint of step 6 .*; the "
                           "checkpoint of step 3 is kept"):
            ckpt.save(6, weights={"backbone": {"x": jax.numpy.ones(4096)}, "head": {}}, train={"step": np.int32(6)},
                      meta=META)
        ckpt.close()
    finally:
        _make_writable(tmp_path / "checkpoints")
    deadline = time.monotonic() + 10  # orbax used to leave threads waiting 300 s for the step folder
    while [t for t in set(threading.enumerate()) - threads if t.is_alive()] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [t.name for t in set(threading.enumerate()) - threads if t.is_alive()]
    assert checkpoint.load_weights(tmp_path).step == 3
