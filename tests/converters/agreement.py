"""The converter tests' criterion for two frameworks embedding the same faces alike."""

import numpy as np


def agree(a, b):
    """min cosine >= 0.99999 and max |Δ| <= 1e-4 relative to the embedding scale (float32, different orders of
    summation in XLA, oneDNN and onnxruntime)."""
    cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    scale = max(float(np.abs(b).max()), 1.0)
    assert cos.min() >= 0.99999 and np.abs(a - b).max() <= 1e-4 * scale, (cos.min(), np.abs(a - b).max(), scale)
