"""The alignment a model was trained with is part of its input convention: ``jsphere.embed --detect`` (and
``--landmarks``), ``jsphere.align --ckpt`` and ``Embedder.align`` crop faces the way the checkpoint records
(``meta['input']['alignment']``) unless ``--align-style`` says otherwise; a jsphere run records the alignment of its
training data (``config.data.alignment``, ``auto`` reading a ``train.rec`` or ``jsphere.align``'s ``align.json``).

Before: every ``--detect`` crop was OpenSphere's whatever the model (cosine 0.970 to insightface's own pipeline on
some photos for an arcface_torch release), and nothing recorded how a model's faces were aligned.
"""

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from flax import nnx

from configs import quickstart
from converters.mtcnn_weights import mtcnn_import
from jsphere import align, checkpoint, config_check, embed, models
from jsphere.checkpoint import train_items
from jsphere.data.landmark_align import STYLES, align_face
from jsphere.data.training_alignment import training_alignment
from jsphere.detect import Detector, weights
from jsphere.inference import Embedder
from jsphere.input_convention import ALIGNMENTS, JSPHERE
from tests.detect import fixtures


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("follows")
    params, _ = mtcnn_import.convert(fixtures.write_npy(fixtures.opensphere_nets(seed=3), root / "npy"))
    weights.save(params, root / "mtcnn")
    model = models.build("sfnet4", embed_dim=8, rngs=nnx.Rngs(0))
    for name, alignment in (("arcface_model", "arcface"), ("plain_model", None)):
        meta = {"model": {"name": "sfnet4", "embed_dim": 8, "kwargs": {}}}
        if alignment:
            meta["input"] = JSPHERE.with_alignment(alignment).to_meta()
        checkpoint.save_weights(root / name, step=1, backbone=models.pure_state(model), head=None, meta=meta)
    rng = np.random.default_rng(11)
    (root / "photos" / "id0").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / "photos" / "id0" / f"{i}.jpg"), fixtures.photo(rng, (120, 150))[:, :, ::-1])
    detector = Detector.from_checkpoint(root / "mtcnn")
    found = {}
    for f in sorted((root / "photos" / "id0").glob("*.jpg")):
        image = cv2.imread(str(f))[:, :, ::-1].copy()
        det = detector(image)
        if len(det.boxes):
            found[f.name] = (image, det.landmarks[det.largest()])
    assert found, "the random detector should find a face in one of the photos"
    return root, found


def _crops(found, style):
    return np.stack([align_face(image, landmarks, style=style) for image, landmarks in found.values()])


def test_the_styles_are_the_conventions_alignments():
    assert STYLES == ALIGNMENTS


@pytest.mark.parametrize(("model", "extra", "style", "why"), [
    ("arcface_model", [], "arcface", "as the checkpoint records"),
    ("arcface_model", ["--align-style", "opensphere"], "opensphere", "--align-style"),
    ("plain_model", [], "opensphere", "the checkpoint records no alignment"),
])
def test_embed_detect_aligns_as_the_checkpoint_records(setup, tmp_path, capsys, model, extra, style, why):
    root, found = setup
    assert not np.array_equal(_crops(found, "arcface"), _crops(found, "opensphere"))
    assert embed.main(["--ckpt", str(root / model), "--input", str(root / "photos"), "--output",
                       str(tmp_path / "f.npy"), "--detect", "--detector", str(root / "mtcnn"), "--flip", "none",
                       *extra]) == 0
    assert f"jsphere.embed: faces aligned {style}-style ({why}" in capsys.readouterr().err
    feats = np.load(tmp_path / "f.npy")
    embedder = Embedder.from_checkpoint(root / model)
    expected = embedder.embed(_crops(found, style), flip="none")
    rows = [i for i, name in enumerate(["0.jpg", "1.jpg", "2.jpg"]) if name in found]
    np.testing.assert_allclose(feats[rows], expected, rtol=1e-5, atol=1e-5)


def test_embed_landmarks_and_embedder_align_follow_the_checkpoint(setup, tmp_path):
    root, found = setup
    name, (image, landmarks) = next(iter(found.items()))
    embedder = Embedder.from_checkpoint(root / "arcface_model")
    assert embedder.alignment == "arcface" and Embedder.from_checkpoint(root / "plain_model").alignment is None
    np.testing.assert_array_equal(embedder.align(image, landmarks), align_face(image, landmarks, style="arcface"))
    np.testing.assert_array_equal(embedder.align(image, landmarks, style="opensphere"),
                                  align_face(image, landmarks, style="opensphere"))
    lines = [f"{root / 'photos' / 'id0' / name} " + " ".join(f"{v:.4f}" for v in landmarks.ravel())]
    (tmp_path / "lm.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "list.txt").write_text(f"{root / 'photos' / 'id0' / name}\n")
    assert embed.main(["--ckpt", str(root / "arcface_model"), "--input", str(tmp_path / "list.txt"), "--output",
                       str(tmp_path / "f.npy"), "--landmarks", str(tmp_path / "lm.txt"), "--align-style",
                       "opensphere", "--flip", "none"]) == 0
    rounded = np.array([float(v) for v in lines[0].split()[1:]]).reshape(5, 2)
    expected = embedder.embed(align_face(image, rounded, style="opensphere")[None], flip="none")
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), expected, rtol=1e-5, atol=1e-5)


def test_align_with_ckpt_crops_as_the_model_was_trained_and_records_it(setup, tmp_path, capsys):
    root, found = setup
    assert align.main(["--input", str(root / "photos"), "--output", str(tmp_path / "aligned"), "--detector",
                       str(root / "mtcnn"), "--ckpt", str(root / "arcface_model"), "--workers", "1"]) == 0
    assert "aligning faces arcface-style (as the checkpoint records" in capsys.readouterr().err
    assert json.loads((tmp_path / "aligned" / "align.json").read_text())["align_style"] == "arcface"
    name, (image, landmarks) = next(iter(found.items()))
    written = cv2.imread(str(tmp_path / "aligned" / "id0" / name))[:, :, ::-1]
    assert np.abs(written.astype(int) - align_face(image, landmarks, style="arcface")).mean() < 3  # JPEG q95
    # a run trained on the folder records its alignment
    assert training_alignment(str(tmp_path / "aligned"), "auto") == "arcface"


def test_a_run_records_the_alignment_of_its_data(tmp_path):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "train.rec").write_bytes(b"")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "align.json").write_text(json.dumps({"align_style": "opensphere"}))
    assert training_alignment(str(tmp_path / "rec"), "auto") == "arcface"
    assert training_alignment(str(tmp_path / "rec" / "train.rec"), "auto") == "arcface"
    assert training_alignment(str(tmp_path / "lists" / "train.txt"), "auto") == "opensphere"
    assert training_alignment(str(tmp_path / "elsewhere"), "auto") is None
    assert training_alignment(str(tmp_path / "rec"), "opensphere") == "opensphere"
    assert training_alignment(str(tmp_path / "rec"), "unknown") is None
    config = quickstart.get_config()
    config.data.source = str(tmp_path / "rec")
    setup = SimpleNamespace(head=SimpleNamespace(project_centres=True, init_std=None), num_classes=3,
                            trainer=SimpleNamespace(eval_weights=None))
    assert train_items.model_meta(config, setup)["input"] == JSPHERE.with_alignment("arcface").to_meta()
    config.data.alignment = "unknown"
    assert "input" not in train_items.model_meta(config, setup)
    config.data.alignment = "dlib"
    with pytest.raises(ValueError, match="config.data.alignment"):
        config_check.check_values(config)
