"""A checkpoint's recorded input convention is what ``Embedder`` (and so ``jsphere.embed`` and ``--mode=eval``)
feeds the model; checkpoints without one keep jsphere's RGB (x - 127.5) / 127.5."""

import numpy as np
import pytest
from flax import nnx

from jsphere import checkpoint, models
from jsphere.inference import Embedder
from jsphere.input_convention import CONVENTIONS, JSPHERE, InputConvention


@pytest.fixture(scope="module")
def model():
    return models.build("sfnet4", embed_dim=8, rngs=nnx.Rngs(0))


def _save(path, model, convention):
    meta = {"model": {"name": "sfnet4", "embed_dim": 8, "kwargs": {}}}
    if convention is not None:
        meta["input"] = convention
    checkpoint.save_weights(path, step=1, backbone=models.pure_state(model), head=None, meta=meta)


def test_a_bgr_checkpoint_sees_the_channels_reversed_and_a_plain_one_does_not(tmp_path, model):
    faces = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    _save(tmp_path / "bgr", model, CONVENTIONS["bgr"].to_meta())
    _save(tmp_path / "rgb", model, None)
    bgr = Embedder.from_checkpoint(tmp_path / "bgr", batch_size=3)
    rgb = Embedder.from_checkpoint(tmp_path / "rgb", batch_size=3)
    assert bgr.input_convention == CONVENTIONS["bgr"] and rgb.input_convention == JSPHERE
    np.testing.assert_array_equal(bgr.embed(faces), rgb.embed(faces[..., ::-1]))
    assert not np.allclose(bgr.embed(faces), rgb.embed(faces))


def test_mean_and_std_are_applied_per_channel_in_the_models_order():
    convention = InputConvention("BGR", (10.0, 20.0, 30.0), (2.0, 4.0, 8.0))
    pixel = np.array([[[[100, 50, 0]]]], np.uint8)  # R, G, B
    np.testing.assert_allclose(convention.apply(pixel)[0, 0, 0], [(0 - 10) / 2, (50 - 20) / 4, (100 - 30) / 8])
    as_float = (pixel.astype(np.float32) - 127.5) / 127.5  # jsphere's float form of the same pixel
    np.testing.assert_allclose(convention.apply(as_float), convention.apply(pixel), atol=1e-5)


@pytest.mark.parametrize(("meta", "match"), [({"channels": "RGBA"}, "'RGB' or 'BGR'"),
                                              ({"channels": "BGR", "scale": 2}, "expected"),
                                              ({"mean": [0, 0]}, "three finite numbers")])
def test_an_unreadable_recorded_convention_is_named(tmp_path, model, meta, match):
    _save(tmp_path / "odd", model, meta)
    with pytest.raises(ValueError, match=rf"input convention is unreadable: .*{match}"):
        Embedder.from_checkpoint(tmp_path / "odd")
