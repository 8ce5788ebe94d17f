"""Every source format round-trips labels and image bytes exactly, and bad files get named errors."""

import pickle
import struct

import cv2
import numpy as np
import pytest

from jsphere.data import binset, ijb_meta, pack, recordio, sources
from jsphere.data.decode import CorruptImageError, decode_image, encode_jpeg
from tests.data.recordio_writer import MAGIC, write_rec


def _jpeg(seed):
    return encode_jpeg(np.random.default_rng(seed).integers(0, 255, (112, 112, 3), dtype=np.uint8))


def test_recordio_round_trip_with_meta_record_vector_labels_and_a_split_record(tmp_path):
    magic_image = b"\xff\xd8" + b"\0\0" + struct.pack("<I", MAGIC) + b"tail-of-image"  # magic at an aligned offset
    items = [(_jpeg(0), 0.0), (magic_image, [1.0, 1.0]), (_jpeg(2), 2.0)]
    write_rec(tmp_path, items, num_classes=3)
    assert (tmp_path / "train.rec").read_bytes().count(struct.pack("<I", MAGIC)) == 5  # 4 records, one split in 2
    src = sources.open_source(tmp_path)
    assert isinstance(src, recordio.RecordIOSource) and len(src) == 3 and src.num_classes == 3
    for i, (image, label) in enumerate(items):
        data, got = src[i]
        assert data == image and got == int(label[0] if isinstance(label, list) else label)
    assert src.labels.tolist() == [0, 1, 2]


def test_recordio_without_meta_record_uses_every_indexed_key(tmp_path):
    write_rec(tmp_path, [(_jpeg(0), 4.0), (_jpeg(1), 7.0)], meta=False)
    src = recordio.RecordIOSource(tmp_path / "train.rec")
    assert len(src) == 2 and src[1][1] == 7 and src.num_classes == 8


def test_recordio_bad_magic_and_truncation_are_named(tmp_path):
    write_rec(tmp_path, [(_jpeg(0), 0.0), (_jpeg(1), 1.0)])
    original = (tmp_path / "train.rec").read_bytes()
    data = bytearray(original)
    offset = int((tmp_path / "train.idx").read_text().splitlines()[2].split()[1])
    data[offset:offset + 4] = b"XXXX"
    (tmp_path / "train.rec").write_bytes(bytes(data))
    src = recordio.RecordIOSource(tmp_path)
    with pytest.raises(recordio.RecordIOError, match="key 2: bad magic"):
        src[1]
    (tmp_path / "train.rec").write_bytes(original[:offset + 20])
    with pytest.raises(recordio.RecordIOError, match="truncated"):
        recordio.RecordIOSource(tmp_path)[1]


def test_list_v1_v2_and_folder_sources_agree_on_labels(tmp_path):
    for ident, n in [("bob", 2), ("alice", 3)]:
        (tmp_path / "img" / ident).mkdir(parents=True)
        for i in range(n):
            (tmp_path / "img" / ident / f"{i}.jpg").write_bytes(_jpeg(i))
    rels = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "img").rglob("*.jpg"))
    (tmp_path / "v1.txt").write_text("".join(f"{r} {r.split('/')[1]}\n" for r in rels))
    (tmp_path / "v2.txt").write_text("".join(f"{r}\n" for r in rels))
    v1 = sources.open_source(tmp_path / "v1.txt", tmp_path)
    v2 = sources.open_source(tmp_path / "v2.txt", tmp_path)
    folder = sources.open_source(tmp_path / "img")
    assert v1.class_names == ["alice", "bob"] and v2.class_names == ["img/alice", "img/bob"]
    assert v1.labels.tolist() == v2.labels.tolist() == folder.labels.tolist() == [0, 0, 0, 1, 1]
    assert v1[0][0] == (tmp_path / rels[0]).read_bytes()


def test_malformed_list_line_names_file_and_line(tmp_path):
    (tmp_path / "list.txt").write_text("a/1.jpg a\na/2.jpg a extra\n")
    with pytest.raises(sources.ListFormatError, match="list.txt:2: expected 'relative/path identity'"):
        sources.read_list(tmp_path / "list.txt")


def test_a_first_line_missing_its_label_is_named_as_line_one(tmp_path):
    (tmp_path / "list.txt").write_text("a/1.jpg\n\na/2.jpg a\nb/1.jpg b\n")
    with pytest.raises(sources.ListFormatError, match="list.txt:1: expected 'relative/path identity': a v1 list"):
        sources.read_list(tmp_path / "list.txt")


def test_a_non_integer_label_in_an_integer_labelled_list_names_file_and_line(tmp_path):
    (tmp_path / "list.txt").write_text("a/1.jpg 0\n# a comment\na/2.jpg 0\nb/1.jpg 3x\n")
    with pytest.raises(sources.ListFormatError, match="list.txt:4: label '3x' is not an integer, but 2 of the "
                                                      "list's 3 labels are: an integer-labelled list"):
        sources.read_list(tmp_path / "list.txt")


def test_a_bad_first_label_is_named_as_line_one_not_the_good_lines_after_it(tmp_path):
    (tmp_path / "list.txt").write_text("a/1.jpg 3x\na/2.jpg 0\nb/1.jpg 1\n")
    with pytest.raises(sources.ListFormatError, match="list.txt:1: label '3x' is not an integer"):
        sources.read_list(tmp_path / "list.txt")


def test_identity_names_may_include_some_that_are_digits(tmp_path):
    (tmp_path / "names.txt").write_text("x/0.jpg alice\nx/1.jpg 7\nx/2.jpg bob\nx/3.jpg 10\nx/4.jpg carol\n")
    src = sources.read_list(tmp_path / "names.txt")
    assert src.class_names == ["10", "7", "alice", "bob", "carol"] and src.labels.tolist() == [2, 1, 3, 0, 4]


def test_half_integer_labels_make_an_integer_list_and_unicode_digits_are_not_integers(tmp_path):
    (tmp_path / "tie.txt").write_text("x/0.jpg alice\nx/1.jpg 7\n")
    with pytest.raises(sources.ListFormatError, match="tie.txt:1: label 'alice' is not an integer, but 1 of"):
        sources.read_list(tmp_path / "tie.txt")
    (tmp_path / "superscript.txt").write_text("x/0.jpg 1\nx/1.jpg 2\nx/2.jpg \u00b2\n", encoding="utf-8")
    with pytest.raises(sources.ListFormatError, match="superscript.txt:3: label '\u00b2' is not an integer"):
        sources.read_list(tmp_path / "superscript.txt")


def test_integer_labels_keep_their_numeric_order_and_names_sort_as_strings(tmp_path):
    (tmp_path / "ints.txt").write_text("".join(f"x/{i}.jpg {label}\n" for i, label in enumerate((10, 2, 0, 1))))
    assert sources.read_list(tmp_path / "ints.txt").labels.tolist() == [3, 2, 0, 1]
    (tmp_path / "names.txt").write_text("x/0.jpg n10\nx/1.jpg n2\nx/2.jpg n0\n")
    assert sources.read_list(tmp_path / "names.txt").labels.tolist() == [1, 2, 0]


def test_one_integer_written_two_ways_is_one_class_named_as_first_written(tmp_path):
    (tmp_path / "ints.txt").write_text("x/0.jpg 007\nx/1.jpg 3\nx/2.jpg 7\n")
    src = sources.read_list(tmp_path / "ints.txt")
    assert src.num_classes == 2 and src.class_names == ["3", "007"] and src.labels.tolist() == [1, 0, 1]


def test_tabs_windows_line_ends_and_a_byte_order_mark_are_accepted(tmp_path):
    (tmp_path / "list.txt").write_bytes("\ufeffa/1.jpg\t0\r\n\r\nb/1.jpg\t1\r\n".encode())
    src = sources.read_list(tmp_path / "list.txt")
    assert src.paths == ["a/1.jpg", "b/1.jpg"] and src.labels.tolist() == [0, 1]
    assert src.describe(1).endswith("list.txt:3)")


def test_a_binary_file_given_as_a_list_is_named(tmp_path):
    (tmp_path / "list.txt").write_bytes(b"a/1.jpg a\n\xff\xfe\x00binary")
    with pytest.raises(sources.ListFormatError, match="list.txt:2: not UTF-8 text"):
        sources.read_list(tmp_path / "list.txt")


def test_missing_image_and_empty_identity_are_named(tmp_path):
    (tmp_path / "list.txt").write_text("a/1.jpg a\n")
    src = sources.read_list(tmp_path / "list.txt")
    with pytest.raises(FileNotFoundError, match="a/1.jpg .*list.txt:1"):
        src[0]
    (tmp_path / "folder" / "empty").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="empty identity folder"):
        sources.read_folder(tmp_path / "folder")


def test_corrupt_and_truncated_jpegs_are_named():
    with pytest.raises(CorruptImageError, match="x.jpg: cannot decode"):
        decode_image(b"not a jpeg", what="x.jpg")
    truncated = _jpeg(0)[:200]
    with pytest.raises(CorruptImageError, match="y.jpg"):
        decode_image(truncated, what="y.jpg")


def test_bin_round_trip_and_refusal_of_anything_but_plain_values(tmp_path):
    images = [_jpeg(i) for i in range(4)]
    (tmp_path / "ok.bin").write_bytes(pickle.dumps((images, [True, False]), protocol=2))
    blobs, issame = binset.read_bin(tmp_path / "ok.bin")
    assert blobs == images and issame.tolist() == [True, False]
    (tmp_path / "odd.bin").write_bytes(pickle.dumps((images[:3], [True]), protocol=2))
    with pytest.raises(ValueError, match="odd image count 3"):
        binset.read_bin(tmp_path / "odd.bin")

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "evil.bin").write_bytes(pickle.dumps(([Payload()], [True])))
    with pytest.raises(binset.UnsafePickleError, match="refusing to load"):
        binset.read_bin(tmp_path / "evil.bin")
    assert not marker.exists()


class _Py2Dtype:
    """numpy's uint8 dtype as Python 2 pickled it (its strings are bytes to a Python 3 reader)."""

    def __reduce__(self):
        return np.dtype, (b"u1", False, True), (3, b"|", None, None, None, -1, -1, 0)


class _Py2Array:
    """A 1-d uint8 array as Python 2's numpy pickled it: an empty ndarray from _reconstruct, filled from bytes."""

    def __init__(self, data, dtype=None):
        self.data, self.dtype = data, dtype or _Py2Dtype()

    def __reduce__(self):
        reconstruct = np.ndarray.__reduce__(np.empty(0))[0]
        return reconstruct, (np.ndarray, (0,), b"b"), (1, (len(self.data),), self.dtype, False, self.data)


def test_a_bin_of_uint8_arrays_pickled_by_python_2_reads_as_by_python_3(tmp_path):
    """Each JPEG a numpy uint8 array pickled by Python 2 (protocol 2, numpy.core.multiarray, the dtype's strings as
    bytes to a Python 3 reader), and the same arrays pickled by Python 3."""
    images = [_jpeg(i) for i in range(4)]
    data = pickle.dumps(([_Py2Array(b) for b in images], [True, False]), protocol=2)
    (tmp_path / "small_lfw.bin").write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    blobs, issame = binset.read_bin(tmp_path / "small_lfw.bin")
    assert blobs == images and issame.tolist() == [True, False]
    (tmp_path / "py3.bin").write_bytes(pickle.dumps(([np.frombuffer(b, np.uint8) for b in images], [True, False])))
    assert binset.read_bin(tmp_path / "py3.bin")[0] == images  # other arrays: tests/data/test_binset_arrays.py


def test_pack_round_trips_a_list_source_and_skips_bad_images(tmp_path):
    (tmp_path / "a").mkdir()
    for i in range(3):
        (tmp_path / "a" / f"{i}.jpg").write_bytes(_jpeg(i))
    (tmp_path / "a" / "bad.jpg").write_bytes(b"garbage")
    (tmp_path / "list.txt").write_text("a/0.jpg x\na/bad.jpg x\na/1.jpg y\na/2.jpg y\n")
    summary = pack.pack(str(tmp_path / "list.txt"), tmp_path / "packed", images_per_shard=2, verbose=False)
    assert summary["num_images"] == 3 and len(summary["bad_files"]) == 1 and "bad.jpg" in summary["bad_files"][0]
    src = sources.open_source(tmp_path / "packed")
    assert len(src) == 3 and src.num_classes == 2 and len(list((tmp_path / "packed").glob("*.array_record"))) == 2
    assert [src[i][1] for i in range(3)] == [0, 1, 1]
    assert src[2][0] == (tmp_path / "a" / "2.jpg").read_bytes()


def _write_ijb(root, *, bad_pair=False):
    meta = root / "meta"
    meta.mkdir(parents=True)
    rows = [("1.jpg", 10, 100), ("2.jpg", 10, 101), ("3.jpg", 11, 102)]
    (meta / "ijbb_name_5pts_score.txt").write_text(
        "".join(f"{n} " + " ".join(str(float(v)) for v in range(10)) + " 0.9\n" for n, _, _ in rows))
    (meta / "ijbb_face_tid_mid.txt").write_text("".join(f"{n} {t} {m}\n" for n, t, m in rows))
    (meta / "ijbb_template_pair_label.txt").write_text("10 11 0\n" + ("10 99 1\n" if bad_pair else "11 10 0\n"))
    (meta / "ijbb_1N_gallery_S1.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n10,1,a\n")
    (meta / "ijbb_1N_probe_mixed.csv").write_text("TEMPLATE_ID,SUBJECT_ID,FILENAME\n11,1,b\n")


def test_ijb_meta_is_read_and_cross_checked(tmp_path):
    _write_ijb(tmp_path / "ok")
    m = ijb_meta.read_ijb_meta(tmp_path / "ok", "IJBB")
    assert m.images == ["1.jpg", "2.jpg", "3.jpg"] and m.landmarks.shape == (3, 5, 2)
    assert m.templates.tolist() == [10, 10, 11] and m.pairs.tolist() == [[10, 11], [11, 10]]
    assert m.galleries["S1"][0].tolist() == [10] and m.probe[1].tolist() == [1]
    _write_ijb(tmp_path / "bad", bad_pair=True)
    with pytest.raises(ijb_meta.IJBMetaError, match="template_pair_label.txt:2: template 99 has no image"):
        ijb_meta.read_ijb_meta(tmp_path / "bad", "ijbb")


def test_alignment_recovers_a_known_similarity():
    from jsphere.data.landmark_align import ARCFACE_TEMPLATE, align_face, similarity_transform

    angle, scale, shift = 0.3, 1.7, np.array([20.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = ARCFACE_TEMPLATE @ rot.T + shift
    m = similarity_transform(landmarks, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(landmarks @ m[:, :2].T + m[:, 2], ARCFACE_TEMPLATE, atol=1e-9)
    big = cv2.warpAffine(np.full((112, 112, 3), 200, np.uint8), np.hstack([rot, shift[:, None]]), (300, 300))
    aligned = align_face(big, landmarks)
    assert aligned.shape == (112, 112, 3) and aligned[56, 56, 0] == 200
