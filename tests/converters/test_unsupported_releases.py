"""Released models whose architecture jsphere does not have are refused naming exactly what is missing (before:
"the keys fit no jsphere backbone", a missing-parameter message, or a layer-shape mismatch), and nothing is
written. The files reproduce the real ones' key names, shapes and wrappers (``unsupported_layouts`` and
``released_edgeface``, checked against the authors' classes), or for MXNet the names insightface's symbol code
gives (``mxnet_zoo``)."""

import warnings

import numpy as np
import pytest
import torch

from converters.mxnet_format import mxnet_import
from converters.pth_format import pth_import
from converters.torch_reference import backbones as torch_backbones
from tests.converters import released_edgeface, unsupported_layouts
from tests.converters.mxnet_zoo import FMobileFaceNet, write_params


def _import(tmp_path, state_dict, name="backbone.pth"):
    torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()}, tmp_path / name)
    return pth_import.import_checkpoint("auto", str(tmp_path / name), str(tmp_path / "out"))


def test_an_edgenext_outside_edgefaces_wrapper_or_of_other_widths_is_refused_naming_it(tmp_path):
    bare = {k.removeprefix("model."): v for k, v in released_edgeface.edgeface("edgeface_xxs").items()}
    with pytest.raises(ValueError, match=r"a timm EdgeNeXt without EdgeFace's wrapper .* prefix its keys with "
                                         r"'model.'"):
        _import(tmp_path, bare)
    other = released_edgeface.edgeface("edgeface_xxs")
    other["model.stem.0.weight"] = np.zeros((16, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"an EdgeNeXt with depths \(2, 2, 6, 2\), widths \(16, 48, 88, 168\) and 4 "
                                         r"heads, which is no EdgeFace variant"):
        _import(tmp_path, other)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("version", "width", "stem"), [(1, 1.3, 20), (2, 1.0, 16)])
def test_ghostfacenet_checkpoints_are_refused_naming_ghost_modules(tmp_path, version, width, stem):
    with pytest.raises(ValueError, match=rf"GhostFaceNetV{version} \(the PyTorch port of GhostFaceNets, {stem}-channel "
                                         r"stem, .*\) is not a jsphere architecture: jsphere has no GhostNet: missing "
                                         r"its ghost modules") as refused:
        _import(tmp_path, unsupported_layouts.ghostfacenet(version, width))
    assert ("DFC attention" in str(refused.value)) == (version == 2)


def test_a_keras_h5_file_is_refused_as_keras_not_as_a_broken_pickle(tmp_path):
    """GhostFaceNets releases Keras .h5 files: HDF5's signature opens them."""
    (tmp_path / "GN_W1.3_S1_ArcFace.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(504))
    with pytest.raises(ValueError, match=r"GN_W1.3_S1_ArcFace.h5: an HDF5 file \(a Keras .h5 model, as GhostFaceNets "
                                         r"releases them\)"):
        pth_import.import_checkpoint("auto", str(tmp_path / "GN_W1.3_S1_ArcFace.h5"), str(tmp_path / "out"))


def test_an_arcface_torch_mobilefacenet_trained_on_112x96_crops_is_refused_saying_so(tmp_path):
    state_dict = {k: v.numpy() for k, v in torch_backbones.build("mobilefacenet", 128, scale=1).state_dict().items()}
    state_dict["features.layers.0.layers.0.weight"] = np.zeros((512, 1, 7, 6), np.float32)
    with pytest.raises(ValueError, match=r"a MobileFaceNet trained on 112x96 crops \(its GDC kernel is 7x6"):
        _import(tmp_path, state_dict)


def _mxnet_mobilefacenet(tmp_path, rename):
    """insightface's fmobilefacenet parameters under its symbol code's names (no symbol file), rewritten."""
    params = dict(FMobileFaceNet(None, original=False).p)
    rename(params)
    write_params(tmp_path / "model-0000.params", params)
    return str(tmp_path / "model-0000.params")


def test_an_insightface_mxnet_mobilefacenet_at_112x96_is_refused_saying_so(tmp_path):
    def narrow(params):
        params["arg:conv_6dw7_7_conv2d_weight"] = np.zeros((512, 1, 7, 6), np.float32)

    with pytest.raises(ValueError, match=r"a MobileFaceNet trained on 112x96 crops"):
        mxnet_import.import_params(_mxnet_mobilefacenet(tmp_path, narrow), str(tmp_path / "out"))


def test_an_onnx_mobilefacenet_for_112x96_input_is_refused_saying_so(tmp_path):
    """arcface_torch's mbf with the GDC kernel of a 112x96 input, exported by torch.onnx for 112x96 input."""
    from converters.onnx_format import onnx_import

    model = torch_backbones.build("mobilefacenet", 128, scale=1).eval()
    model.features.layers[0].layers[0] = torch.nn.Conv2d(512, 512, (7, 6), groups=512, bias=False)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model, (torch.zeros(1, 3, 112, 96),), str(tmp_path / "m.onnx"), opset_version=17,
                          dynamo=False)
    with pytest.raises(ValueError, match=r"no registered architecture matches .* a MobileFaceNet trained on 112x96 "
                                         r"crops \(its GDC kernel is 7x6"):
        onnx_import.import_onnx(str(tmp_path / "m.onnx"), str(tmp_path / "out"))
