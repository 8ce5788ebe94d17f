"""``align_face(style='opensphere')`` against an independent formulation of OpenSphere's ``warp_and_crop_face``.

OpenSphere's ``get_similarity_transform_for_cv2`` (MATLAB ``cp2tform`` 'similarity') fits, by linear least
squares, the similarity that maps the *template* onto the *image* landmarks, and inverts it; it also fits the
template mirrored in x and keeps that (composed with the mirror) when its image of the landmarks is closer to
the mirrored template (its ``xyR = xy`` aliasing makes both distances use the mirrored template). Here the same
fits are Umeyama's closed form (SVD; the least-squares proper similarity, which is what the 4-parameter linear
fit spans) from template to landmarks, inverted — another computation of the same matrices. Both sides use
float32 landmarks and template as OpenSphere does; matrices agree to 1e-9 and the crops (``cv2.warpAffine``,
bilinear, border 0, the same in both) to one grey level.
"""

import cv2
import numpy as np
import pytest

from jsphere.data.landmark_align import (
    ARCFACE_TEMPLATE,
    align_face,
    cp2tform_similarity,
    opensphere_points,
    similarity_transform,
)

# OpenSphere's face_alignment/mtcnn_pytorch/src/align_trans.py REFERENCE_FACIAL_POINTS (96x112)
SPHEREFACE_96x112 = [[30.29459953, 51.69630051], [65.53179932, 51.50139999], [48.02519989, 71.73660278],
                     [33.54930115, 92.3655014], [62.72990036, 92.20410156]]


def _reference_matrix(landmarks, template) -> tuple[np.ndarray, bool]:
    src = np.float32(landmarks).astype(np.float64)
    dst = np.float32(template).astype(np.float64)
    mirror = np.diag([-1.0, 1.0])
    mirrored = dst @ mirror

    def forward(template_points):  # image <- template fit (Umeyama), inverted to template <- image
        m = np.vstack([similarity_transform(template_points, src), [0, 0, 1]])
        return np.linalg.inv(m)[:2]

    direct = forward(dst)
    reflected = mirror @ forward(mirrored)
    dist = [np.linalg.norm(src @ m[:, :2].T + m[:, 2] - mirrored) for m in (direct, reflected)]
    return (direct, False) if dist[0] <= dist[1] else (reflected, True)


def _landmarks(rng, template, mirrored=False):
    angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(0.8, 2.5)
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = (template - template.mean(0)) @ rot.T + rng.uniform(80, 160, 2) + rng.normal(0, 3, template.shape)
    return pts * [-1, 1] + [300, 0] if mirrored else pts  # left and right swapped: the reflective fit wins


@pytest.mark.parametrize("crop", [(112, 112), (96, 112)])
def test_crops_equal_opensphere_warp_and_crop_face(crop):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (260, 320, 3), np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 2)  # smooth, like a photo: bilinear rounding is then what differs
    template = opensphere_points(crop)
    branches = set()
    for i in range(12):
        lm = _landmarks(rng, template, mirrored=i % 3 == 2)
        m_ref, reflected = _reference_matrix(lm, template)
        branches.add(reflected)
        np.testing.assert_allclose(cp2tform_similarity(lm, template), m_ref, atol=1e-9)
        got = align_face(image, lm, crop, style="opensphere")
        ref = cv2.warpAffine(image, m_ref, crop, flags=cv2.INTER_LINEAR, borderValue=0)
        assert got.shape == (crop[1], crop[0], 3)
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert branches == {False, True}, "both of cp2tform's fits should have been chosen at least once"


def test_reference_points_are_opensphere_s():
    np.testing.assert_allclose(opensphere_points((96, 112)), SPHEREFACE_96x112)
    np.testing.assert_allclose(opensphere_points((112, 112)), np.add(SPHEREFACE_96x112, [8, 0]))
    np.testing.assert_allclose(opensphere_points((112, 112)), ARCFACE_TEMPLATE, atol=1e-6)
    with pytest.raises(ValueError, match="112x112 or 96x112"):
        opensphere_points((128, 128))


def test_the_arcface_path_is_unchanged_and_styles_are_checked():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (200, 200, 3), np.uint8)
    lm = _landmarks(rng, ARCFACE_TEMPLATE)
    expected = cv2.warpAffine(image, similarity_transform(lm, ARCFACE_TEMPLATE), (112, 112), borderValue=0)
    np.testing.assert_array_equal(align_face(image, lm), expected)
    with pytest.raises(ValueError, match="style 'dlib'"):
        align_face(image, lm, style="dlib")
    with pytest.raises(ValueError, match="degenerate landmarks"):
        align_face(image, np.full((5, 2), 50.0), style="opensphere")
