"""Pair files in their published forms (OpenSphere lists, LFW pairs.txt with its folds, CALFW/CPLFW two-line
files, AgeDB's protocol .mat), read into the same pairs and images; the standard 10-fold accuracy uses the file's
own folds."""

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from configs.test.common import PAIR_SETS, PUBLISHED_SETS, pair_set_config
from jsphere.data.decode import encode_jpeg
from jsphere.data.listfile import ListFormatError
from jsphere.data.pair_files import halves_folds, read_pair_list
from jsphere.eval.evaluators import PairEvaluator
from jsphere.eval.pair_sets import load_pair_set
from jsphere.eval.verification import kfold_accuracy

CODE_STEP = 16  # image k is a flat colour coding k in red and green steps of 16; JPEG keeps it within +-3


def _write_faces(root: Path, *relative: str) -> dict[str, int]:
    """A flat 112x112 JPEG per path, each its own colour; returns path -> its number k."""
    numbers = {}
    for k, rel in enumerate(relative):
        numbers[rel] = k
        colour = (8 + CODE_STEP * (k % 15), 8 + CODE_STEP * (k // 15), 128)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(encode_jpeg(np.full((112, 112, 3), colour, np.uint8)))
    return numbers


def _loaded_pairs(pair_set) -> list[tuple[int, int]]:
    """The numbers of both images of every pair, decoded from the loaded images' colours."""
    red, green = pair_set.images[..., 0].mean(axis=(1, 2)), pair_set.images[..., 1].mean(axis=(1, 2))
    numbers = np.round((red - 8) / CODE_STEP) + 15 * np.round((green - 8) / CODE_STEP)
    return [(int(numbers[a]), int(numbers[b])) for a, b in pair_set.pairs]


LFW_PAIRS = ("2\t2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t2\nBob\t3\tCy\t1\n"
             "Cy\t1\t2\nAnn\t2\t3\nCy\t2\tAnn\t3\nBob\t1\tCy\t2\n")
LFW_IMAGES = ("Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg", "Ann/Ann_0003.jpg", "Bob/Bob_0001.jpg", "Bob/Bob_0002.jpg",
              "Bob/Bob_0003.jpg", "Cy/Cy_0001.jpg", "Cy/Cy_0002.jpg")


def test_lfw_pairs_txt_reads_names_numbers_images_and_its_own_folds(tmp_path):
    (tmp_path / "pairs.txt").write_text(LFW_PAIRS)
    numbers = _write_faces(tmp_path, *LFW_IMAGES)
    p = read_pair_list(tmp_path / "pairs.txt")
    assert p.format == "lfw"
    assert p.labels.tolist() == [True, True, False, False] * 2
    assert p.folds.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    loaded = load_pair_set(dict(PUBLISHED_SETS["lfw"]["pairs"], path=str(tmp_path / "pairs.txt"),
                                data_dir=str(tmp_path)))
    expected = [("Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg"), ("Bob/Bob_0001.jpg", "Bob/Bob_0003.jpg"),
                ("Ann/Ann_0001.jpg", "Bob/Bob_0002.jpg"), ("Bob/Bob_0003.jpg", "Cy/Cy_0001.jpg"),
                ("Cy/Cy_0001.jpg", "Cy/Cy_0002.jpg"), ("Ann/Ann_0002.jpg", "Ann/Ann_0003.jpg"),
                ("Cy/Cy_0002.jpg", "Ann/Ann_0003.jpg"), ("Bob/Bob_0001.jpg", "Cy/Cy_0002.jpg")]
    assert _loaded_pairs(loaded) == [(numbers[a], numbers[b]) for a, b in expected]
    assert loaded.folds.tolist() == p.folds.tolist()


def test_the_default_lfw_config_reads_either_lfw_form(tmp_path):
    (tmp_path / "pairs.txt").write_text(LFW_PAIRS)
    (tmp_path / "lfw_ann.txt").write_text("1 Ann/Ann_0001.jpg Ann/Ann_0002.jpg\n0 Ann/Ann_0001.jpg Bob/Bob_0002.jpg\n")
    _write_faces(tmp_path, *LFW_IMAGES)
    (default,) = pair_set_config("lfw", None).eval.sets
    assert default == dict(PAIR_SETS["lfw"]) and default["format"] == "auto"
    original = load_pair_set(dict(default, path=str(tmp_path / "pairs.txt"), data_dir=str(tmp_path)))
    opensphere = load_pair_set(dict(default, path=str(tmp_path / "lfw_ann.txt"), data_dir=str(tmp_path)))
    assert len(original.labels) == 8 and original.folds is not None
    assert opensphere.labels.tolist() == [True, False] and opensphere.folds is None
    with pytest.raises(ListFormatError, match="lfw_ann.txt:1: expected an LFW pairs.txt header"):
        load_pair_set(dict(default, path=str(tmp_path / "lfw_ann.txt"), data_dir=str(tmp_path), format="lfw"))


def test_lfw_view_one_files_are_folded_by_tenths_of_each_half(tmp_path):
    matched = "".join(f"P{i} 1 2\n" for i in range(10))
    mismatched = "".join(f"P{i} 1 Q{i} 1\n" for i in range(10))
    (tmp_path / "pairsDevTest.txt").write_text(f"10\n{matched}{mismatched}")
    p = read_pair_list(tmp_path / "pairsDevTest.txt", check_files=False)
    assert p.labels.tolist() == [True] * 10 + [False] * 10
    assert p.folds.tolist() == list(range(10)) * 2


def _calfw_text(matched: int, mismatched: int) -> str:
    lines = [f"A{i}_0001.jpg {i + 1}\nA{i}_0002.jpg {i + 1}\n" for i in range(matched)]
    lines += [f"B{i}_0001.jpg 0\nC{i}_0001.jpg 0\n" for i in range(mismatched)]
    return "".join(lines)


def test_calfw_two_line_pairs_with_their_folds_of_300_plus_300_scaled_down(tmp_path):
    (tmp_path / "pairs_CALFW.txt").write_text(_calfw_text(20, 20))
    names = [f"{who}{i}_000{k}.jpg" for i in range(20) for who, k in (("A", 1), ("A", 2), ("B", 1), ("C", 1))]
    numbers = _write_faces(tmp_path / "images", *names)
    p = read_pair_list(tmp_path / "pairs_CALFW.txt", tmp_path / "images")
    assert p.format == "xlfw" and p.labels.tolist() == [True] * 20 + [False] * 20
    assert p.folds.tolist() == [i // 2 for i in range(20)] * 2  # fold k: matched 2k, 2k+1 and mismatched 2k, 2k+1
    loaded = load_pair_set(dict(PUBLISHED_SETS["calfw"]["pairs"], path=str(tmp_path / "pairs_CALFW.txt"),
                                data_dir=str(tmp_path / "images")))
    assert _loaded_pairs(loaded)[20] == (numbers["B0_0001.jpg"], numbers["C0_0001.jpg"])


def test_a_two_line_file_in_any_other_order_has_no_folds_of_its_own(tmp_path):
    (tmp_path / "pairs.txt").write_text("A_1.jpg 1\nA_2.jpg 1\nA_1.jpg 0\nB_2.jpg 0\nB_2.jpg 2\nB_5.jpg 2\n")
    p = read_pair_list(tmp_path / "pairs.txt", check_files=False)
    assert p.labels.tolist() == [True, False, True] and p.folds is None


def _agedb_mat(path: Path, folds: int, per_fold: int) -> list[tuple[str, str, bool]]:
    """AgeDB's protocol layout: cell ``splits`` {folds x 1}, each a struct (pairs: 2 x N cell of image structs
    (name, age); label: 1 x N of 1 / -1). Returns the pairs written, in order."""
    splits = np.empty((folds, 1), object)
    written = []
    for k in range(folds):
        cells = np.empty((2, per_fold), object)
        labels = np.empty((1, per_fold))
        for c in range(per_fold):
            same = c % 2 == 0
            first, second = f"{k}{c}_Ann_30_f", f"{k}{c}_{'Ann' if same else 'Bob'}_60_{'f' if same else 'm'}"
            cells[0, c] = {"name": first, "age": np.array([[30.0]])}
            cells[1, c] = {"name": second, "age": np.array([[60.0]])}
            labels[0, c] = 1 if same else -1
            written.append((first + ".jpg", second + ".jpg", same))
        splits[k, 0] = {"pairs": cells, "label": labels}
    savemat(path, {"splits": splits})
    return written


def test_agedb_protocol_mat_is_read_with_its_folds(tmp_path):
    written = _agedb_mat(tmp_path / "04_FINAL_protocol_30_years.mat", folds=3, per_fold=4)
    numbers = _write_faces(tmp_path / "images", *sorted({name for a, b, _ in written for name in (a, b)}))
    p = read_pair_list(tmp_path / "04_FINAL_protocol_30_years.mat", tmp_path / "images")
    assert p.format == "agedb" and p.folds.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert p.labels.tolist() == [same for _, _, same in written]
    loaded = load_pair_set(dict(PUBLISHED_SETS["agedb"]["pairs"], path=str(tmp_path / "04_FINAL_protocol_30_years.mat"),
                                data_dir=str(tmp_path / "images")))
    assert _loaded_pairs(loaded) == [(numbers[a], numbers[b]) for a, b, _ in written]


def test_a_mat_file_without_the_agedb_layout_is_named(tmp_path):
    savemat(tmp_path / "other.mat", {"x": np.ones((2, 2))})
    with pytest.raises(ValueError, match="other.mat: no cell array 'splits'"):
        read_pair_list(tmp_path / "other.mat", check_files=False)
    (tmp_path / "text.txt").write_text("1 a.jpg b.jpg\n")
    with pytest.raises(ValueError, match="text.txt: cannot read it as a MATLAB v5 .mat file"):
        read_pair_list(tmp_path / "text.txt", check_files=False, fmt="agedb")


def test_opensphere_list_is_still_read_and_its_format_detected(tmp_path):
    (tmp_path / "ann.txt").write_text("1 a/1.jpg a/2.jpg\n0 a/1.jpg b/1.jpg\n")
    _write_faces(tmp_path, "a/1.jpg", "a/2.jpg", "b/1.jpg")
    p = read_pair_list(tmp_path / "ann.txt")
    assert p.format == "opensphere" and p.labels.tolist() == [True, False] and p.folds is None


@pytest.mark.parametrize(("text", "message"), [
    ("10 300\nAnn 1 2\n", "announces 10 fold\\(s\\) of 300 matched \\+ 300 mismatched pairs \\(6000 lines\\), but 1"),
    ("1 1\nAnn 1 Bob 2\nAnn 1 2\n", "pairs.txt:2: expected a matched pair 'name n1 n2'"),
    ("1 1\nAnn 1 2\nAnn x Bob 2\n", "pairs.txt:3: expected an image number"),
    ("A.jpg 1\nB.jpg 2\n", "pairs.txt:2: label 2 differs from 1 on line 1"),
    ("A.jpg 1\nB.jpg 1\nC.jpg 0\n", "odd number of lines"),
    ("hello\n", "pairs.txt:1: expected a pair file"),
    ("1 a.jpg b.jpg\n1 a.jpg\n", "pairs.txt:2: expected 'label path0 path1'"),
    ("# only a comment\n\n", "pairs.txt: the pair file has no entries"),
])
def test_malformed_pair_files_name_file_and_line(tmp_path, text, message):
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(ListFormatError, match=message):
        read_pair_list(tmp_path / "pairs.txt", check_files=False)


def test_a_missing_image_names_the_line_that_lists_it(tmp_path):
    (tmp_path / "pairs.txt").write_text("1 1\nAnn 1 2\nAnn 1 Bob 1\n")
    _write_faces(tmp_path, "Ann/Ann_0001.jpg", "Ann/Ann_0002.jpg")
    with pytest.raises(FileNotFoundError, match="pairs.txt:3: image .*Bob/Bob_0001.jpg does not exist"):
        read_pair_list(tmp_path / "pairs.txt")


def test_a_bad_lfw_image_pattern_is_named(tmp_path):
    (tmp_path / "pairs.txt").write_text("1 1\nAnn 1 2\nAnn 1 Bob 1\n")
    with pytest.raises(ValueError, match="LFW image pattern '{person}.jpg'"):
        read_pair_list(tmp_path / "pairs.txt", check_files=False, lfw_image="{person}.jpg")


def test_halves_folds_split_each_half_in_tenths_and_refuse_other_orders():
    same = np.array([True] * 30 + [False] * 20)
    folds = halves_folds(same)
    assert folds.tolist() == [i * 10 // 30 for i in range(30)] + [i // 2 for i in range(20)]
    assert all(np.sum(folds[:30] == k) == 3 and np.sum(folds[30:] == k) == 2 for k in range(10))
    assert halves_folds(np.array([True, False] * 20)) is None
    assert halves_folds(np.array([True] * 9 + [False] * 9)) is None  # fewer than one pair per fold and half


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


def _reference_fold_accuracy(distance: np.ndarray, same: np.ndarray, folds: np.ndarray) -> float:
    """The standard protocol written out: per held-out fold, the first threshold of 0, 0.01, ... 3.99 with the
    best accuracy on the other folds, scored on the held-out fold; the mean in %."""
    thresholds = [k / 100 for k in range(400)]
    accuracies = []
    for fold in sorted(set(folds.tolist())):
        train, test = folds != fold, folds == fold
        best = max(thresholds, key=lambda t: np.mean((distance[train] < t) == same[train]))
        accuracies.append(np.mean((distance[test] < best) == same[test]))
    return 100 * float(np.mean(accuracies))


def test_the_evaluator_scores_a_calfw_file_on_its_own_folds_not_contiguous_ones(tmp_path):
    """20 matched then 20 mismatched pairs: contiguous folds would hold one kind of pair each. The evaluator's
    10-fold accuracy equals the protocol computed on the file's folds, which differs from contiguous folds'."""
    (tmp_path / "pairs_CALFW.txt").write_text(_calfw_text(20, 20))
    names = [f"{who}{i}_000{k}.jpg" for i in range(20) for who, k in (("A", 1), ("A", 2), ("B", 1), ("C", 1))]
    _write_faces(tmp_path, *names)
    set_cfg = dict(PUBLISHED_SETS["calfw"]["pairs"], path=str(tmp_path / "pairs_CALFW.txt"), data_dir=str(tmp_path))
    evaluator = PairEvaluator(set_cfg)
    pair_list = read_pair_list(tmp_path / "pairs_CALFW.txt", tmp_path)
    rng = np.random.default_rng(0)
    same = pair_list.labels
    distance = np.round(np.where(same, rng.uniform(0.2, 1.4, len(same)), rng.uniform(0.9, 2.2, len(same))), 3) + 5e-4
    angles = np.arccos(1 - distance / 2)  # unit vectors at squared L2 distance ``distance`` from (1, 0)
    features = np.zeros((len(pair_list.paths), 2))
    features[pair_list.pairs[:, 0]] = [1.0, 0.0]
    features[pair_list.pairs[:, 1]] = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    result = evaluator.score(features).metrics
    on_file_folds = _reference_fold_accuracy(distance, same, pair_list.folds)
    on_contiguous_folds = _reference_fold_accuracy(distance, same, np.arange(len(same)) // 4)
    assert result["std_acc"] == pytest.approx(on_file_folds, abs=1e-9)
    assert abs(on_file_folds - on_contiguous_folds) > 1.0


@pytest.mark.parametrize("key", sorted(PUBLISHED_SETS))
def test_every_published_form_has_a_test_config(key):
    for form in PUBLISHED_SETS[key]:
        (config_set,) = pair_set_config(key, form).eval.sets
        assert config_set["type"] in ("pairs", "bin")
        assert config_set["type"] == "bin" or config_set["format"] == "auto"
    with pytest.raises(ValueError, match="the forms of this set are"):
        pair_set_config(key, "nope")
