"""5-point face alignment: one function, ``align_face``, for both templates jsphere meets.

* ``style="arcface"`` (default; insightface ``norm_crop``, OpenSphere's IJB evaluation): a 4-DoF similarity
  estimated by Umeyama's least squares (what ``skimage.transform.SimilarityTransform.estimate`` computes) maps the
  landmarks onto the ArcFace 112x112 template (scaled to ``size``).
* ``style="opensphere"`` (OpenSphere's ``face_alignment``, ``warp_and_crop_face`` after its MTCNN): the reference
  points of SphereFace's 96x112 crop, or for 112x112 its ``default_square`` variant (shifted 8 px right, which
  equals the ArcFace template), and MATLAB ``cp2tform``'s 'similarity' estimate as OpenSphere's
  ``matlab_cp2tform.py`` computes it: a least-squares fit of the inverse map (template -> image, residuals in
  image pixels), tried also with the template mirrored, the mirrored fit taken when it is closer — both fits
  measured against the mirrored template, as OpenSphere's code does (its ``xyR = xy`` mirrors ``xy`` in place).
  Points are float32 as OpenSphere passes them.

Both crop with ``cv2.warpAffine`` (bilinear, constant border 0). Landmarks are (x, y) of the left eye, right eye,
nose tip, left and right mouth corners.
"""

from __future__ import annotations

import cv2
import numpy as np

ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                             [70.7299, 92.2041]], np.float64)
# SphereFace's 96x112 reference points (OpenSphere's REFERENCE_FACIAL_POINTS)
OPENSPHERE_96x112 = np.array([[30.29459953, 51.69630051], [65.53179932, 51.50139999], [48.02519989, 71.73660278],
                              [33.54930115, 92.3655014], [62.72990036, 92.20410156]], np.float64)
STYLES = ("arcface", "opensphere")


def opensphere_points(crop: tuple[int, int] = (112, 112)) -> np.ndarray:
    """OpenSphere's reference points for a (width, height) crop of 96x112 or (``default_square``) 112x112."""
    if tuple(crop) == (96, 112):
        return OPENSPHERE_96x112.copy()
    if tuple(crop) == (112, 112):
        return OPENSPHERE_96x112 + np.array([8.0, 0.0])
    raise ValueError(f"OpenSphere's alignment crops 112x112 or 96x112 faces, not {crop[0]}x{crop[1]}")


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix minimising ||M [src; 1] - dst||^2 (Umeyama 1991, with scaling)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"landmarks must be [n >= 2, 2] arrays of equal shape, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(cov) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (sigma * sign).sum() / s.var(0).sum()
    m = np.empty((2, 3))
    m[:, :2] = scale * rotation
    m[:, 2] = mu_d - scale * rotation @ mu_s
    return m


def _inverse_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """cp2tform's non-reflective similarity: solve [u, v] = (sc, ss, tx, ty) applied to [x, y] in least squares
    over the image points (u, v) = src, the template points (x, y) = dst, and return the 3x3 row-vector matrix T
    of the forward map ([x, y, 1] = [u, v, 1] T)."""
    x, y = dst[:, 0], dst[:, 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    a = np.vstack([np.column_stack([x, y, one, zero]), np.column_stack([y, -x, zero, one])])
    b = np.concatenate([src[:, 0], src[:, 1]])
    if np.linalg.matrix_rank(a) < 4:
        raise ValueError("degenerate template: a similarity needs two distinct points")
    sc, ss, tx, ty = np.linalg.lstsq(a, b, rcond=None)[0]
    if sc * sc + ss * ss < 1e-12:
        raise ValueError("degenerate landmarks: the points coincide, no similarity maps them onto the template")
    t = np.linalg.inv(np.array([[sc, -ss, 0.0], [ss, sc, 0.0], [tx, ty, 1.0]]))
    t[:, 2] = (0.0, 0.0, 1.0)
    return t


def cp2tform_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 matrix OpenSphere's ``get_similarity_transform_for_cv2(src, dst)`` gives (module docstring)."""
    src = np.asarray(src, np.float32).astype(np.float64)
    dst = np.asarray(dst, np.float32).astype(np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 3:
        raise ValueError(f"landmarks must be [n >= 3, 2] arrays of equal shape, got {src.shape} and {dst.shape}")
    mirrored = dst * np.array([-1.0, 1.0])
    direct = _inverse_fit(src, dst)
    reflected = _inverse_fit(src, mirrored) @ np.diag([-1.0, 1.0, 1.0])
    src1 = np.column_stack([src, np.ones(len(src))])

    def distance(t: np.ndarray) -> float:
        return float(np.linalg.norm((src1 @ t)[:, :2] - mirrored))

    t = direct if distance(direct) <= distance(reflected) else reflected
    return t[:, 0:2].T


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int | tuple[int, int] = 112, *,
               style: str = "arcface") -> np.ndarray:
    """Aligned uint8 crop of ``image`` (uint8 HWC) given its 5 landmarks [5, 2] (x, y). ``size``: the side of a
    square crop, or (width, height); ``style``: the template and estimate (module docstring)."""
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if landmarks.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) landmarks, got an array of shape {landmarks.shape}")
    if not np.all(np.isfinite(landmarks)):
        raise ValueError("landmarks must be finite numbers")
    width, height = (size, size) if isinstance(size, int) else tuple(size)
    if style == "arcface":
        if width != height:
            raise ValueError(f"the ArcFace template is square; got a {width}x{height} crop")
        m = similarity_transform(landmarks, ARCFACE_TEMPLATE * width / 112.0)
    elif style == "opensphere":
        m = cp2tform_similarity(landmarks, opensphere_points((width, height)))
    else:
        raise ValueError(f"alignment style {style!r}: expected one of {STYLES}")
    return cv2.warpAffine(image, m, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
