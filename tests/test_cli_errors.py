"""Bad input to a command ends with one line ``<command>: error: ...`` on stderr and exit code 2, no traceback;
``--debug`` / ``JSPHERE_DEBUG=1`` bring the traceback back."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jsphere import config_check, errors

ROOT = Path(__file__).resolve().parents[1]


def run(module, *args, env=None):
    extra_env = env or {}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    env.pop("JSPHERE_DEBUG", None)
    env.update(extra_env)
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def assert_one_error_line(proc, command, *fragments):
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def train_args(tmp_path, data, *extra):
    return (f"--config={ROOT}/tests/train_config.py:{data}", f"--workdir={tmp_path / 'w'}", *extra)


@pytest.mark.parametrize(("extra", "fragments"), [
    (("--config.optim.lrr=0.1",), ("--config.optim.lrr", "no key 'lrr'", 'Did you mean "lr"')),
    (("--config.x=1",), ("--config.x", "no key 'x'")),
    (("--config.optim.lr=abc",), ("--config.optim.lr=abc",)),
    (("--workdri=/tmp",), ("workdri", "Did you mean: workdir")),
    (("--config.optim.lr=-0.1",), ("config.optim.lr=-0.1", ">= 0")),
    (("--config.optim.momentum=1.5",), ("config.optim.momentum=1.5",)),
    (("--config.optim.milestones=(100,)",), ("config.optim.milestones=(100,)", "total_steps=12")),
    (("--config.batch_size=4",), ("batch_size=4", "devices")),
    (("--config.data.source=/nonexistent/list.txt",), ("config.data.source", "does not exist")),
    (("--config.head.hparams.m=-5",), ("config.head", "m=-5", "in [0, 3.14159)")),
])
def test_main_refuses_bad_config_values_in_one_line(tmp_path, synthetic_data, extra, fragments):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    assert_one_error_line(run("jsphere.main", *train_args(tmp_path, synthetic_data, *extra), env=env),
                          "jsphere.main", *fragments)
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_main_names_a_missing_or_failing_config_file(tmp_path):
    proc = run("jsphere.main", "--config=configs/nothere.py:x", f"--workdir={tmp_path}")
    assert_one_error_line(proc, "jsphere.main", "no such config file 'configs/nothere.py'")
    broken = tmp_path / "broken.py"
    broken.write_text("def get_config():\n    raise ValueError('recipe needs an argument')\n")
    proc = run("jsphere.main", f"--config={broken}", f"--workdir={tmp_path}")
    assert_one_error_line(proc, "jsphere.main", "ValueError: recipe needs an argument")


def test_main_refuses_a_workdir_that_is_a_file(tmp_path, synthetic_data):
    (tmp_path / "w").write_text("")
    assert_one_error_line(run("jsphere.main", *train_args(tmp_path, synthetic_data)), "jsphere.main",
                          "is a file, not a folder")


def test_an_unwritable_workdir_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)  # as for a non-root user
    with pytest.raises(PermissionError, match=f"{tmp_path} is not writable"):
        config_check.check_workdir(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = run("jsphere.main", "--config=configs/quickstart.py", f"--workdir={tmp_path}", "--config.optim.lr=-1",
               env={"JSPHERE_DEBUG": "1"})
    assert proc.returncode != 0 and "Traceback (most recent call last)" in proc.stderr


def test_embed_refuses_missing_checkpoints_and_unreadable_arrays(tmp_path):
    images = tmp_path / "faces.npy"
    np.save(images, np.zeros((2, 112, 112, 3), np.uint8))
    proc = run("jsphere.embed", "--ckpt", tmp_path / "none", "--input", images, "--output", tmp_path / "f.npy")
    assert_one_error_line(proc, "jsphere.embed", "does not exist")
    bad = tmp_path / "bad.npy"
    bad.write_text("not numpy")
    proc = run("jsphere.embed", "--ckpt", tmp_path, "--input", bad, "--output", tmp_path / "f.npy")
    assert_one_error_line(proc, "jsphere.embed", str(bad), "not a readable .npy")
    proc = run("jsphere.embed", "--ckpt", tmp_path, "--input", images, "--output", images)
    assert_one_error_line(proc, "jsphere.embed", f"--output {images}: already exists", "--overwrite")
    proc = run("jsphere.embed", "--ckpt", tmp_path, "--input", images)
    assert_one_error_line(proc, "jsphere.embed", "--output", "(see --help)")


def test_embed_names_an_empty_npy_as_holding_no_images(tmp_path):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 112, 112, 3), np.uint8))
    proc = run("jsphere.embed", "--ckpt", tmp_path, "--input", empty, "--output", tmp_path / "f.npy")
    assert_one_error_line(proc, "jsphere.embed", f"--input {empty}: the file holds no images", "(0, 112, 112, 3)")


def test_check_names_its_own_images_flag(tmp_path):
    from converters.pth_format import crosscheck

    with pytest.raises(FileNotFoundError, match=f"^--images {tmp_path / 'missing'} does not exist"):
        crosscheck.load_images(pairs=None, images=str(tmp_path / "missing"))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_main_refuses_an_empty_workdir(tmp_path, mode):
    config = "configs/test/lfw.py" if mode == "eval" else f"{ROOT}/tests/train_config.py:{tmp_path / 'nodata'}"
    proc = run("jsphere.main", f"--config={config}", "--workdir=", f"--mode={mode}")
    assert_one_error_line(proc, "jsphere.main", "--workdir='' is empty")


@pytest.mark.parametrize("last_k", ["0", "-3"])
def test_eval_refuses_a_non_positive_last_k(tmp_path, last_k):
    proc = run("jsphere.main", "--mode=eval", "--config=configs/test/lfw.py", f"--workdir={tmp_path}",
               f"--config.eval.last_k={last_k}")
    assert_one_error_line(proc, "jsphere.main", f"config.eval.last_k={last_k}", "must be a positive integer")


@pytest.mark.parametrize("args", [
    ("--config=configs/quickstart.py", "--config=configs/ms1m_iresnet100.py:arcface"),
    ("--config=configs/quickstart.py", "--config.total_steps=5", "--config", "configs/quickstart.py"),
])
def test_main_says_config_was_given_twice(tmp_path, args):
    proc = run("jsphere.main", *args, f"--workdir={tmp_path}")
    assert_one_error_line(proc, "jsphere.main", "--config was given 2 times", "give one recipe")


@pytest.mark.parametrize(("args", "fragment"), [
    (("--steps", "0"), "--steps 0: must be >= 1"),
    (("--steps", "-2"), "--steps -2: must be >= 1"),
    (("--workdir", ""), "--workdir='' is empty"),
])
def test_demo_refuses_a_non_positive_step_count_and_an_empty_workdir(tmp_path, args, fragment):
    (tmp_path / "file").write_text("x")
    proc = run("jsphere.demo", "--data", tmp_path / "file", "--workdir", tmp_path / "w", *args)
    assert_one_error_line(proc, "jsphere.demo", fragment)
    assert not (tmp_path / "w").exists()


def test_demo_names_its_data_flag(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = run("jsphere.demo", "--data", tmp_path / "file", "--workdir", tmp_path / "w")
    assert_one_error_line(proc, "jsphere.demo", f"--data {tmp_path / 'file'}: is a file")


def test_describe_names_the_file_of_an_os_error():
    missing = FileNotFoundError(2, "No such file or directory", "/x/y")
    assert errors.describe(missing) == "/x/y: no such file or directory"
    assert errors.describe(KeyError("no landmarks for a.jpg")) == "no landmarks for a.jpg"
    assert errors.describe(ValueError("two\nlines")) == "two lines"


def test_benchmarks_refuse_impossible_requests(tmp_path):
    proc = run("benchmarks.embed", "--archs", "resnet9000", "--steps", "1")
    assert_one_error_line(proc, "benchmarks.embed", "unknown model 'resnet9000'")


@pytest.mark.parametrize(("module", "args"), [
    ("benchmarks.embed", ("--archs", "mobilefacenet", "--batch", "1")),
    ("benchmarks.train_step", ("--arch", "mobilefacenet", "--batch", "2", "--classes", "10", "--no-torch")),
])
def test_benchmarks_refuse_a_gpu_that_jax_does_not_see(module, args):
    proc = run(module, "--device", "gpu", "--steps", "1", *args)  # run() pins JAX to the CPU
    assert_one_error_line(proc, module, "--device gpu: JAX sees no GPU", "--device cpu")
