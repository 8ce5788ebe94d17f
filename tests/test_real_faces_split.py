"""The real-faces benchmark's LFW split (``benchmarks.real_faces.split``) on a tiny fake LFW tree: the held-out
folds' people never reach the training list, only people with at least two images do, the written list and pairs
read back with jsphere's own readers, and bad input is one line with exit code 2. No training, no real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.real_faces import split
from benchmarks.real_faces.__main__ import PROG, main
from jsphere import cli
from jsphere.data.pair_files import read_pair_list
from jsphere.data.sources import read_list
from jsphere.errors import UserError

FOLDS = 10


def _person(lfw: Path, name: str, images: int) -> None:
    (lfw / name).mkdir(parents=True)
    for k in range(1, images + 1):
        (lfw / name / f"{name}_{k:04d}.jpg").write_bytes(b"not decoded by the split")


@pytest.fixture
def fake_lfw(tmp_path) -> tuple[Path, Path]:
    """Fold k: a matched pair of Same_k (3 images) and a mismatched pair of Single_k (1 image) with Other_k (2).
    Outside every fold: Extra_Two (2 images, trained on) and Extra_One (1 image, never)."""
    lfw = tmp_path / "lfw"
    lines = [f"{FOLDS}\t1"]
    for k in range(FOLDS):
        _person(lfw, f"Same_{k}", 3)
        _person(lfw, f"Single_{k}", 1)
        _person(lfw, f"Other_{k}", 2)
        lines += [f"Same_{k}\t1\t3", f"Single_{k}\t1\tOther_{k}\t2"]
    _person(lfw, "Extra_Two", 2)
    _person(lfw, "Extra_One", 1)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    return lfw, pairs


def test_the_test_folds_people_are_held_out_and_only_people_with_two_images_train(fake_lfw):
    lfw, pairs = fake_lfw
    s = split.make_split(lfw, pairs, (9, 10))
    held = {f"{kind}_{k}" for kind in ("Same", "Single", "Other") for k in (8, 9)}
    assert s.heldout_people == held
    assert not set(s.train) & s.heldout_people
    expected = {f"{kind}_{k}" for kind in ("Same", "Other") for k in range(8)} | {"Extra_Two"}
    assert set(s.train) == expected  # Single_* and Extra_One have one image
    assert s.train["Same_0"] == [f"Same_0_{k:04d}.jpg" for k in (1, 2, 3)]
    assert len(s.heldout_pairs) == 4
    assert {p.first[0] for p in s.heldout_pairs} | {p.second[0] for p in s.heldout_pairs} <= held


def test_the_written_list_and_pairs_read_back_with_jsphere_readers(fake_lfw, tmp_path):
    lfw, pairs = fake_lfw
    summary = split.write_split(split.make_split(lfw, pairs, (10,)), tmp_path / "split")
    assert summary["train_people"] == 2 * 9 + 1 and summary["heldout_pairs"] == 2
    source = read_list(tmp_path / "split" / split.TRAIN_LIST, lfw)
    assert source.class_names == sorted(source.class_names) and len(source.class_names) == 19
    assert len(source) == 9 * (3 + 2) + 2 == summary["train_images"]
    for i in range(len(source)):
        assert Path(source.path(i)).is_file()
        assert Path(source.paths[i]).parent.name == source.class_names[source.labels[i]]
    held = read_pair_list(tmp_path / "split" / split.HELDOUT_PAIRS, lfw)
    assert held.labels.tolist() == [True, False]
    assert {Path(p).parent.name for p in held.paths} == {"Other_9", "Same_9", "Single_9"}


def test_the_cli_refuses_a_folds_count_that_is_not_view2(fake_lfw, tmp_path):
    lfw, _ = fake_lfw
    view1 = tmp_path / "view1.txt"
    view1.write_text("1\nSame_0\t1\t2\nSingle_0\t1\tOther_0\t1\n")
    with pytest.raises(UserError, match="10 folds"):
        split.make_split(lfw, view1, (10,))
    with pytest.raises(UserError, match="distinct fold numbers"):
        split.make_split(lfw, tmp_path / "pairs.txt", (0, 11))


def _one_line_error(capsys, monkeypatch, argv: list[str]) -> str:
    monkeypatch.delenv("JSPHERE_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(PROG, main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{PROG}: error: "), err
    return err


def test_bad_input_is_one_line_and_exit_code_2(fake_lfw, tmp_path, capsys, monkeypatch):
    lfw, pairs = fake_lfw
    out = ["--out", str(tmp_path / "out")]
    err = _one_line_error(capsys, monkeypatch, ["--lfw", str(tmp_path / "nowhere"), "--pairs", str(pairs), *out])
    assert "nowhere: no such folder" in err
    lines = pairs.read_text().splitlines()
    broken = tmp_path / "broken.txt"
    broken.write_text("\n".join([*lines[:3], "Same_1\tone\t2", *lines[4:]]) + "\n")
    err = _one_line_error(capsys, monkeypatch, ["--lfw", str(lfw), "--pairs", str(broken), *out])
    assert f"{broken}:4" in err
    (lfw / "Other_3" / "Other_3_0002.jpg").unlink()
    err = _one_line_error(capsys, monkeypatch, ["--lfw", str(lfw), "--pairs", str(pairs), *out])
    assert "Other_3_0002.jpg does not exist" in err and f"{pairs}:" in err
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are checked
