"""``python -m jsphere.data.pack`` and ``python -m jsphere.data.synthetic`` answer bad input with exit code 2 and
exactly one stderr line ``<command>: error: ...`` naming what is wrong, and leave no half-written output; their
``--out`` follows ``jsphere.outputs``' rule (parents created, an existing output replaced only with --overwrite)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jsphere.data.decode import encode_jpeg

ROOT = Path(__file__).resolve().parents[2]


def run(module: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    env.pop("JSPHERE_DEBUG", None)
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def assert_refused(proc: subprocess.CompletedProcess, command: str, *fragments: str) -> None:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{command}: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _face(path: Path, size: int = 112) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(np.full((size, size, 3), 90, np.uint8)))


def _bad_source(tmp_path: Path, kind: str) -> tuple[Path, tuple[str, ...]]:
    """A bad ``--source`` of the given kind and the fragments its error line must name."""
    if kind == "missing source":
        return tmp_path / "nowhere", ("nowhere", "does not exist")
    if kind == "empty folder":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty", ("empty: no identity folders",)
    if kind == "empty identity folder":
        (tmp_path / "faces" / "alice").mkdir(parents=True)
        return tmp_path / "faces", ("alice: empty identity folder",)
    if kind == "non-image file":
        (tmp_path / "faces" / "alice").mkdir(parents=True)
        (tmp_path / "faces" / "alice" / "1.jpg").write_text("not an image")
        return tmp_path / "faces", ("none of its 1 images decodes", "alice/1.jpg")
    if kind == "unaligned image":
        _face(tmp_path / "faces" / "alice" / "1.jpg", size=250)
        return tmp_path / "faces", ("250x250, expected an aligned 112x112 face",)
    if kind == "non-integer label":
        (tmp_path / "list.txt").write_text("a/1.jpg 0\na/2.jpg 1\nb/1.jpg 3x\n")
        return tmp_path / "list.txt", ("list.txt:3: label '3x' is not an integer", "integer-labelled")
    if kind == "label missing on line 1":
        (tmp_path / "list.txt").write_text("a/1.jpg\na/2.jpg 0\nb/1.jpg 1\n")
        return tmp_path / "list.txt", ("list.txt:1: expected 'relative/path identity'",)
    if kind == "binary list":
        (tmp_path / "list.txt").write_bytes(b"a/1.jpg 0\n\xff\xfe\x00\x01")
        return tmp_path / "list.txt", ("list.txt:2: not UTF-8 text",)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing source", "empty folder", "empty identity folder", "non-image file",
                                  "unaligned image", "non-integer label", "label missing on line 1", "binary list"])
def test_pack_refuses_bad_sources_in_one_line_and_writes_nothing(tmp_path, kind):
    source, fragments = _bad_source(tmp_path, kind)
    proc = run("jsphere.data.pack", "--source", source, "--out", tmp_path / "out")
    assert_refused(proc, "jsphere.data.pack", *fragments)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_pack_refuses_bad_arguments_and_an_output_that_holds_a_pack(tmp_path):
    _face(tmp_path / "faces" / "alice" / "1.jpg")
    proc = run("jsphere.data.pack", "--source", tmp_path / "faces", "--out", tmp_path / "o", "--images-per-shard", 0)
    assert_refused(proc, "jsphere.data.pack", "--images-per-shard 0: must be >= 1")
    proc = run("jsphere.data.pack", "--source", tmp_path / "faces")
    assert_refused(proc, "jsphere.data.pack", "--out", "(see --help)")
    (tmp_path / "file").write_text("x")
    proc = run("jsphere.data.pack", "--source", tmp_path / "faces", "--out", tmp_path / "file")
    assert_refused(proc, "jsphere.data.pack", "file: is a file")
    packed = tmp_path / "runs" / "new" / "packed"  # missing parents are created
    assert run("jsphere.data.pack", "--source", tmp_path / "faces", "--out", packed).returncode == 0
    proc = run("jsphere.data.pack", "--source", tmp_path / "faces", "--out", packed)
    assert_refused(proc, "jsphere.data.pack", "packed: already exists and is not empty", "--overwrite")
    (packed / "stray.txt").write_text("from before")
    assert run("jsphere.data.pack", "--source", tmp_path / "faces", "--out", packed, "--overwrite").returncode == 0
    assert (packed / "meta.json").exists() and not (packed / "stray.txt").exists()
    assert sorted(p.name for p in packed.parent.iterdir()) == ["packed"]  # no temporary folder left


@pytest.mark.parametrize(("args", "fragments"), [
    (("--identities", "1"), ("at least 2 identities", "--identities 1")),
    (("--holdout-images", "1"), ("--holdout-images 1",)),
    (("--pairs", "0"), ("--pairs 0: need at least 2",)),
    (("--difficulty", "-1"), ("--difficulty -1.0: must be a finite number >= 0",)),
    (("--difficulty", "nan"), ("--difficulty nan: must be a finite number >= 0",)),
    (("--difficulty", "inf"), ("--difficulty inf: must be a finite number >= 0",)),
    (("--seed", "-3"), ("--seed -3: must be >= 0",)),
    (("--identities", "many"), ("--identities", "invalid int value: 'many'", "(see --help)")),
])
def test_synthetic_refuses_impossible_requests_in_one_line(tmp_path, args, fragments):
    proc = run("jsphere.data.synthetic", "--out", tmp_path / "out", *args)
    assert_refused(proc, "jsphere.data.synthetic", *fragments)
    assert not (tmp_path / "out").exists()


def test_synthetic_refuses_an_output_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_refused(run("jsphere.data.synthetic", "--out", tmp_path / "file"), "jsphere.data.synthetic",
                   "file: is a file")


def test_synthetic_refuses_a_request_larger_than_the_disk_up_front(tmp_path):
    proc = run("jsphere.data.synthetic", "--out", tmp_path / "out", "--identities", 10**9)
    assert_refused(proc, "jsphere.data.synthetic", "1,000,000,000 x 30 training", "30,000,001,000",
                   "need about", "TB on disk", "free")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_synthetic_compares_its_size_estimate_with_the_free_space(tmp_path, monkeypatch):
    import shutil

    from jsphere.data import synthetic

    request = dict(identities=4, images_per_identity=3, holdout_identities=2, holdout_images=2, pairs=4)
    need = synthetic.estimate_bytes(16, 4, 1.0, seed=0)
    assert 16 * 4096 <= need < 16 * 3 * 4096  # each ~3 kB JPEG takes one or two 4 KiB blocks
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(synthetic.shutil, "disk_usage", lambda path: usage._replace(free=need - 1))
    with pytest.raises(ValueError, match=r"--out .*out: .*16\) and 4 pairs need about .* on disk, but .* free"):
        synthetic.generate(tmp_path / "out", **request)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(synthetic.shutil, "disk_usage", lambda path: usage._replace(free=need * 2))
    out = synthetic.generate(tmp_path / "deep" / "out", **request)  # missing parents are created
    assert len((out / "train_list.txt").read_text().splitlines()) == 12
