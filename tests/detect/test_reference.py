"""jsphere's MTCNN against the PyTorch reference that follows OpenSphere's code path
(``converters.torch_reference.mtcnn``): same faces, same boxes, scores and landmarks, on photos with synthetic faces
and random weights.

Both sides run in float64 (the reference's networks in double, jsphere under ``jax.enable_x64``): the cascade
takes discrete decisions (thresholds, NMS order, boxes rounded to whole pixels between stages) on the networks'
outputs, and float32 rounding differences between two convolution libraries (~1e-7) could flip one of them on
some CPU; in float64 the outputs agree to ~1e-12, far from any decision, so the faces found must be the same and
the coordinates equal to 1e-6 px (which also covers IoU >= 0.99 and landmarks within 1 px by a wide margin).
"""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from converters.mtcnn_weights import mtcnn_import
from converters.torch_reference import mtcnn as torch_mtcnn
from jsphere.detect import Detector, DetectorConfig, weights
from tests.detect import fixtures


def _iou(a, b):
    w = np.maximum(0, np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1)
    h = np.maximum(0, np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1)
    area = lambda r: (r[:, 2] - r[:, 0] + 1) * (r[:, 3] - r[:, 1] + 1)  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


@pytest.mark.parametrize("mode", ["channel", "opensphere"])
def test_detections_equal_the_reference_cascade(tmp_path, mode):
    nets = fixtures.opensphere_nets(seed=3, pnet_softmax=mode)
    params, layout = mtcnn_import.convert(fixtures.write_npy(nets, tmp_path / "npy"))
    assert layout == "opensphere"
    weights.save(params, tmp_path / "ckpt")
    rng = np.random.default_rng(7)
    photos = [fixtures.photo(rng, (120, 150)), fixtures.photo(rng, (120, 150), faces=2),
              fixtures.photo(rng, (120, 150)), np.full((120, 150, 3), 128, np.uint8)]
    found = 0
    ref_nets = {k: copy.deepcopy(v).double() for k, v in nets.items()}
    with jax.enable_x64(True):
        detector = Detector.from_checkpoint(tmp_path / "ckpt", DetectorConfig(pnet_softmax=mode), dtype=jnp.float64)
        for photo in photos:
            ref_boxes, ref_marks = torch_mtcnn.detect_faces(Image.fromarray(photo), ref_nets, dtype=torch.float64)
            got = detector(photo)
            assert len(got.boxes) == len(ref_boxes), f"{len(got.boxes)} faces, the reference finds {len(ref_boxes)}"
            found += len(ref_boxes)
            if not len(ref_boxes):
                continue
            np.testing.assert_allclose(got.boxes, ref_boxes[:, 0:4], atol=1e-4)
            assert np.all(_iou(got.boxes.astype(np.float64), ref_boxes[:, 0:4]) >= 0.99)
            np.testing.assert_allclose(got.scores, ref_boxes[:, 4], atol=1e-6)
            ref_points = np.stack([ref_marks[:, 0:5], ref_marks[:, 5:10]], axis=-1)
            np.testing.assert_allclose(got.landmarks, ref_points, atol=1e-4)
    assert found >= 4, "the random weights should find a few faces, or the comparison compares nothing"


def test_pyramid_canvas_equals_pnet_on_each_scale_alone(tmp_path):
    """One P-Net call over the packed pyramid gives, for every scale, P-Net's map of that scale's image alone
    (odd sizes included: the ceil-mode pooling's partial window must not see the neighbouring level)."""
    from flax import nnx

    from jsphere.detect import pyramid

    params, _ = mtcnn_import.convert(fixtures.write_npy(fixtures.opensphere_nets(seed=1), tmp_path / "npy"))
    graphdef, state = nnx.split(weights.to_model(params).pnet)
    pnet = jax.jit(lambda x, mask=None: nnx.merge(graphdef, state)((x - 127.5) * 0.0078125, mask))
    image = fixtures.photo(np.random.default_rng(0), (91, 127))
    plan = pyramid.layout(91, 127, 40.0, 0.85)
    canvas, mask = pyramid.render(image, plan)
    assert len(plan.levels) > 4 and any(lv.width % 2 or lv.height % 2 for lv in plan.levels)
    both = np.concatenate(pnet(jnp.asarray(canvas, jnp.float32)[None], jnp.asarray(mask)[None]), axis=-1)[0]
    pil = Image.fromarray(image)
    for lv in plan.levels:
        alone = np.asarray(pil.resize((lv.width, lv.height), Image.BILINEAR), np.float32)
        # the same sums, in another order when the convolution's shape differs: float32 rounding only
        np.testing.assert_allclose(pyramid.level_maps(both, lv), np.concatenate(pnet(alone[None]), -1)[0], atol=2e-5)


def test_new_image_sizes_reuse_compiled_buckets(tmp_path):
    params, _ = mtcnn_import.convert(fixtures.write_npy(fixtures.opensphere_nets(seed=1), tmp_path / "npy"))
    detector = Detector(weights.to_model(params))
    rng = np.random.default_rng(0)
    sizes = [(120, 150), (121, 151), (118, 149), (123, 147), (119, 152), (122, 148), (120, 146), (124, 150)]
    for h, w in sizes:
        detector(fixtures.photo(rng, (h, w)))
    assert detector._pnet._cache_size() == 2  # heights 118-120 and 121-124 are two buckets, widths one
