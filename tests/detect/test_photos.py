"""In-memory images of every kind reach the detector as 8-bit RGB, and large photos are searched downscaled
with the boxes and landmarks mapped back to the photo's pixels."""

import numpy as np
import pytest
from PIL import Image

from converters.mtcnn_weights import mtcnn_import
from jsphere.detect import Detector, DetectorConfig, weights
from jsphere.detect.photos import PhotoError, to_rgb8
from tests.detect import fixtures


def test_gray_rgba_16_bit_and_float_images_become_rgb8():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
    np.testing.assert_array_equal(to_rgb8(rgb[:, :, 0]), np.repeat(rgb[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(to_rgb8(np.dstack([rgb, np.zeros((5, 7), np.uint8)])), rgb)
    np.testing.assert_array_equal(to_rgb8(rgb.astype(np.uint16) * 257), rgb)
    np.testing.assert_array_equal(to_rgb8(rgb.astype(np.float32)), rgb)
    with pytest.raises(PhotoError, match="finite"):
        to_rgb8(np.full((4, 4, 3), np.nan))
    with pytest.raises(PhotoError, match=r"shape \(4, 4, 2\)"):
        to_rgb8(np.zeros((4, 4, 2), np.uint8))


def test_large_photos_are_searched_downscaled_and_mapped_back(tmp_path):
    params, _ = mtcnn_import.convert(fixtures.write_npy(fixtures.opensphere_nets(seed=3), tmp_path / "npy"))
    model = weights.to_model(params)
    photo = fixtures.photo(np.random.default_rng(2), (240, 300), faces=2)
    small = np.asarray(Image.fromarray(photo).resize((150, 120), Image.BILINEAR))
    on_small = Detector(model).detect(small)
    assert len(on_small.boxes), "the random detector should find something on this photo"
    got = Detector(model, DetectorConfig(max_side=150))(photo)
    np.testing.assert_allclose(got.boxes, (on_small.boxes + 0.5) * 2 - 0.5, atol=1e-4)
    np.testing.assert_allclose(got.landmarks, (on_small.landmarks + 0.5) * 2 - 0.5, atol=1e-4)
    np.testing.assert_array_equal(got.scores, on_small.scores)
    gray = Detector(model)(photo[:, :, 1])
    rgb = Detector(model)(np.repeat(photo[:, :, 1:2], 3, axis=2))
    np.testing.assert_array_equal(gray.boxes, rgb.boxes)
