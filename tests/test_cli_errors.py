"""Bad input to a command ends with one line ``<command>: error: ...`` on stderr and exit code 2, no traceback;
``--debug`` / ``JSPHERE_DEBUG=1`` bring the traceback back."""

import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from jsphere import cli, config_check, errors

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
    (("--config.total_steps=99999999999999999999999",), ("config.total_steps=99999999999999999999999",
                                                          "up to 2,147,483,647")),
    (("--config.optim.lr=inf",), ("config.optim.lr=inf is not a finite number",)),
    (("--config.head.hparams.s=inf",), ("config.head", "s=inf is not finite")),
    (("--config.seed=-1",), ("config.seed=-1", "must be an integer in [0, 2**32)")),
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
    (tmp_path / "f.npy").write_bytes(b"")
    proc = run("jsphere.embed", "--ckpt", tmp_path, "--input", images, "--output", tmp_path / "f.npy")
    assert_one_error_line(proc, "jsphere.embed", f"--output {tmp_path / 'f.npy'}: already exists", "--overwrite")
    proc = run("jsphere.embed", "--ckpt", tmp_path, "--input", images, "--output", images, "--overwrite")
    assert_one_error_line(proc, "jsphere.embed", f"--output {images}: is also the path of --input")
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
    (("--steps", "0"), "--steps 0: must be in [1, "),
    (("--steps", "-2"), "--steps -2: must be in [1, "),
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


# ---- issues 34 and 35: each bad input gets one line naming what to change, before anything long starts

def _png_header(width, height):
    """A PNG of a few hundred bytes whose header declares width x height RGB pixels (a decompression bomb)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _one_line(capsys, prog, main, argv):
    """Run a command's ``main`` in this process as ``python -m`` would; its stderr must be one error line."""
    with pytest.raises(SystemExit) as exit_:
        cli.run(prog, main, [str(a) for a in argv])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), lines
    return lines[0]


def test_eval_with_a_training_recipe_says_which_configs_evaluate(tmp_path):
    proc = run("jsphere.main", "--mode=eval", "--config=configs/quickstart.py", f"--workdir={tmp_path}")
    assert_one_error_line(proc, "jsphere.main", "--config=configs/quickstart.py has no 'eval' section",
                          "configs/test/<set>.py", "lfw", "ijbc")


def test_a_shipped_test_config_works_from_any_folder_and_a_missing_set_says_where_to_get_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    env.pop("JSPHERE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "jsphere.main", "--mode=eval", "--config=configs/test/lfw.py:bin",
                           f"--workdir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert_one_error_line(proc, "jsphere.main", "path 'data/val/lfw.bin' does not exist (relative to the current "
                          f"folder, {tmp_path})", "insightface's lfw.bin comes with its training sets",
                          "--config.eval.sets[0].path=")


def test_the_backbone_table_prints_each_row_as_it_is_measured(capsys, monkeypatch):
    from jsphere import demo
    from jsphere.models import registry

    built = []

    def build_two(name, **kwargs):  # the third model "takes minutes": by then two rows must be on the screen
        built.append(name)
        if len(built) > 2:
            raise KeyboardInterrupt
        return registry_build(name, **kwargs)

    registry_build = registry.build
    monkeypatch.setattr(registry, "build", build_two)
    with pytest.raises(KeyboardInterrupt):
        demo.main(["--models"])
    rows = capsys.readouterr().out.strip().splitlines()[1:]
    assert [row.split()[0] for row in rows] == built[:2]


@pytest.mark.parametrize("size", [30000, 60000])
def test_a_decompression_bomb_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch, size):
    import cv2

    from jsphere.data import decode
    from jsphere.detect import photos

    def never(*args):
        raise AssertionError("decoded")

    monkeypatch.setattr(cv2, "imdecode", never)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(size, size))
    with pytest.raises(decode.CorruptImageError, match=f"bomb.png: image is {size}x{size}, expected an aligned 112"):
        decode.decode_aligned(bomb.read_bytes(), what=str(bomb))
    with pytest.raises(decode.ImageTooLarge, match=f"bomb.png: image of {size}x{size} pixels .* 64 megapixel limit"):
        decode.decode_image(bomb.read_bytes(), what=str(bomb))
    with pytest.raises(photos.PhotoError, match=f"{size}x{size} pixels") as error:
        photos.read_photo(bomb)
    assert error.value.reason == "too large"


def test_a_bomb_in_a_training_list_is_named_with_its_size_and_line(tmp_path, synthetic_data):
    from jsphere.data import pipeline

    (tmp_path / "bomb.png").write_bytes(_png_header(60000, 60000))
    lines = (synthetic_data / "train_list.txt").read_text().splitlines()[:7]
    (tmp_path / "list.txt").write_text("\n".join([*lines, f"{tmp_path / 'bomb.png'} id00000"]) + "\n")
    cfg = {"source": str(tmp_path / "list.txt"), "data_dir": str(synthetic_data), "workers": 0, "threads": 1}
    iterator, _ = pipeline.make_train_iterator(cfg, global_batch_size=8, seed=0)
    with pytest.raises(ValueError, match=r"bomb.png \(.*list.txt:8\): image is 60000x60000, expected an aligned"):
        next(iterator)


def test_a_bomb_given_to_pack_and_embed_is_named_with_its_size(tmp_path):
    (tmp_path / "faces" / "a").mkdir(parents=True)
    (tmp_path / "faces" / "a" / "bomb.png").write_bytes(_png_header(60000, 60000))
    proc = run("jsphere.data.pack", "--source", tmp_path / "faces", "--out", tmp_path / "packed")
    assert_one_error_line(proc, "jsphere.data.pack", "bomb.png (identity a): image is 60000x60000, expected an aligned")
    proc = run("jsphere.embed", "--ckpt", tmp_path, "--input", tmp_path / "faces", "--output", tmp_path / "f.npy")
    assert_one_error_line(proc, "jsphere.embed", "bomb.png: image is 60000x60000, expected an aligned 112x112")


def test_a_one_step_cosine_run_has_a_learning_rate():
    """``jsphere.demo --steps 1`` (no warm-up left): optax refused a cosine decay of zero steps."""
    from jsphere.optim import lr_schedule

    schedule = lr_schedule({"schedule": "cosine", "warmup_steps": 0, "end_lr": 0.0}, 0.1, 1)
    assert float(schedule(0)) == pytest.approx(0.1)
    warm = lr_schedule({"schedule": "cosine", "warmup_steps": 2, "end_lr": 0.0}, 0.1, 3)
    assert [round(float(warm(i)), 6) for i in range(4)] == [0.0, 0.05, 0.1, 0.0]


def test_synthetic_refuses_more_pairs_than_the_held_out_images_make():
    from jsphere.data import synthetic

    request = dict(identities=2, images_per_identity=2, holdout_identities=2, holdout_images=3, difficulty=1.0,
                   seed=0)
    with pytest.raises(ValueError, match=r"--pairs 1,000,000: 2 held-out identities x 3 images make only 6 distinct "
                                         r"genuine and 9 distinct impostor pairs.* at most 12 pairs"):
        synthetic.check_request("/tmp/unused", pairs=1_000_000, **request)
    synthetic.check_request("/tmp/unused", pairs=12, **request)


@pytest.mark.parametrize("link", ["checkpoints", "checkpoints/24"])
def test_a_workdir_holding_a_symbolic_link_is_refused_before_anything_starts(tmp_path, synthetic_data, link):
    from jsphere import train
    from tests import train_config

    workdir, outside = tmp_path / "w", tmp_path / "elsewhere"
    outside.mkdir()
    (workdir / link).parent.mkdir(parents=True, exist_ok=True)
    (workdir / link).symlink_to(outside, target_is_directory=True)
    with pytest.raises(FileExistsError, match=f"--workdir {workdir}: {workdir / link} is a symbolic link; outputs "
                                              "are never written through a link"):
        train.train_and_evaluate(train_config.get_config(str(synthetic_data)), str(workdir))
    assert sorted(p.name for p in workdir.rglob("*")) == sorted({"checkpoints", Path(link).name})


def test_the_progress_bar_never_raises_whatever_the_estimate():
    from jsphere import observe

    stream = io.StringIO()
    observe.ProgressBar(2**31 - 1, stream=stream).update(1, loss=1.0, lr=0.1, img_per_s=1.0, eta_s=1e23, force=True)
    observe.ProgressBar(10, stream=stream).update(1, loss=1.0, lr=0.1, img_per_s=1.0, eta_s=100000, force=True)
    assert ">1e6 h" in stream.getvalue() and "27:46:40" in stream.getvalue()


def test_the_nan_message_never_points_to_a_checkpoint_that_does_not_exist(tmp_path):
    from jsphere import checkpoint, train

    ckpt = checkpoint.TrainCheckpointer(tmp_path)
    try:
        text = train._after_non_finite(ckpt, None)
    finally:
        ckpt.close()
    assert text.startswith("no checkpoint was saved yet") and "resumes from" not in text, text


def test_an_integer_list_says_labels_must_not_be_negative(tmp_path):
    from jsphere.data import sources

    (tmp_path / "list.txt").write_text("a/1.jpg 0\na/2.jpg 1\nb/1.jpg -1\n")
    with pytest.raises(sources.ListFormatError, match="list.txt:3: label '-1' is negative; labels must be integers "
                                                      ">= 0"):
        sources.read_list(tmp_path / "list.txt")


def test_eval_evaluates_the_steps_that_exist_and_names_those_that_disappeared(tmp_path, synthetic_data, monkeypatch,
                                                                               capsys):
    import ml_collections
    from flax import nnx

    from jsphere import checkpoint, inference, models
    from jsphere.eval import run as eval_run

    for step in (3, 6, 9):
        model = models.build("sfnet4", embed_dim=8, rngs=nnx.Rngs(step))
        checkpoint.save_weights(tmp_path, step=step, backbone=models.pure_state(model), head=None,
                                meta={"model": {"name": "sfnet4", "embed_dim": 8, "kwargs": {}}})
    load = inference.Embedder.from_checkpoint

    def a_trainer_deletes_step_3(path, *, step, **kwargs):  # as a run keeping its newest checkpoints does
        shutil.rmtree(tmp_path / "checkpoints" / "3", ignore_errors=True)
        return load(path, step=step, **kwargs)

    monkeypatch.setattr(inference.Embedder, "from_checkpoint", staticmethod(a_trainer_deletes_step_3))
    sets = [dict(name="syn", type="pairs", path=str(synthetic_data / "val_pairs.txt"), data_dir=str(synthetic_data))]
    config = ml_collections.ConfigDict(dict(eval=dict(sets=sets, last_k=3, batch_size=16)))
    tables = eval_run.evaluate(config, str(tmp_path))
    assert list(tables["syn"]) == ["step 6", "step 9", "avg"]
    assert "step 3 disappeared before being read" in capsys.readouterr().out


# ---- every flag of every jsphere.* and benchmarks.* command that takes a number, a path or a name, given a bad
# value: one line naming the flag (or the file) and what to change. converters.* have their own table
# (tests/converters/test_cli.py); benchmarks.gpu_check.child is the check's internal worker, not a user command.

PACKAGE_COMMANDS = ("benchmarks.gpu_check", "benchmarks.real_faces")  # python -m runs their __main__


def _main_module(command: str) -> str:
    return f"{command}.__main__" if command in PACKAGE_COMMANDS else command


ARGPARSE_COMMANDS = ("jsphere.demo", "jsphere.embed", "jsphere.align", "jsphere.data.pack", "jsphere.data.synthetic",
                     "benchmarks.train_step", "benchmarks.embed", "benchmarks.conv", "benchmarks.data",
                     "benchmarks.detect", "benchmarks.gpu_check", "benchmarks.real_faces")
EMBED = ("--ckpt", "{ckpt}", "--input", "{npy}", "--output", "{tmp}/o.npy")
PHOTOS = ("--input", "{photos}", "--output", "{tmp}/aligned")
DETECT = ("--ckpt", "{ckpt}", "--input", "{photos}", "--output", "{tmp}/o.npy", "--detect")
PACK = ("--source", "{data}/train_list.txt", "--out", "{tmp}/packed")
SYNTHETIC = ("--out", "{tmp}/syn", "--identities", "2", "--images-per-identity", "2", "--holdout-identities", "2",
             "--holdout-images", "2", "--pairs", "2")
BAD_FLAG_VALUES = [
    ("benchmarks.real_faces", ("--lfw", "{tmp}", "--pairs", "{tmp}/none", "--out", "{tmp}/o"),
     "--pairs {tmp}/none: no such file"),
    ("benchmarks.real_faces", ("--lfw", "{tmp}/none", "--pairs", "{file}", "--out", "{tmp}/o"),
     "--lfw {tmp}/none: no such folder"),
    ("benchmarks.real_faces", ("--out", "{file}", "--report"), "--out {file}: is a file"),
    ("benchmarks.real_faces", ("--out", "{tmp}/none", "--report"), "--out {tmp}/none: holds no runs"),
    ("benchmarks.real_faces", ("--lfw", "{tmp}", "--pairs", "{file}", "--out", "{tmp}/o", "--seeds", "-1"),
     "--seeds -1: a seed is an integer in [0, 2**32)"),
    ("benchmarks.real_faces", ("--lfw", "{tmp}", "--pairs", "{file}", "--out", "{tmp}/o", "--steps", "0"),
     "--steps and --time-steps take a positive number of steps"),
    ("benchmarks.real_faces", ("--lfw", "{tmp}", "--pairs", "{file}", "--out", "{tmp}/o", "--time-steps", "0"),
     "--steps and --time-steps take a positive number of steps"),
    ("benchmarks.real_faces", ("--out", "{tmp}/o", "--recipe", "x"), "argument --recipe: invalid choice: 'x'"),
    ("benchmarks.real_faces", ("--out", "{tmp}/o", "--framework", "x"), "argument --framework: invalid choice: 'x'"),
    ("benchmarks.real_faces", ("--out", "{tmp}/o", "--test-folds", "x"), "argument --test-folds: invalid int value"),
    ("jsphere.demo", ("--data", "{file}", "--workdir", "{tmp}/w"), "--data {file}: is a file"),
    ("jsphere.demo", ("--data", "{photos}", "--workdir", "{tmp}/w"), "--data {photos}: holds other files, not the "
     "demo's synthetic set"),
    ("jsphere.demo", ("--data", "{file}", "--workdir", ""), "--workdir='' is empty"),
    ("jsphere.demo", ("--data", "{file}", "--head", "nohead"), "--head nohead: unknown head; valid: "),
    ("jsphere.demo", ("--data", "{file}", "--steps", "0"), "--steps 0: must be in [1, 2,147,483,647]"),
    ("jsphere.demo", ("--data", "{file}", "--steps", str(10**20)), f"--steps {10**20}: must be in [1, "),
    ("jsphere.embed", ("--ckpt", "{tmp}/none", "--input", "{npy}", "--output", "{tmp}/o.npy"),
     "checkpoint path {tmp}/none does not exist"),
    ("jsphere.embed", ("--ckpt", "{ckpt}", "--input", "{tmp}/none", "--output", "{tmp}/o.npy"),
     "--input {tmp}/none does not exist"),
    ("jsphere.embed", ("--ckpt", "{ckpt}", "--input", "{npy}", "--output", "{ckpt}"), "--output {ckpt}: is a folder"),
    ("jsphere.embed", ("--ckpt", "{ckpt}", "--input", "{npy}", "--output", "{npy}", "--overwrite"),
     "--output {npy}: is also the path of --input"),
    ("jsphere.embed", (*EMBED, "--flip", "both"), "argument --flip: invalid choice: 'both'"),
    ("jsphere.embed", (*EMBED, "--batch-size", "0"), "--batch-size 0: must be an integer >= 1"),
    ("jsphere.embed", (*EMBED, "--batch-size", "100000000"), "--batch-size 100,000,000: the inputs of a batch of "
     "100,000,000 faces alone need"),
    ("jsphere.embed", (*EMBED, "--landmarks", "{file}"), "{file}:1: expected 'path x1 y1 ... x5 y5'"),
    ("jsphere.embed", (*EMBED, "--step", "99"), "has no checkpoint for step 99; available steps: [1]"),
    ("jsphere.embed", (*DETECT, "--faces", "{tmp}/o.npy"), "--faces {tmp}/o.npy: is also the path of --output"),
    ("jsphere.embed", (*DETECT, "--detector", "{tmp}/none"), "no MTCNN detector checkpoint at {tmp}/none"),
    ("jsphere.embed", (*DETECT, "--min-face", "nan"), "--min-face nan: must be >= 1 pixel"),
    ("jsphere.embed", (*DETECT, "--thresholds", "0.6", "0.7", "2"), "--thresholds 0.6 0.7 2.0: each must be in"),
    ("jsphere.embed", (*DETECT, "--pnet-softmax", "x"), "argument --pnet-softmax: invalid choice: 'x'"),
    ("jsphere.embed", (*DETECT, "--align-style", "x"), "argument --align-style: invalid choice: 'x'"),
    ("jsphere.align", ("--input", "{tmp}/none", "--output", "{tmp}/aligned"), "--input {tmp}/none does not exist"),
    ("jsphere.align", ("--input", "{photos}", "--output", "{file}"), "--output {file}: must be a folder"),
    ("jsphere.align", (*PHOTOS, "--workers", "0"), "--workers 0: must be in [1, "),
    ("jsphere.align", (*PHOTOS, "--workers", "100000"), "--workers 100000: must be in [1, "),
    ("jsphere.align", (*PHOTOS, "--crop", "100x100"), "argument --crop: '100x100': OpenSphere's alignment crops"),
    ("jsphere.align", (*PHOTOS, "--detector", "{tmp}/none"), "no MTCNN detector checkpoint at {tmp}/none"),
    ("jsphere.align", (*PHOTOS, "--min-face", "0"), "--min-face 0.0: must be >= 1 pixel"),
    ("jsphere.align", (*PHOTOS, "--thresholds", "-1", "0.7", "0.9"), "--thresholds -1.0 0.7 0.9: each must be in"),
    ("jsphere.align", (*PHOTOS, "--pnet-softmax", "x"), "argument --pnet-softmax: invalid choice: 'x'"),
    ("jsphere.align", (*PHOTOS, "--ckpt", "{tmp}/none"), "checkpoint path {tmp}/none does not exist"),
    ("jsphere.align", (*PHOTOS, "--align-style", "x"), "argument --align-style: invalid choice: 'x'"),
    ("jsphere.data.pack", ("--source", "{tmp}/none", "--out", "{tmp}/packed"), "data source '{tmp}/none' does not "
     "exist"),
    ("jsphere.data.pack", (*PACK, "--data-dir", "{tmp}/none"), "--data-dir {tmp}/none: not a folder"),
    ("jsphere.data.pack", (*PACK, "--format", "zip"), "argument --format: invalid choice: 'zip'"),
    ("jsphere.data.pack", ("--source", "{data}/train_list.txt", "--out", "{file}"), "--out {file}: is a file"),
    ("jsphere.data.pack", (*PACK, "--images-per-shard", "0"), "--images-per-shard 0: must be >= 1"),
    ("jsphere.data.synthetic", ("--out", "{file}"), "--out {file}: is a file"),
    ("jsphere.data.synthetic", (*SYNTHETIC, "--identities", "1"), "need at least 2 identities (--identities 1"),
    ("jsphere.data.synthetic", (*SYNTHETIC, "--images-per-identity", "1"), "(--images-per-identity 1"),
    ("jsphere.data.synthetic", (*SYNTHETIC, "--holdout-identities", "1"), "--holdout-identities 1)"),
    ("jsphere.data.synthetic", (*SYNTHETIC, "--holdout-images", "1"), "--holdout-images 1)"),
    ("jsphere.data.synthetic", (*SYNTHETIC, "--pairs", "1"), "--pairs 1: need at least 2"),
    ("jsphere.data.synthetic", (*SYNTHETIC, "--pairs", "1000000"), "--pairs 1,000,000: 2 held-out identities x 2 "
     "images make only 2 distinct genuine"),
    ("jsphere.data.synthetic", (*SYNTHETIC, "--difficulty", "inf"), "--difficulty inf: must be a finite number"),
    ("jsphere.data.synthetic", (*SYNTHETIC, "--seed", "-1"), "--seed -1: must be >= 0"),
    ("benchmarks.train_step", ("--arch", "resnet9000"), "--arch resnet9000: unknown model 'resnet9000'"),
    ("benchmarks.train_step", ("--head", "x"), "argument --head: invalid choice: 'x'"),
    ("benchmarks.train_step", ("--batch", "0"), "--batch 0 / --steps 20: both must be >= 1"),
    ("benchmarks.train_step", ("--batch", str(10**11)), f"--batch {10**11:,}: the inputs of a batch"),
    ("benchmarks.train_step", ("--steps", "0"), "--steps 0: both must be >= 1"),
    ("benchmarks.train_step", ("--classes", "1"), "--classes 1: must be at least 2"),
    ("benchmarks.train_step", ("--classes", str(10**12)), f"--classes {10**12:,}: must be at least 2 and at most"),
    ("benchmarks.train_step", ("--dtype", "fp8"), "argument --dtype: invalid choice: 'fp8'"),
    ("benchmarks.train_step", ("--device", "tpu"), "argument --device: invalid choice: 'tpu'"),
    ("benchmarks.embed", ("--archs", "mobilefacenet", "resnet9000"), "--archs mobilefacenet resnet9000: unknown model "
     "'resnet9000'"),
    ("benchmarks.embed", ("--batch", "0"), "--batch 0 / --steps 10: both must be >= 1"),
    ("benchmarks.embed", ("--batch", str(10**11)), f"--batch {10**11:,}: the inputs of a batch"),
    ("benchmarks.embed", ("--steps", "-1"), "--steps -1: both must be >= 1"),
    ("benchmarks.embed", ("--device", "tpu"), "argument --device: invalid choice: 'tpu'"),
    ("benchmarks.conv", ("--repeats", "0"), "--repeats 0: must be >= 1"),
    ("benchmarks.conv", ("--layers", "nolayer"), "--layers nolayer: matches no layer"),
    ("benchmarks.data", ("--images", "0"), "--images 0: must be at least one batch (--batch 64)"),
    ("benchmarks.data", ("--images", "32"), "--images 32: must be at least one batch (--batch 64)"),
    ("benchmarks.data", ("--images", str(10**13)), f"--images {10**13:,}: the set and its packed copy need about"),
    ("benchmarks.data", ("--batch", "0"), "--batch 0: must be >= 1"),
    ("benchmarks.data", ("--workers", "-1"), "--workers -1: each must be in [0, "),
    ("benchmarks.data", ("--workers", "1", "10000"), "--workers 1 10000: each must be in [0, "),
    ("benchmarks.detect", ("--weights", "{tmp}/none", "--images", "1"), "--weights {tmp}/none: not a folder"),
    ("benchmarks.detect", ("--photos", "{file}"), "--photos {file}: not a folder"),
    ("benchmarks.detect", ("--sizes", "0x5"), "--sizes 0x5: both sides must be >= 1"),
    ("benchmarks.detect", ("--sizes", "100000x100000"), "--sizes 100000x100000: over the 64 megapixels"),
    ("benchmarks.detect", ("--sizes", "big"), "--sizes big: expected WIDTHxHEIGHT"),
    ("benchmarks.detect", ("--images", "0"), "--images 0 / --rounds 5: both must be >= 1"),
    ("benchmarks.detect", ("--images", str(10**9)), f"--images {10**9:,}: {10**9:,} photos of the largest"),
    ("benchmarks.detect", ("--rounds", "0"), "--rounds 0: both must be >= 1"),
    ("benchmarks.detect", ("--pnet-softmax", "x"), "argument --pnet-softmax: invalid choice: 'x'"),
    ("benchmarks.gpu_check", ("--out", "{file}"), "--out {file}: is a file"),
    ("benchmarks.gpu_check", ("--out", "{tmp}/gpu", "--stages", "nostage"), "--stages: unknown stage(s) nostage"),
    ("benchmarks.gpu_check", ("--out", "{tmp}/gpu", "--deadline", "0"), "--deadline 0.0: must be > 0 seconds"),
    ("benchmarks.gpu_check", ("--out", "{tmp}/gpu", "--cache-dir", "{file}"), "--cache-dir {file}: is a file"),
]
MAIN = ("--mode=eval", "--config=configs/test/lfw.py", "--workdir={tmp}/w")
MAIN_BAD_FLAG_VALUES = [
    (("--config=configs/test/nothere.py", "--workdir={tmp}/w"), "--config=configs/test/nothere.py: no such config"),
    (("--mode=eval", "--config=configs/test/lfw.py", "--workdir="), "--workdir='' is empty"),
    (("--mode=test", "--config=configs/test/lfw.py", "--workdir={tmp}/w"), "flag --mode=test: value should be one"),
    ((*MAIN, "--coordinator=host0", "--num_processes=2", "--process_id=0"), "--coordinator='host0' must be host:port"),
    ((*MAIN, "--coordinator=host0:1", "--num_processes=0", "--process_id=0"), "--num_processes=0 must be >= 1"),
    ((*MAIN, "--coordinator=host0:1", "--num_processes=2", "--process_id=2"), "--process_id=2 is outside [0, 2)"),
]


@pytest.fixture(scope="module")
def bad_input_files(tmp_path_factory):
    """What the table's rows point at: a file, a checkpoint, aligned faces as .npy, a folder of photos."""
    import cv2
    from flax import nnx

    from jsphere import checkpoint, models

    root = tmp_path_factory.mktemp("bad_input")
    (root / "file.txt").write_text("x\n")
    model = models.build("sfnet4", embed_dim=8, rngs=nnx.Rngs(0))
    checkpoint.save_weights(root / "ckpt", step=1, backbone=models.pure_state(model), head=None,
                            meta={"model": {"name": "sfnet4", "embed_dim": 8, "kwargs": {}}})
    np.save(root / "faces.npy", np.zeros((2, 112, 112, 3), np.uint8))
    (root / "photos" / "x").mkdir(parents=True)
    cv2.imwrite(str(root / "photos" / "x" / "1.jpg"), np.full((120, 150, 3), 128, np.uint8))
    return {"file": root / "file.txt", "ckpt": root / "ckpt", "npy": root / "faces.npy", "photos": root / "photos"}


def _fill(text, tmp, files, data):
    return text.format(tmp=tmp, data=data, **files)


@pytest.mark.parametrize(("command", "argv", "fragment"), BAD_FLAG_VALUES,
                         ids=[f"{c} {' '.join(a)}"[:80] for c, a, _ in BAD_FLAG_VALUES])
def test_every_flag_refuses_a_bad_value_in_one_line(tmp_path, capsys, bad_input_files, synthetic_data, command, argv,
                                                   fragment):
    import importlib

    module = importlib.import_module(_main_module(command))
    argv = [_fill(a, tmp_path, bad_input_files, synthetic_data) for a in argv]
    line = _one_line(capsys, command, module.main, argv)
    assert _fill(fragment, tmp_path, bad_input_files, synthetic_data) in line, line
    assert not any(p.name not in ("gpu",) for p in tmp_path.iterdir()), list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize(("argv", "fragment"), MAIN_BAD_FLAG_VALUES, ids=[a[0] for a, _ in MAIN_BAD_FLAG_VALUES])
def test_every_flag_of_main_refuses_a_bad_value_in_one_line(tmp_path, argv, fragment):
    proc = run("jsphere.main", *(a.format(tmp=tmp_path) for a in argv))
    assert_one_error_line(proc, "jsphere.main", fragment.format(tmp=tmp_path))


def _value_flags(command, capsys) -> set[str]:
    """The flags of a command that take a value, from its own --help."""
    import importlib
    import re

    module = importlib.import_module(_main_module(command))
    with pytest.raises(SystemExit):
        module.main(["--help"])
    return set(re.findall(r"(--[a-z][\w-]*) (?=[A-Z{])", capsys.readouterr().out))


@pytest.mark.parametrize("command", ARGPARSE_COMMANDS)
def test_the_table_covers_every_flag_that_takes_a_value(command, capsys):
    covered = {a for c, argv, _ in BAD_FLAG_VALUES if c == command for a in argv if a.startswith("--")}
    missing = _value_flags(command, capsys) - covered
    assert not missing, f"{command}: add a bad value of {sorted(missing)} to BAD_FLAG_VALUES"


def test_the_table_covers_every_flag_of_main():
    from absl import flags

    from jsphere import main

    defined = {f"--{holder.name}" for holder in vars(main).values() if isinstance(holder, flags.FlagHolder)}
    covered = {a.split("=")[0] for argv, _ in MAIN_BAD_FLAG_VALUES for a in argv}
    assert defined and not defined - covered, defined - covered
