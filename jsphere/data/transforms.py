"""Per-image transforms on uint8 HWC RGB arrays (numpy/OpenCV only), each taking an explicit RNG.

* ``flip``: horizontal flip with probability p (OpenSphere / insightface default 0.5).
* ``augment_opensphere_v2``: OpenSphere v2's Augmenter (AdaFace recipe): crop-and-paste at the same place on a
  black canvas (RandomResizedCrop parameters, scale (0.2, 1), ratio (3/4, 4/3)), low resolution (resize to
  U(0.2, 1) x 112 and back, each with a random interpolation), photometric (brightness, contrast,
  saturation 0.5 in random order).
* ``normalize``: ``(x - 127.5) / 127.5`` to float32 in [-1, 1].
"""

from __future__ import annotations

import math

import cv2
import numpy as np

INTERPOLATIONS = (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4)


def flip(image: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    return image[:, ::-1] if p > 0 and rng.random() < p else image


def normalize(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) - 127.5) / 127.5


def _crop_params(h: int, w: int, rng: np.random.Generator, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params: 10 tries, then the central crop."""
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    return 0, 0, h, w


def crop_paste(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    top, left, ch, cw = _crop_params(*image.shape[:2], rng)
    out = np.zeros_like(image)
    out[top:top + ch, left:left + cw] = image[top:top + ch, left:left + cw]
    return out


def low_resolution(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    side = max(int(rng.uniform(0.2, 1.0) * h), 1)
    small = cv2.resize(image, (side, side), interpolation=INTERPOLATIONS[rng.integers(len(INTERPOLATIONS))])
    return cv2.resize(small, (w, h), interpolation=INTERPOLATIONS[rng.integers(len(INTERPOLATIONS))])


def photometric(image: np.ndarray, rng: np.random.Generator, strength: float = 0.5) -> np.ndarray:
    """ColorJitter(brightness, contrast, saturation = strength, hue = 0), the three in random order."""
    img = image.astype(np.float32)
    for op in rng.permutation(3):
        factor = rng.uniform(max(0.0, 1 - strength), 1 + strength)
        if op == 0:
            img = img * factor
        elif op == 1:
            gray_mean = np.mean(img @ np.array([0.299, 0.587, 0.114], np.float32))
            img = (img - gray_mean) * factor + gray_mean
        else:
            gray = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            img = (img - gray) * factor + gray
        img = np.clip(img, 0, 255)
    return img.astype(np.uint8)


def augment_opensphere_v2(image: np.ndarray, rng: np.random.Generator, *, crop_prob: float = 0.0,
                          lowres_prob: float = 0.0, photo_prob: float = 0.0) -> np.ndarray:
    if crop_prob > 0 and rng.random() < crop_prob:
        image = crop_paste(image, rng)
    if lowres_prob > 0 and rng.random() < lowres_prob:
        image = low_resolution(image, rng)
    if photo_prob > 0 and rng.random() < photo_prob:
        image = photometric(image, rng)
    return image
