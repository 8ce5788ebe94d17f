"""Pair files in their published forms (OpenSphere lists, LFW pairs.txt with its folds, CALFW/CPLFW two-line
files), read into the same pairs; the standard 10-fold accuracy uses the file's own folds."""

import numpy as np
import pytest

from configs.test.common import PUBLISHED_SETS, pair_set_config
from jsphere.data.listfile import ListFormatError
from jsphere.data.pairs import read_pair_list
from jsphere.eval.verification import kfold_accuracy


def _touch(root, *relative):
    for rel in relative:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")


def test_lfw_pairs_txt_gives_names_numbers_and_its_own_folds(tmp_path):
    text = "2 2\nAnn 1 2\nBob 1 3\nAnn 1 Bob 2\nBob 3 Cy 1\nCy 1 2\nAnn 2 3\nCy 2 Ann 3\nBob 1 Cy 2\n"
    (tmp_path / "pairs.txt").write_text(text)
    _touch(tmp_path, "Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", "Ann/Ann_0003.jpg", "Bob/Bob_0001.jpg",
           "Bob/Bob_0002.jpg", "Bob/Bob_0003.jpg", "Cy/Cy_0001.jpg", "Cy/Cy_0002.jpg")
    p = read_pair_list(tmp_path / "pairs.txt")
    assert p.format == "lfw"
    named = [(p.paths[a].split("/")[-1], p.paths[b].split("/")[-1]) for a, b in p.pairs]
    assert named[:3] == [("Ann_0001.jpg", "Ann_0002.jpg"), ("Bob_0001.jpg", "Bob_0003.jpg"),
                         ("Ann_0001.jpg", "Bob_0002.jpg")]
    assert p.labels.tolist() == [True, True, False, False] * 2
    assert p.folds.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_calfw_two_line_pairs_use_zero_for_different_people(tmp_path):
    (tmp_path / "pairs_CALFW.txt").write_text("A_0001.jpg 1\nA_0003.jpg 1\nA_0001.jpg 0\nB_0002.jpg 0\n"
                                              "B_0002.jpg 2\nB_0005.jpg 2\n")
    _touch(tmp_path, "A_0001.jpg", "A_0003.jpg", "B_0002.jpg", "B_0005.jpg")
    p = read_pair_list(tmp_path / "pairs_CALFW.txt")
    assert p.format == "xlfw" and p.folds is None
    assert p.labels.tolist() == [True, False, True]
    assert [p.paths[i].split("/")[-1] for i in p.pairs[1]] == ["A_0001.jpg", "B_0002.jpg"]


def test_opensphere_list_is_still_read_and_its_format_detected(tmp_path):
    (tmp_path / "ann.txt").write_text("1 a/1.jpg a/2.jpg\n0 a/1.jpg b/1.jpg\n")
    _touch(tmp_path, "a/1.jpg", "a/2.jpg", "b/1.jpg")
    p = read_pair_list(tmp_path / "ann.txt")
    assert p.format == "opensphere" and p.labels.tolist() == [True, False] and p.folds is None


@pytest.mark.parametrize(("text", "message"), [
    ("10 300\nAnn 1 2\n", "announces 10 fold\\(s\\) of 300 matched \\+ 300 mismatched pairs \\(6000 lines\\), but 1"),
    ("1 1\nAnn 1 Bob 2\nAnn 1 2\n", "pairs.txt:2: expected a matched pair 'name n1 n2'"),
    ("1 1\nAnn 1 2\nAnn x Bob 2\n", "pairs.txt:3: expected an image number"),
    ("A.jpg 1\nB.jpg 2\n", "pairs.txt:2: label 2 differs from 1 on line 1"),
    ("A.jpg 1\nB.jpg 1\nC.jpg 0\n", "odd number of lines"),
    ("hello\n", "pairs.txt:1: expected a pair file"),
])
def test_malformed_pair_files_name_file_and_line(tmp_path, text, message):
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(ListFormatError, match=message):
        read_pair_list(tmp_path / "pairs.txt", check_files=False)


def test_kfold_accuracy_uses_the_given_folds():
    """Pairs at squared distances 0.5 (same) and 0.9 (different) form one group, 1.5 (same) and 1.9 (different)
    another; the threshold learnt on one group classifies half of the other. The file's folds keep the groups
    apart (50 %); two contiguous folds mix them, and the threshold 0.51 learnt on a mix gets 3 of 4 (75 %)."""
    a = np.array([1.0, 0.0])

    def partner(distance):  # the unit vector at squared L2 distance ``distance`` from ``a``
        cos = 1 - distance / 2
        return np.array([cos, np.sqrt(1 - cos**2)])

    distances = [0.5, 0.9, 1.5, 1.9] * 2
    issame = np.array([True, False, True, False] * 2)
    e1, e2 = np.tile(a, (8, 1)), np.stack([partner(d) for d in distances])
    assert kfold_accuracy(e1, e2, issame, nfolds=2)["acc_mean"] == pytest.approx(75.0)
    file_folds = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    assert kfold_accuracy(e1, e2, issame, folds=file_folds)["acc_mean"] == pytest.approx(50.0)


@pytest.mark.parametrize("key", sorted(PUBLISHED_SETS))
def test_every_published_form_has_a_test_config(key):
    for form in PUBLISHED_SETS[key]:
        (config_set,) = pair_set_config(key, form).eval.sets
        assert config_set["type"] in ("pairs", "bin")
    with pytest.raises(ValueError, match="the forms of this set are"):
        pair_set_config(key, "nope")
