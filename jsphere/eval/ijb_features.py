"""Image features of an IJB-B/C set: read the loose crops, align them with the meta landmarks, embed (flip)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from jsphere import observe
from jsphere.data.decode import decode_image
from jsphere.data.ijb_meta import IJBMeta
from jsphere.data.landmark_align import align_face


def _aligned(meta: IJBMeta, i: int) -> np.ndarray:
    path = meta.image_dir / meta.images[i]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileNotFoundError(f"IJB image {path} (row {i + 1} of the meta files): {e.strerror}") from None
    return align_face(decode_image(data, what=str(path)), meta.landmarks[i])


def ijb_image_features(embedder, meta: IJBMeta, eval_cfg, chunk: int = 2048) -> np.ndarray:
    """Per-image features [N, D] of an IJB set: crops read, aligned with the meta landmarks and embedded."""
    feats = np.empty((len(meta.images), embedder.embed_dim), np.float32)
    bar = observe.ImageProgress(len(meta.images), "of IJB read, aligned and embedded",
                                enabled=getattr(embedder, "progress", False))
    with ThreadPoolExecutor(max_workers=4) as pool, bar:
        for start in range(0, len(meta.images), chunk):
            idx = range(start, min(start + chunk, len(meta.images)))
            batch = np.stack(list(pool.map(lambda i: _aligned(meta, i), idx)))
            feats[start:start + len(batch)] = embedder.embed(batch, flip=eval_cfg.get("flip", "sum"),
                                                             batch_size=eval_cfg.get("batch_size"), progress=False)
            bar.advance(len(batch))
    return feats
