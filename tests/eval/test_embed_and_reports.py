"""The embed CLI and ``--mode=eval`` reports on a tiny checkpoint and the synthetic images."""

import json
import pickle

import cv2
import numpy as np
import pytest
from flax import nnx

from configs.test.common import eval_config
from jsphere import checkpoint, embed, models
from jsphere.eval.run import evaluate
from jsphere.inference import Embedder


def _save_model(workdir, step, seed):
    model = models.build("sfnet4", embed_dim=8, rngs=nnx.Rngs(seed))
    checkpoint.save_weights(workdir, step=step, backbone=models.pure_state(model), head=None,
                            meta={"model": {"name": "sfnet4", "embed_dim": 8, "kwargs": {}}})
    return model


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ckpt")
    _save_model(workdir, 1, 0)
    _save_model(workdir, 2, 1)
    return workdir


def _val_images(data):
    return sorted(str(p) for p in (data / "val").rglob("*.jpg"))[:6]


def test_embed_cli_matches_the_in_process_model_for_folder_list_and_npy(tmp_path, ckpt, synthetic_data):
    files = _val_images(synthetic_data)
    (tmp_path / "list.txt").write_text("\n".join(files) + "\n")
    images = np.stack([cv2.imread(f)[:, :, ::-1] for f in files])
    np.save(tmp_path / "images.npy", images)
    expected = Embedder.from_checkpoint(ckpt).embed(images)
    for source in (tmp_path / "list.txt", tmp_path / "images.npy"):
        assert embed.main(["--ckpt", str(ckpt), "--input", str(source), "--output", str(tmp_path / "f.npy"),
                           "--overwrite"]) == 0
        got = np.load(tmp_path / "f.npy")
        assert got.shape == (6, 8) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    embed.main(["--ckpt", str(ckpt), "--input", str(synthetic_data / "val"), "--output", str(tmp_path / "g.npy"),
                "--flip", "none", "--step", "1"])
    assert np.load(tmp_path / "g.npy").shape[0] == len(list((synthetic_data / "val").rglob("*.jpg")))


def test_unaligned_images_need_landmarks_and_are_aligned_with_them(tmp_path, ckpt):
    from jsphere.data.landmark_align import ARCFACE_TEMPLATE

    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), np.full((200, 150, 3), 128, np.uint8))
    (tmp_path / "list.txt").write_text(f"{photo}\n")
    with pytest.raises(ValueError, match="photo.jpg: image is 150x200, expected an aligned 112x112"):
        embed.main(["--ckpt", str(ckpt), "--input", str(tmp_path / "list.txt"), "--output", str(tmp_path / "o.npy")])
    (tmp_path / "lm.txt").write_text("photo.jpg " + " ".join(f"{v:.3f}" for v in (ARCFACE_TEMPLATE + 20).ravel()))
    embed.main(["--ckpt", str(ckpt), "--input", str(tmp_path / "list.txt"), "--output", str(tmp_path / "o.npy"),
                "--landmarks", str(tmp_path / "lm.txt")])
    assert np.load(tmp_path / "o.npy").shape == (1, 8)


def test_checkpoint_without_weights_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints" / "3" / "meta").mkdir(parents=True)
    with pytest.raises(ValueError, match="checkpoints/3: the checkpoint does not read back \\(its 'weights' item"):
        Embedder.from_checkpoint(tmp_path)


def test_eval_mode_writes_tables_json_and_roc_for_the_last_k_checkpoints(tmp_path, ckpt, synthetic_data):
    images = sorted((synthetic_data / "val").rglob("*.jpg"))[:8]
    blobs = [p.read_bytes() for p in images]
    (tmp_path / "set.bin").write_bytes(pickle.dumps((blobs, [True, False, True, False]), protocol=2))
    config = eval_config(dict(name="syn", type="pairs", path=str(synthetic_data / "val_pairs.txt"),
                              data_dir=str(synthetic_data)),
                         dict(name="syn_bin", type="bin", path=str(tmp_path / "set.bin")), batch_size=16)
    config.eval.last_k = 2
    results = evaluate(config, str(ckpt))
    assert set(results["syn"]) == {"step 1", "step 2", "avg"}
    for key in ("ACC", "EER", "AUC", "std_acc", "TPR@FPR=0.001"):
        assert 0 <= results["syn"]["avg"][key] <= 100
    for name in ("syn", "syn_bin"):
        assert json.loads((ckpt / "eval" / f"{name}.json").read_text())
        assert "OpenSphere protocol" in (ckpt / "eval" / f"{name}.txt").read_text()
        assert (ckpt / "eval" / f"{name}_roc.png").stat().st_size > 1000


def test_pair_list_naming_a_missing_image_is_reported_with_its_line(tmp_path, ckpt, synthetic_data):
    (tmp_path / "pairs.txt").write_text("1 val/a.jpg val/b.jpg\n")
    config = eval_config(dict(name="bad", type="pairs", path=str(tmp_path / "pairs.txt"), data_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="pairs.txt:1: image .*val/a.jpg does not exist"):
        evaluate(config, str(ckpt))


def test_ijb_evaluation_on_a_tiny_layout_written_by_the_test(tmp_path, ckpt, synthetic_data):
    """Loose crops (aligned faces shifted on a bigger canvas), landmarks, templates, pairs and 1:N lists."""
    from jsphere.data.landmark_align import ARCFACE_TEMPLATE

    root = tmp_path / "IJB-B"
    (root / "loose_crop").mkdir(parents=True)
    (root / "meta").mkdir()
    faces = sorted((synthetic_data / "val").rglob("*.jpg"))[:8]  # 2 identities x 4 images
    lmk, tid = [], []
    for i, face in enumerate(faces):
        canvas = np.zeros((160, 150, 3), np.uint8)
        canvas[20:132, 30:142] = cv2.imread(str(face))
        cv2.imwrite(str(root / "loose_crop" / f"{i}.jpg"), canvas)
        points = ARCFACE_TEMPLATE + [30, 20]
        lmk.append(f"{i}.jpg " + " ".join(f"{v:.4f}" for v in points.ravel()) + " 0.9")
        tid.append(f"{i}.jpg {i // 2} {i}")  # templates 0..3 of two images each; identity = i // 4
    (root / "meta" / "ijbb_name_5pts_score.txt").write_text("\n".join(lmk) + "\n")
    (root / "meta" / "ijbb_face_tid_mid.txt").write_text("\n".join(tid) + "\n")
    (root / "meta" / "ijbb_template_pair_label.txt").write_text("0 1 1\n2 3 1\n0 2 0\n1 3 0\n")
    (root / "meta" / "ijbb_1N_gallery_S1.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n0,10\n")
    (root / "meta" / "ijbb_1N_gallery_S2.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n2,20\n")
    (root / "meta" / "ijbb_1N_probe_mixed.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n1,10\n3,20\n")
    config = eval_config(dict(name="IJB-B", type="ijb", ijb="ijbb", path=str(root), pooling="opensphere_v1"))
    rows = evaluate(config, str(ckpt))["IJB-B"]["step 2"]
    assert {"TAR@FAR=0.0001 (interp)", "TAR@FAR=0.0001 (nearest)", "1:N opensphere top1", "1:N standard top1",
            "1:N standard TPIR@FPIR=0.01"} <= set(rows)
    assert all(0 <= v <= 100 for v in rows.values())
