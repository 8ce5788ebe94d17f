"""``jsphere.embed --detect``: raw photos in, the embedding of each photo's largest face (or of every face with
``--all``) out, in input order, with the faces table naming each row's photo, box and landmarks."""

import cv2
import numpy as np
import pytest
from flax import nnx

from converters.mtcnn_weights import mtcnn_import
from jsphere import checkpoint, embed, errors, models
from jsphere.data.landmark_align import align_face
from jsphere.detect import Detector, weights
from jsphere.inference import Embedder
from tests.detect import fixtures


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed_detect")
    params, _ = mtcnn_import.convert(fixtures.write_npy(fixtures.opensphere_nets(seed=3), root / "npy"))
    weights.save(params, root / "mtcnn")
    model = models.build("sfnet4", embed_dim=8, rngs=nnx.Rngs(0))
    checkpoint.save_weights(root / "model", step=1, backbone=models.pure_state(model), head=None,
                            meta={"model": {"name": "sfnet4", "embed_dim": 8, "kwargs": {}}})
    rng = np.random.default_rng(11)
    photos = root / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"{i}.jpg"), fixtures.photo(rng, (120, 150))[:, :, ::-1])
    cv2.imwrite(str(photos / "3_blank.jpg"), np.full((120, 150, 3), 128, np.uint8))
    (photos / "4_text.jpg").write_text("hello")
    return root


def _run(setup, out, *extra):
    return embed.main(["--ckpt", str(setup / "model"), "--input", str(setup / "photos"), "--output", str(out),
                       "--detect", "--detector", str(setup / "mtcnn"), "--flip", "none", *extra])


def test_largest_face_per_photo_in_input_order_nan_without_a_face(setup, tmp_path, capsys):
    assert _run(setup, tmp_path / "f.npy") == 0
    feats = np.load(tmp_path / "f.npy")
    assert feats.shape == (5, 8)
    detector = Detector.from_checkpoint(setup / "mtcnn")
    files = sorted((setup / "photos").glob("*.jpg"))
    expected_rows, faces = [], []
    for i, f in enumerate(files[:3]):
        image = cv2.imread(str(f))[:, :, ::-1]
        det = detector(image)
        if len(det.boxes):
            faces.append(align_face(image, det.landmarks[det.largest()], style="opensphere"))
            expected_rows.append(i)
    assert expected_rows, "the random detector should find a face in one of the photos"
    expected = Embedder.from_checkpoint(setup / "model").embed(np.stack(faces), flip="none")
    np.testing.assert_allclose(feats[expected_rows], expected, rtol=1e-5, atol=1e-5)
    assert np.isnan(feats[[r for r in range(5) if r not in expected_rows]]).all()
    table = (tmp_path / "f.npy.faces.tsv").read_text().splitlines()
    assert table[0].startswith("row\tphoto\tface\tscore\tx1") and len(table) == 6
    assert "3_blank.jpg\t-\tno face" in table[4] and "4_text.jpg\t-\tnot an image" in table[5]
    assert "no face: " in capsys.readouterr().err


def test_all_faces_one_row_each_with_boxes(setup, tmp_path):
    assert _run(setup, tmp_path / "all.npy", "--all", "--faces", str(tmp_path / "faces.tsv")) == 0
    feats = np.load(tmp_path / "all.npy")
    rows = [line.split("\t") for line in (tmp_path / "faces.tsv").read_text().splitlines()[1:]]
    faces = [r for r in rows if r[0] != "-"]
    assert len(faces) == len(feats) > 1 and not np.isnan(feats).any()
    detector = Detector.from_checkpoint(setup / "mtcnn")
    first = faces[0]
    det = detector(cv2.imread(first[1])[:, :, ::-1])
    np.testing.assert_allclose([float(v) for v in first[4:8]], det.boxes[int(first[2])], atol=1e-3)


def test_detect_options_are_checked(setup, tmp_path):
    with pytest.raises(errors.UserError, match="--all and --faces go with --detect"):
        embed.main(["--ckpt", str(setup / "model"), "--input", str(setup / "photos"), "--output",
                    str(tmp_path / "x.npy"), "--all"])
    with pytest.raises(ValueError, match="--thresholds"):
        _run(setup, tmp_path / "y.npy", "--thresholds", "0.6", "0.7", "1.5")
