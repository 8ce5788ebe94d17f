"""Damaged checkpoints and failing writes, end to end: every reader (embed, export, eval) names a damaged step and
the newest readable one; the NaN guard names the newest checkpoint that reads back; a run whose checkpoint cannot be
written stops in one line within seconds, keeping the previous checkpoint."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from jsphere import checkpoint, cli, embed, train
from jsphere.eval.run import evaluate
from tests import train_config
from tests.test_checkpoint import _flip_bytes_of_largest_array_file, _make_read_only, _make_writable

ROOT = Path(__file__).resolve().parents[1]


def _config(data, steps):
    config = train_config.get_config(str(data))
    config.total_steps = steps
    config.optim.milestones = ()
    return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, synthetic_data):
    """A workdir with the checkpoints of steps 3 and 6 (copy it before damaging it)."""
    workdir = tmp_path_factory.mktemp("trained") / "w"
    train.train_and_evaluate(_config(synthetic_data, 6), str(workdir))
    assert checkpoint.list_steps(workdir) == [3, 6]
    return workdir


def _damage(workdir, how):
    if how == "flipped bytes":
        _flip_bytes_of_largest_array_file(workdir / "checkpoints" / "6")
    else:
        shutil.rmtree(workdir / "checkpoints" / "6" / "meta")


def _one_error_line(capsys, prog, call):
    with pytest.raises(SystemExit) as exit_:
        cli.run(prog, call)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    return lines[0]


@pytest.mark.parametrize("how", ["flipped bytes", "missing meta item"])
def test_embed_export_and_eval_name_a_damaged_step_and_the_newest_readable_one(tmp_path, trained, synthetic_data,
                                                                              capsys, how):
    from converters import export_torch

    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    _damage(workdir, how)
    expected = (f"{workdir / 'checkpoints' / '6'}: the checkpoint does not read back", "; the newest readable "
                f"checkpoint is step 3 ({workdir / 'checkpoints' / '3'})")
    images = tmp_path / "faces.npy"
    np.save(images, np.zeros((2, 112, 112, 3), np.uint8))
    line = _one_error_line(capsys, "jsphere.embed", lambda argv: embed.main(
        ["--ckpt", str(workdir), "--input", str(images), "--output", str(tmp_path / "f.npy")]))
    assert all(part in line for part in expected), line
    assert not (tmp_path / "f.npy").exists()
    line = _one_error_line(capsys, "converters.export_torch", lambda argv: export_torch.main(
        ["--ckpt", str(workdir), "--layout", "insightface", "--out", str(tmp_path / "b.pth")]))
    assert all(part in line for part in expected), line
    sets = [dict(name="syn", type="pairs", path=str(synthetic_data / "val_pairs.txt"), data_dir=str(synthetic_data))]
    config = ml_collections.ConfigDict(dict(eval=dict(sets=sets, last_k=2, batch_size=8)))
    with pytest.raises(checkpoint.UnreadableCheckpoint) as error:
        evaluate(config, str(workdir))
    assert all(part in str(error.value) for part in expected)


def test_the_nan_guard_names_the_newest_checkpoint_that_reads_back(tmp_path, trained, synthetic_data, monkeypatch):
    """Resumed from step 6 with a learning rate of 1e30, the loss is finite at step 7 (the step from the saved
    weights) and not finite within a few steps; every checkpoint written after step 6 is damaged on disk."""
    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    config = _config(synthetic_data, 24)
    config.optim.lr = 1e30
    config.checkpoint.every_steps = 1
    config.checkpoint.async_save = False
    save = checkpoint.TrainCheckpointer.save

    def save_then_damage(self, step, **items):
        save(self, step, **items)
        _flip_bytes_of_largest_array_file(self.root / str(step))

    monkeypatch.setattr(checkpoint.TrainCheckpointer, "save", save_then_damage)
    with pytest.raises(train.NonFiniteLoss) as error:
        train.train_and_evaluate(config, str(workdir))
    assert f"; the last good checkpoint is {workdir / 'checkpoints' / '6'}. Lower" in str(error.value)
    assert int(str(error.value).split(" at step ")[1].split(";")[0]) > 7  # a damaged checkpoint was written


def test_training_into_a_read_only_checkpoints_folder_stops_in_one_line_within_seconds(tmp_path, trained,
                                                                                      synthetic_data):
    workdir = tmp_path / "w"
    shutil.copytree(trained, workdir)
    if not _make_read_only(workdir / "checkpoints"):
        pytest.skip("cannot make a folder read-only here (root without chattr +i)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    env.pop("JSPHERE_DEBUG", None)
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "jsphere.main", f"--config={ROOT}/tests/train_config.py:"
                               f"{synthetic_data}", f"--workdir={workdir}", "--config.total_steps=9",
                               "--config.optim.milestones=()"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=200)  # orbax used to hang 300 s on a folder it could not create
    finally:
        _make_writable(workdir / "checkpoints")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in lines if "rror" in line] == lines[-1:], proc.stderr
    assert lines[-1].startswith("jsphere.main: error: could not write the checkpoint of step 9 in "
                                f"{workdir / 'checkpoints'}: "), lines[-1]
    assert f"the checkpoint of step 6 is kept ({workdir / 'checkpoints' / '6'})" in lines[-1]
    assert time.monotonic() - start < 200
    assert checkpoint.list_steps(workdir) == [3, 6] and checkpoint.load_weights(workdir).step == 6


def _mount_small_disk(folder, size_bytes):
    """A tmpfs of ``size_bytes`` at ``folder`` (root only); False where it cannot be mounted."""
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def test_a_disk_that_fills_during_training_stops_it_in_exactly_one_line(tmp_path, trained, synthetic_data):
    """Orbax's writes still in flight when the disk fills used to print 'Event loop is closed' tracebacks, and
    closing the metrics file on the full disk replaced the checkpoint's message with a bare '[Errno 28]'."""
    used = sum(f.stat().st_size for f in trained.rglob("*") if f.is_file())
    checkpoint_bytes = sum(f.stat().st_size for f in (trained / "checkpoints" / "6").rglob("*") if f.is_file())
    disk = tmp_path / "disk"
    if not _mount_small_disk(disk, used + checkpoint_bytes // 2):  # room for what is there and half a checkpoint
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        workdir = disk / "w"
        shutil.copytree(trained, workdir)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
        env.pop("JSPHERE_DEBUG", None)
        proc = subprocess.run([sys.executable, "-m", "jsphere.main", f"--config={ROOT}/tests/train_config.py:"
                               f"{synthetic_data}", f"--workdir={workdir}", "--config.total_steps=12",
                               "--config.optim.milestones=()"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith("I")]  # INFO lines
        assert proc.returncode == 2 and lines == lines[-1:], proc.stderr
        assert lines[-1].startswith("jsphere.main: error: could not write the checkpoint of step 9 in "
                                    f"{workdir / 'checkpoints'}: No space left on device; the checkpoint of step 6 is "
                                    f"kept ({workdir / 'checkpoints' / '6'})"), lines[-1]
        assert checkpoint.list_steps(workdir) == [3, 6] and checkpoint.load_weights(workdir).step == 6
    finally:
        subprocess.run(["umount", str(disk)], check=False)
