"""One rule for every command's ``--out`` / ``--output`` (``jsphere.outputs``): exactly the path given, parents
created, an existing output refused unless ``--overwrite``, never written through a symbolic link, and nothing
left behind by a command that fails."""

import errno
import importlib
import os

import numpy as np
import pytest
from flax import nnx

from jsphere import checkpoint, embed, errors, models, outputs

# command, its arguments before the output (inputs that do not exist or a request refused once the output is
# checked: nothing is ever generated), the output flag, and whether the output is a folder
COMMANDS = [
    ("jsphere.embed", ["--ckpt", "{d}/none", "--input", "{d}/none.npy"], "--output", False),
    ("jsphere.data.pack", ["--source", "{d}/none"], "--out", True),
    ("jsphere.data.synthetic", ["--identities", "1"], "--out", True),
    ("converters.import_torch", ["--backbone", "{d}/none.pth"], "--out", True),
    ("converters.import_onnx", ["--onnx", "{d}/none.onnx"], "--out", True),
    ("converters.import_mxnet", ["--params", "{d}/none-0000.params"], "--out", True),
    ("converters.export_torch", ["--ckpt", "{d}/none", "--layout", "insightface"], "--out", False),
    ("converters.export_torch", ["--ckpt", "{d}/none", "--layout", "opensphere-v1"], "--out", True),
    ("converters.export_onnx", ["--ckpt", "{d}/none"], "--out", False),
    ("converters.import_mtcnn", ["--weights", "{d}/none"], "--out", True),
]
IDS = [f"{c[0]}:{c[1][-1]}" for c in COMMANDS]


def _argv(tmp_path, args, flag, out, *extra):
    return [a.replace("{d}", str(tmp_path)) for a in args] + [flag, str(out), *extra]


def _existing(tmp_path, folder):
    out = tmp_path / "taken"
    if folder:
        out.mkdir()
        (out / "mine.txt").write_text("keep me")
        return out, lambda: (out / "mine.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1
    out.write_text("keep me")
    return out, lambda: out.read_text() == "keep me"


@pytest.mark.parametrize(("command", "args", "flag", "folder"), COMMANDS, ids=IDS)
def test_every_command_refuses_an_existing_output_unless_overwrite(tmp_path, command, args, flag, folder):
    out, untouched = _existing(tmp_path, folder)
    main = importlib.import_module(command).main
    with pytest.raises(FileExistsError, match=f"{flag} {out}: already exists.*add --overwrite to replace it"):
        main(_argv(tmp_path, args, flag, out))
    assert untouched()
    with pytest.raises(Exception) as raised:  # --overwrite passes the output check: the bad input is next
        main(_argv(tmp_path, args, flag, out, "--overwrite"))
    assert "already exists" not in str(raised.value) and ("none" in str(raised.value) or "--identities 1" in
                                                           str(raised.value))
    assert untouched() and not list(tmp_path.glob(".taken.*"))


@pytest.mark.parametrize(("command", "args", "flag", "folder"), COMMANDS, ids=IDS)
def test_every_command_refuses_a_symbolic_link_as_output_even_with_overwrite(tmp_path, command, args, flag, folder):
    target, untouched = _existing(tmp_path, folder)
    link = tmp_path / "link"
    link.symlink_to(target)
    main = importlib.import_module(command).main
    for extra in ([], ["--overwrite"]):
        with pytest.raises(FileExistsError, match=f"{flag} {link}: is a symbolic link"):
            main(_argv(tmp_path, args, flag, link, *extra))
    assert untouched() and link.is_symlink()


def test_a_file_is_written_at_exactly_the_path_given_with_missing_parents_created(tmp_path):
    out = tmp_path / "runs" / "new" / "features"  # no suffix: none is added
    with outputs.staged_file(out) as tmp, open(tmp, "wb") as f:
        np.save(f, np.arange(3))
    assert sorted(p.name for p in out.parent.iterdir()) == ["features"]
    np.testing.assert_array_equal(np.load(out), np.arange(3))


def test_a_failed_write_leaves_neither_the_output_nor_the_parents_it_created(tmp_path):
    for stage in (outputs.staged_file, outputs.staged_dir):
        with pytest.raises(OSError, match="disk full"), stage(tmp_path / "a" / "b" / "out") as tmp:
            (tmp / "x" if tmp.is_dir() else tmp).write_text("half")
            raise OSError("disk full")
        assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_whole_folder_or_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with outputs.staged_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    with outputs.staged_file(tmp_path / "f.txt") as tmp:
        tmp.write_text("1")
    with pytest.raises(FileExistsError, match="already exists"), outputs.staged_file(tmp_path / "f.txt") as tmp:
        tmp.write_text("2")
    with outputs.staged_file(tmp_path / "f.txt", overwrite=True) as tmp:
        tmp.write_text("3")
    assert (tmp_path / "f.txt").read_text() == "3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "out"]


def test_a_file_is_not_written_over_a_folder_nor_a_folder_over_a_file(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(IsADirectoryError, match="--output .*dir: is a folder; give a file name"):
        outputs.check_free(tmp_path / "dir", flag="--output", overwrite=True, folder=False)
    with pytest.raises(FileExistsError, match="--out .*file: is a file; give a folder"):
        outputs.check_free(tmp_path / "file", overwrite=True)
    with pytest.raises(NotADirectoryError, match="file is a file, not a folder"):
        outputs.check_free(tmp_path / "file" / "sub" / "out.npy", folder=False)
    with pytest.raises(ValueError, match="--out is empty"):
        outputs.check_free("")


def test_embed_writes_exactly_the_output_named_and_refuses_a_folder(tmp_path, capsys):
    model = models.build("sfnet4", embed_dim=4, width=0.125, rngs=nnx.Rngs(0))
    checkpoint.save_weights(tmp_path / "ckpt", step=1, backbone=models.pure_state(model), head=None,
                            meta={"model": {"name": "sfnet4", "embed_dim": 4, "kwargs": {"width": 0.125}}})
    np.save(tmp_path / "faces.npy", np.full((2, 112, 112, 3), 100, np.uint8))
    base = ["--ckpt", str(tmp_path / "ckpt"), "--input", str(tmp_path / "faces.npy"), "--flip", "none"]
    assert embed.main([*base, "--output", str(tmp_path / "out" / "feats")]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["feats"]  # no .npy appended
    assert np.load(tmp_path / "out" / "feats").shape == (2, 4)
    assert f"to {tmp_path / 'out' / 'feats'}" in capsys.readouterr().err
    with pytest.raises(IsADirectoryError, match="--output .*out: is a folder"):
        embed.main([*base, "--output", str(tmp_path / "out")])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["feats"]


def test_a_place_that_cannot_be_written_is_named_by_the_flag_and_the_path_given(tmp_path):
    for stage in (outputs.staged_file, outputs.staged_dir):
        with pytest.raises(errors.UserError, match=rf"--out {tmp_path / 'x'}: cannot write there \(read-only file "
                                                   r"system\); give a place that can be written"):
            with stage(tmp_path / "x") as tmp:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp))
        assert list(tmp_path.iterdir()) == []
