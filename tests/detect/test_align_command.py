"""``python -m jsphere.align``: photos in, aligned crops out, resumable, every bad photo a named entry of the
report; and the crops go on through ``jsphere.data.pack`` into training.

The detector has random weights (``fixtures``), biased so that it finds "faces" on the synthetic photos: where
they are is random, which is enough to run every path of the command and of the data it feeds.
"""

import struct
import zlib

import cv2
import numpy as np
import pytest

from converters.mtcnn_weights import mtcnn_import
from jsphere import align, config_check, errors, train
from jsphere.data import pack
from jsphere.detect import weights
from tests import train_config
from tests.detect import fixtures


@pytest.fixture(scope="module")
def detector_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mtcnn")
    params, _ = mtcnn_import.convert(fixtures.write_npy(fixtures.opensphere_nets(seed=3), folder / "npy"))
    weights.save(params, folder / "ckpt")
    return folder / "ckpt"


def _photos(root, identities=4, per_identity=4, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(identities):
        (root / f"id{i}").mkdir(parents=True)
        for k in range(per_identity):
            cv2.imwrite(str(root / f"id{i}" / f"{k}.jpg"), fixtures.photo(rng, (120, 150))[:, :, ::-1])
    return root


def _align(inp, out, detector_dir, *extra):
    return align.main(["--input", str(inp), "--output", str(out), "--detector", str(detector_dir), "--workers", "2",
                       *extra])


def test_photos_to_aligned_crops_to_packed_set_to_training(tmp_path, detector_dir, capsys):
    photos = _photos(tmp_path / "photos")
    assert _align(photos, tmp_path / "aligned", detector_dir) == 0
    crops = sorted(p.relative_to(tmp_path / "aligned").as_posix() for p in (tmp_path / "aligned").rglob("*.jpg"))
    listed = (tmp_path / "aligned" / align.REPORT).read_text().splitlines()
    assert len(crops) + len(listed) == 16 and len(crops) >= 8, (crops, listed)
    assert all(line.endswith("\tno face") for line in listed)
    assert all(cv2.imread(str(tmp_path / "aligned" / c)).shape == (112, 112, 3) for c in crops)
    assert f"aligned {len(crops)} of 16 photos" in capsys.readouterr().out

    before = {c: (tmp_path / "aligned" / c).stat().st_mtime_ns for c in crops}
    assert _align(photos, tmp_path / "aligned", detector_dir) == 0  # resumed: nothing left to do
    assert "aligned 0 of 0 photos" in capsys.readouterr().out
    assert before == {c: (tmp_path / "aligned" / c).stat().st_mtime_ns for c in crops}
    (tmp_path / "aligned" / crops[0]).unlink()
    assert _align(photos, tmp_path / "aligned", detector_dir) == 0  # only the missing one is redone
    assert "aligned 1 of 1 photos" in capsys.readouterr().out
    with pytest.raises(errors.UserError, match="other settings"):
        _align(photos, tmp_path / "aligned", detector_dir, "--crop", "96x112")

    assert pack.main(["--source", str(tmp_path / "aligned"), "--out", str(tmp_path / "packed")]) == 0
    identities = len({c.split("/")[0] for c in crops})
    assert f"packed {len(crops)} images of {identities} identities" in capsys.readouterr().out
    config = train_config.get_config(str(tmp_path))
    config.data.source, config.data.data_dir = str(tmp_path / "packed"), ""
    config.total_steps, config.optim.milestones, config.checkpoint.every_steps = 4, (2,), 4
    config_check.check_values(config)
    train.train_and_evaluate(config, str(tmp_path / "run"))
    assert (tmp_path / "run" / "checkpoints" / "4").exists()


def _png_header_only(width, height):
    """A PNG whose header announces width x height RGB pixels, with a tiny (truncated) image stream."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_every_bad_photo_gets_a_named_entry_and_the_run_goes_on(tmp_path, detector_dir, capsys):
    rng = np.random.default_rng(5)
    d = tmp_path / "photos" / "x"
    d.mkdir(parents=True)
    face = fixtures.photo(rng, (120, 150))
    cv2.imwrite(str(d / "gray.png"), cv2.cvtColor(face, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(d / "rgba.png"), np.dstack([face[:, :, ::-1], np.full(face.shape[:2], 255, np.uint8)]))
    cv2.imwrite(str(d / "deep.png"), face[:, :, ::-1].astype(np.uint16) * 257)
    cv2.imwrite(str(d / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(d / "blank.jpg"), np.full((120, 150, 3), 128, np.uint8))
    (d / "notes.jpg").write_text("not an image")
    (d / "empty.png").write_bytes(b"")
    (d / "huge.png").write_bytes(_png_header_only(10000, 10000))
    (d / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert _align(tmp_path / "photos", tmp_path / "out", detector_dir, "--all") == 0
    report = dict(line.split("\t", 1) for line in (tmp_path / "out" / align.REPORT).read_text().splitlines())
    assert report["x/tiny.png"] == report["x/blank.jpg"] == "no face"
    assert report["x/notes.jpg"].startswith("not an image: ") and report["x/empty.png"].startswith("not an image: ")
    assert report["x/huge.png"].startswith("too large: ") and "10000x10000" in report["x/huge.png"]
    assert report["x/gone.jpg"].startswith("unreadable: ")
    for name in ("gray", "rgba", "deep"):  # decoded to 8-bit RGB: aligned, or at worst no face
        assert f"x/{name}.png" in report or (tmp_path / "out" / "x" / f"{name}_0.png").exists()
    assert "listed in" in capsys.readouterr().out
    (tmp_path / "list.txt").write_text("photos/x/gray.png 7\nphotos/x/missing.jpg 7\n")  # a list, other fields
    assert _align(tmp_path / "list.txt", tmp_path / "from_list", detector_dir, "--crop", "96x112") == 0
    listed = dict(line.split("\t", 1) for line in (tmp_path / "from_list" / align.REPORT).read_text().splitlines())
    assert listed["photos/x/missing.jpg"].startswith("unreadable: ")
    assert "photos/x/gray.png" in listed or cv2.imread(str(tmp_path / "from_list/photos/x/gray.png")).shape == (
        112, 96, 3)
    with pytest.raises(errors.UserError, match="inside --input"):
        _align(tmp_path / "photos", tmp_path / "photos" / "aligned", detector_dir)


def test_commands_answer_bad_input_with_one_line(tmp_path):
    from tests.test_cli_errors import assert_one_error_line, run

    photos = _photos(tmp_path / "photos", identities=1, per_identity=1)
    env = {weights.ENV: str(tmp_path / "no_cache")}
    proc = run("jsphere.align", "--input", photos, "--output", tmp_path / "out", env=env)
    assert_one_error_line(proc, "jsphere.align", "no MTCNN detector checkpoint", "converters.import_mtcnn")
    proc = run("converters.import_mtcnn", "--weights", tmp_path / "nowhere", env=env)
    assert_one_error_line(proc, "converters.import_mtcnn", "--weights", "not a folder")
