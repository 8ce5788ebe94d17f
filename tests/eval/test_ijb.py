"""IJB template pooling, TAR@FAR (both readings) and 1:N on a tiny synthetic layout."""

import numpy as np
import pytest

from jsphere.eval import ijb


def test_media_are_averaged_then_summed_per_template_with_faceness_weights():
    feats = np.array([[1.0, 0], [3.0, 0], [0, 2.0], [0, 1.0]])
    templates = np.array([7, 7, 7, 9])
    medias = np.array([1, 1, 2, 3])
    faceness = np.array([1.0, 1.0, 0.5, 1.0])
    ids, pooled = ijb.template_features(feats, templates, medias, faceness, "insightface")
    # template 7: media 1 mean (2, 0) + media 2 (0, 1) -> normalised (2, 1)/sqrt(5)
    assert ids.tolist() == [7, 9]
    np.testing.assert_allclose(pooled[0], np.array([2.0, 1.0]) / np.sqrt(5))
    _, v2 = ijb.template_features(feats, templates, medias, faceness, "opensphere_v2")
    np.testing.assert_allclose(v2[0], np.array([2.0, 2.0]) / np.sqrt(8))


def test_tar_at_far_interpolated_and_nearest():
    labels = np.array([1, 0, 1, 0, 0, 1, 0, 1] + [0] * 6, bool)
    scores = np.array([0.9, 0.85, 0.8, 0.5, 0.4, 0.35, 0.3, 0.2] + [0.1] * 6)
    out = ijb.tar_at_far(scores, labels, fars=(0.2, 0.35))
    # ROC vertices: (.1,.25) (.1,.5) (.3,.5) (.3,.75) (.4,.75) (.4,1) ...
    assert out["TAR@FAR=0.2 (interp)"] == pytest.approx(50.0)
    assert out["TAR@FAR=0.35 (interp)"] == pytest.approx(75.0)
    assert out["TAR@FAR=0.2 (nearest)"] == pytest.approx(75.0)  # nearest FAR point is .3; its higher TAR


def test_identification_both_protocols_on_a_clear_case():
    eye = np.eye(4)
    ids = np.array([1, 2, 3, 10, 11, 12])
    feats = np.stack([eye[0], eye[1], eye[2], eye[0] + 0.1 * eye[3], eye[3], eye[2] + 0.2 * eye[1]])
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    galleries = {"S1": (np.array([1, 2]), np.array([100, 200])), "S2": (np.array([3]), np.array([300]))}
    probe = (np.array([10, 11, 12]), np.array([100, 400, 300]))  # subject 400 is enrolled nowhere
    opensphere = ijb.identification(ids, feats, galleries, probe, "opensphere")
    assert opensphere["top1"] == pytest.approx(200 / 3)  # merged gallery: 2 of 3 probes found at rank 1
    standard = ijb.identification(ids, feats, galleries, probe, "standard")
    assert standard["top1"] == pytest.approx(100.0)  # each gallery: its one mated probe at rank 1
    assert 0 <= standard["TPIR@FPIR=0.1"] <= 100


def test_unknown_template_in_pairs_is_named():
    ids, feats = np.array([1, 2]), np.eye(2)
    with pytest.raises(ValueError, match="template 5 has no images"):
        ijb.verification_scores(ids, feats, np.array([[1, 5]]))
