"""The other popular MobileFaceNets import with no flags and their input convention: TreB1eN's InsightFace_Pytorch /
face.evoLVe one (arcface_torch's mbf at scale 1 under other names, BGR) and foamliu's ReLU6 one (MobileNetV2
inverted residuals, ImageNet-normalised RGB); embeddings agree with the reference classes (min cos >= 0.99999)."""

import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn

from converters.onnx_format import onnx_export
from converters.pth_format import pth_export, pth_import
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference.random_weights import calibrate, images
from jsphere import checkpoint, models
from jsphere.inference import Embedder
from jsphere.input_convention import CONVENTIONS
from tests.converters.agreement import agree


class ConvBlock(nn.Module):  # TreB1eN model.py Conv_block / Linear_block: conv, bn (, prelu)
    def __init__(self, cin, cout, kernel=1, stride=1, padding=0, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout) if act else None

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class DepthWise(nn.Module):  # Depth_Wise: conv (1x1 -> groups), conv_dw (3x3 grouped), project (linear 1x1)
    def __init__(self, cin, cout, residual, stride, groups):
        super().__init__()
        self.conv = ConvBlock(cin, groups)
        self.conv_dw = ConvBlock(groups, groups, 3, stride, 1, groups)
        self.project = ConvBlock(groups, cout, act=False)
        self.residual = residual

    def forward(self, x):
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    def __init__(self, c, n, groups):
        super().__init__()
        self.model = nn.Sequential(*[DepthWise(c, c, True, 1, groups) for _ in range(n)])

    def forward(self, x):
        return self.model(x)


class TreB1eNMobileFaceNet(nn.Module):
    """TreB1eN's (and face.evoLVe's) MobileFaceNet, its attribute names and registration order."""

    def __init__(self, embedding_size=512):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.conv2_dw = ConvBlock(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthWise(64, 64, False, 2, 128)
        self.conv_3 = Residual(64, 4, 128)
        self.conv_34 = DepthWise(64, 128, False, 2, 256)
        self.conv_4 = Residual(128, 6, 256)
        self.conv_45 = DepthWise(128, 128, False, 2, 512)
        self.conv_5 = Residual(128, 2, 256)
        self.conv_6_sep = ConvBlock(128, 512)
        self.conv_6_dw = ConvBlock(512, 512, 7, groups=512, act=False)
        self.linear = nn.Linear(512, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x):
        for name in ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5", "conv_6_sep",
                     "conv_6_dw"):
            x = getattr(self, name)(x)
        return self.bn(self.linear(x.reshape(x.shape[0], -1)))


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32))


def test_treb1en_mobilefacenet_imports_as_mbf_scale_1_with_bgr_input(tmp_path):
    torch.manual_seed(0)
    reference = calibrate(TreB1eNMobileFaceNet(512))
    sd = reference.state_dict()
    assert {"conv_3.model.3.conv_dw.prelu.weight", "conv_23.project.bn.running_var", "conv_6_dw.conv.weight",
            "linear.weight", "bn.bias"} <= set(sd)  # model_mobilefacenet.pth's names
    torch.save(sd, tmp_path / "model_mobilefacenet.pth")
    found = []
    out = pth_import.import_checkpoint("auto", str(tmp_path / "model_mobilefacenet.pth"), str(tmp_path / "ckpt"),
                                         report=lambda f, layout: found.append((f.arch, f.kwargs, layout)))
    assert found == [("mobilefacenet", {"scale": 1}, "treb1en")]
    assert checkpoint.load_meta(out)["input"] == CONVENTIONS["bgr"].with_alignment("arcface").to_meta()
    faces = images(2)
    with torch.no_grad():
        theirs = reference(_nchw((faces[..., ::-1].astype(np.float32) - 127.5) / 127.5)).numpy()
    agree(Embedder.from_checkpoint(out, batch_size=2).embed(faces, flip="none"), theirs)
    pth_export.export(str(out), "insightface", str(tmp_path / "mbf.pth"))  # arcface_torch's names from here on
    torch_backbones.get_mbf(512, scale=1).load_state_dict(torch.load(tmp_path / "mbf.pth", weights_only=True),
                                                       strict=True)


def test_foamliu_relu6_mobilefacenet_imports_with_imagenet_input_and_exports(tmp_path):
    torch.manual_seed(1)
    reference = calibrate(torch_backbones.MobileFaceNetReLU6(128))
    sd = reference.state_dict()
    assert list(sd)[:3] == ["conv1.0.weight", "conv1.1.weight", "conv1.1.bias"]
    assert {"dw_conv.pointwise.weight", "features.14.conv.1.0.weight", "gdconv.bn.running_mean", "conv3.bias",
            "bn.running_var"} <= set(sd)  # foamliu's weights/mobilefacenet.pt names
    torch.save(sd, tmp_path / "mobilefacenet.pt")
    out = pth_import.import_checkpoint("auto", str(tmp_path / "mobilefacenet.pt"), str(tmp_path / "ckpt"))
    meta = checkpoint.load_meta(out)
    assert meta["model"] == {"name": "mobilefacenet_relu6", "embed_dim": 128, "kwargs": {}}
    assert meta["input"] == CONVENTIONS["imagenet"].with_alignment("arcface").to_meta()
    faces = images(2)
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    with torch.no_grad():
        theirs = reference(_nchw((faces.astype(np.float32) / 255 - mean) / std)).numpy()
    ours = Embedder.from_checkpoint(out, batch_size=2)
    agree(ours.embed(faces, flip="none"), theirs)
    # float input in jsphere's form reaches the model in its convention too
    agree(ours.embed((faces.astype(np.float32) - 127.5) / 127.5, flip="none"), theirs)
    pth_export.export(str(out), "insightface", str(tmp_path / "back.pt"))
    fresh = torch_backbones.MobileFaceNetReLU6(128)
    fresh.load_state_dict(torch.load(tmp_path / "back.pt", weights_only=True), strict=True)
    assert list(fresh.state_dict()) == list(sd)
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx_export.export(str(out), str(tmp_path / "m.onnx"))  # the ImageNet normalisation is in the graph
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    agree(session.run(None, {"input": _nchw((faces.astype(np.float32) - 127.5) / 127.5).numpy()})[0], theirs)


@pytest.mark.parametrize(("embed_dim", "expected"), [(512, 1_197_696), (128, 999_936)])
def test_relu6_mobilefacenet_parameter_count_equals_the_reference_class(embed_dim, expected):
    abstract = nnx.eval_shape(lambda: models.build("mobilefacenet_relu6", embed_dim=embed_dim, rngs=nnx.Rngs(0)))
    reference = sum(p.numel() for p in torch_backbones.MobileFaceNetReLU6(embed_dim).parameters())
    assert models.param_count(abstract) == reference == expected
