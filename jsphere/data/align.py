"""5-point face alignment to the 112x112 ArcFace template (insightface ``norm_crop``; OpenSphere IJB).

A 4-DoF similarity (rotation, uniform scale, translation) estimated by Umeyama's least squares — what
``skimage.transform.SimilarityTransform.estimate`` computes — maps the landmarks (left eye, right eye, nose
tip, left mouth corner, right mouth corner) onto the template; ``cv2.warpAffine`` (bilinear, border 0) crops.
"""

from __future__ import annotations

import cv2
import numpy as np

ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                             [70.7299, 92.2041]], np.float64)


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


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Aligned uint8 [size, size, 3] crop of ``image`` (uint8 HWC) given its 5 landmarks [5, 2] (x, y)."""
    landmarks = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if landmarks.shape != (5, 2):
        raise ValueError(f"expected 5 (x, y) landmarks, got an array of shape {landmarks.shape}")
    m = similarity_transform(landmarks, ARCFACE_TEMPLATE * size / 112.0)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
