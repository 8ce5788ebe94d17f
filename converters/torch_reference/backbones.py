"""PyTorch definitions of every jsphere backbone, with the reference implementations' state_dict keys and order.

Written from the reference code: OpenSphere's ``model/backbone/sfnet.py`` / ``sfnet_deprecated.py`` /
``iresnet.py``, insightface's ``recognition/arcface_torch/backbones/iresnet.py`` / ``mobilefacenet.py`` and
foamliu/MobileFaceNet's ``mobilefacenet.py`` (the IR / IR-SE family is in ``converters.torch_reference.ir``, EdgeFace
in ``converters.torch_reference.edgeface``), so that
released ``.pth`` files load with ``strict=True``. Used by ``converters.check``, the export path and the
benchmarks; ``build(name, embed_dim=512)`` mirrors ``jsphere.models.build``. Input NCHW in [-1, 1].

A backbone registered in jsphere (``jsphere.models.register``) is exported through the PyTorch twin registered
here under the same name (``register``); ``has_definition`` tells which backbones can be exported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from converters.torch_reference import edgeface, ir
from jsphere import models
from jsphere.models.mobilefacenet_relu6 import SETTING as RELU6_SETTING
from jsphere.models.sfnet import stage_channels

SFNET_DEPTHS = {4: (0, 0, 0, 0), 10: (0, 1, 2, 0), 20: (1, 2, 4, 1), 36: (2, 4, 8, 2), 64: (3, 8, 16, 3)}
IRESNET_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 200: (6, 26, 60, 6)}
SFNET_NAMES = frozenset(f"sfnet{d}{v}" for d in SFNET_DEPTHS for v in ("", "_bn", "_deprecated"))


# ------------------------------------------------------------------------------------------------ SFNet
class SFConvBlock(nn.Module):
    def __init__(self, cin, cout, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=not norm)
        self.bn1 = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn1(self.conv1(x)))


class SFBasicBlock(nn.Module):
    def __init__(self, c, norm, relu_before_add):
        super().__init__()
        self.relu_before_add = relu_before_add
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=not norm)
        self.bn1 = nn.BatchNorm2d(c) if norm else nn.Identity()
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=not norm)
        self.bn2 = nn.BatchNorm2d(c) if norm else nn.Identity()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.relu_before_add:
            return torch.relu(out) + x
        return torch.relu(out + x)


class SFNet(nn.Module):
    """variant: 'plain' (OpenSphere SFNet w/o BN), 'bn', 'deprecated' (OpenSphere v1 SFNet_deprecated); ``width``
    scales the channels as jsphere's does (OpenSphere's classes are ``width=1``)."""

    def __init__(self, depth, variant="plain", embed_dim=512, features_scale_init=1.0, width=1.0):
        super().__init__()
        norm = variant == "bn"
        if norm:  # registered first: features.* lead the BN state_dict
            self.features = nn.BatchNorm1d(embed_dim)
            nn.init.constant_(self.features.weight, features_scale_init)
        elif variant == "plain":
            self.features = nn.Identity()
        cin = 3
        channels = stage_channels(width)
        for s, (cout, blocks) in enumerate(zip(channels, SFNET_DEPTHS[depth], strict=True), start=1):
            layers = [SFConvBlock(cin, cout, norm)] + [
                SFBasicBlock(cout, norm, variant == "deprecated") for _ in range(blocks)]
            setattr(self, f"layer{s}", nn.Sequential(*layers))
            cin = cout
        if variant != "deprecated":
            self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(channels[-1] * 7 * 7, embed_dim)
        self.variant = variant

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(x, 1)
        if self.variant == "deprecated":
            return self.fc(x)
        return self.features(self.fc(self.dropout(x)))


# ---------------------------------------------------------------------------------------------- IResNet
class IBasicBlock(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.prelu = nn.PReLU(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes, eps=1e-5))

    def forward(self, x):
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, depth, embed_dim=512, features_scale="frozen", features_scale_init=1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-5)
        self.prelu = nn.PReLU(64)
        cin = 64
        for s, (planes, blocks) in enumerate(zip((64, 128, 256, 512), IRESNET_DEPTHS[depth], strict=True), start=1):
            layers = [IBasicBlock(cin, planes, 2)] + [IBasicBlock(planes, planes, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{s}", nn.Sequential(*layers))
            cin = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-5)
        self.dropout = nn.Dropout(0.0, inplace=True)
        self.fc = nn.Linear(512 * 7 * 7, embed_dim)
        self.features = nn.BatchNorm1d(embed_dim, eps=1e-5)
        nn.init.constant_(self.features.weight, features_scale_init)
        self.features.weight.requires_grad = features_scale == "trainable"
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)

    def forward(self, x):
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.bn2(x), 1)
        return self.features(self.fc(self.dropout(x)))


# ----------------------------------------------------------------------------------------- MobileFaceNet
class ConvBlock(nn.Module):
    def __init__(self, cin, cout, kernel=1, stride=1, padding=0, groups=1, act=True):
        super().__init__()
        layers = [nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.PReLU(cout))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class DepthWise(nn.Module):
    def __init__(self, cin, cout, residual, stride, groups):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(ConvBlock(cin, groups), ConvBlock(groups, groups, 3, stride, 1, groups),
                                    ConvBlock(groups, cout, act=False))

    def forward(self, x):
        return x + self.layers(x) if self.residual else self.layers(x)


class Residual(nn.Module):
    def __init__(self, c, num_block, groups):
        super().__init__()
        self.layers = nn.Sequential(*[DepthWise(c, c, True, 1, groups) for _ in range(num_block)])

    def forward(self, x):
        return self.layers(x)


class GDC(nn.Module):
    def __init__(self, embed_dim):
        super().__init__()
        self.layers = nn.Sequential(ConvBlock(512, 512, 7, groups=512, act=False), nn.Flatten(),
                                    nn.Linear(512, embed_dim, bias=False), nn.BatchNorm1d(embed_dim))

    def forward(self, x):
        return self.layers(x)


class GNAP(nn.Module):
    """insightface's MXNet GNAP output (``jsphere.models.mobilefacenet``), under its MXNet operator names; BatchNorm
    scales fixed at 1 (MXNet ``fix_gamma``); the mean norm is each image's (MXNet's at batch size 1)."""

    def __init__(self, embed_dim):
        super().__init__()
        self.bn6f = nn.BatchNorm2d(512)
        self.narrows = embed_dim < 512
        if self.narrows:
            self.bn6w = nn.BatchNorm1d(512)
            self.pre_fc1 = nn.Linear(512, embed_dim, bias=False)
        self.fc1 = nn.BatchNorm1d(embed_dim)
        for bn in (self.bn6f, self.fc1, *([self.bn6w] if self.narrows else [])):
            bn.weight.requires_grad = False

    def forward(self, x):
        x = self.bn6f(x)
        norm = x.square().sum(1, keepdim=True).sqrt()
        x = (x * (norm.mean((2, 3), keepdim=True) / norm)).mean((2, 3))
        return self.fc1(self.pre_fc1(self.bn6w(x)) if self.narrows else x)


class MobileFaceNet(nn.Module):
    """arcface_torch's MobileFaceNet: ``scale`` multiplies the trunk widths; ``blocks[0] > 1`` makes the second layer
    a Residual of DepthWise blocks (``mbf_large``) instead of the grouped 3x3 ConvBlock; ``output='gnap'``
    insightface's GNAP output instead of GDC."""

    def __init__(self, embed_dim=512, blocks=(1, 4, 6, 2), scale=2, output="gdc"):
        super().__init__()
        c1, c2 = 64 * scale, 128 * scale
        second = ConvBlock(c1, c1, 3, 1, 1, groups=64) if blocks[0] == 1 else Residual(c1, blocks[0], 128)
        self.layers = nn.ModuleList([
            ConvBlock(3, c1, 3, 2, 1), second, DepthWise(c1, c1, False, 2, 128), Residual(c1, blocks[1], 128),
            DepthWise(c1, c2, False, 2, 256), Residual(c2, blocks[2], 256), DepthWise(c2, c2, False, 2, 512),
            Residual(c2, blocks[3], 256)])
        self.conv_sep = ConvBlock(c2, 512)
        self.features = GDC(embed_dim) if output == "gdc" else GNAP(embed_dim)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.features(self.conv_sep(x))


def get_mbf(num_features: int = 512, blocks=(1, 4, 6, 2), scale: int = 2, output: str = "gdc") -> MobileFaceNet:
    """arcface_torch's ``get_mbf(fp16, num_features, blocks, scale)`` (``mbf``)."""
    return MobileFaceNet(num_features, blocks, scale, output)


def get_mbf_large(num_features: int = 512, blocks=(2, 8, 12, 4), scale: int = 4, output: str = "gdc") -> MobileFaceNet:
    """arcface_torch's ``get_mbf_large`` (``mbf_large``)."""
    return MobileFaceNet(num_features, blocks, scale, output)


MOBILEFACENETS = {"mobilefacenet": get_mbf, "mobilefacenet_large": get_mbf_large}


# ------------------------------------------------------------------- foamliu's MobileFaceNet (ReLU6, MobileNetV2)
def conv_bn_relu6(cin, cout, kernel, stride=1, groups=1):
    """foamliu's ``ConvBNReLU``: a Sequential [conv (bias-free, 'same' padding), BN, ReLU6]."""
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class DepthwiseSeparable(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.depthwise = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pointwise = nn.Conv2d(c, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn2(self.pointwise(self.relu(self.bn1(self.depthwise(x))))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expansion):
        super().__init__()
        hidden = cin * expansion
        self.residual = stride == 1 and cin == cout
        self.conv = nn.Sequential(conv_bn_relu6(cin, hidden, 1), conv_bn_relu6(hidden, hidden, 3, stride, hidden),
                                  nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class GDConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.depthwise = nn.Conv2d(c, c, 7, groups=c, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(self.depthwise(x))


class MobileFaceNetReLU6(nn.Module):
    """foamliu/MobileFaceNet's ``MobileFaceNet`` (its released ``mobilefacenet.pt``: ``embed_dim=128``)."""

    def __init__(self, embed_dim=512):
        super().__init__()
        self.conv1 = conv_bn_relu6(3, 64, 3, 2)
        self.dw_conv = DepthwiseSeparable(64)
        blocks, cin = [], 64
        for expansion, cout, count, stride in RELU6_SETTING:
            for i in range(count):
                blocks.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expansion))
                cin = cout
        self.conv2 = conv_bn_relu6(cin, 512, 1)
        self.gdconv = GDConv(512)
        self.conv3 = nn.Conv2d(512, embed_dim, 1)
        self.bn = nn.BatchNorm2d(embed_dim)
        self.features = nn.Sequential(*blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.features(self.dw_conv(self.conv1(x)))
        x = self.bn(self.conv3(self.gdconv(self.conv2(x))))
        return x.reshape(x.shape[0], -1)


_REGISTERED: dict[str, Callable[..., nn.Module]] = {}
Factory = TypeVar("Factory", bound=Callable[..., nn.Module])


def _built_in() -> list[str]:
    out = []
    for d in SFNET_DEPTHS:
        out += [f"sfnet{d}", f"sfnet{d}_bn", f"sfnet{d}_deprecated"]
    return out + [f"iresnet{d}" for d in IRESNET_DEPTHS] + list(MOBILEFACENETS) + ["mobilefacenet_relu6"] \
        + ir.names() + edgeface.names()


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: the PyTorch definition of the jsphere backbone registered as ``name``, a ``torch.nn.Module``
    class (or a function returning one) called as ``factory(embed_dim, **kwargs)`` with the checkpoint's embedding
    size and model keyword arguments. Its state_dict keys are the jsphere module tree's paths with PyTorch's leaf
    names (``layers/0/kernel`` is ``layers.0.weight``; ``converters.core.mapping``) and it computes the same
    function on NCHW input; the exporters fill it with a checkpoint's weights (``export_onnx`` checks that
    onnxruntime and jsphere agree). Registering a name again replaces the earlier definition."""
    if name in _built_in():
        raise ValueError(f"backbone name {name!r} is one of jsphere's own backbones; its definition is built in")

    def decorator(factory: Factory) -> Factory:
        if not callable(factory):
            raise TypeError(f"register({name!r}) decorates a torch.nn.Module class or a function returning one, "
                            f"got {type(factory).__name__}")
        _REGISTERED[name] = factory
        return factory

    return decorator


def names() -> list[str]:
    """Every backbone with a PyTorch definition: jsphere's own, then the registered ones."""
    return _built_in() + list(_REGISTERED)


def has_definition(name: str) -> bool:
    """Whether backbone ``name`` has a PyTorch definition, i.e. whether it can be exported to ``.pth`` and ONNX."""
    return name in _built_in() or name in _REGISTERED


def missing_definition(name: str) -> str:
    """What to say about a backbone jsphere knows but that has no PyTorch definition."""
    return (f"backbone {name!r} is registered in jsphere but has no PyTorch definition, so it cannot be exported "
            "(the exporters fill a PyTorch model with the checkpoint's weights): register one with "
            f"@converters.torch_reference.backbones.register({name!r}) on a torch.nn.Module built as "
            "Module(embed_dim, **kwargs), whose state_dict keys are the jsphere module paths (README: Write your own "
            "backbone)")


def build(name: str, embed_dim: int = 512, **kwargs) -> nn.Module:
    """The PyTorch reference model for a jsphere backbone name (same keyword arguments)."""
    if name.startswith("sfnet") and name in SFNET_NAMES:
        depth, _, variant = name[5:].partition("_")
        return SFNet(int(depth), variant or "plain", embed_dim, **kwargs)
    if name.startswith("iresnet") and name in _built_in():
        return IResNet(int(name[7:]), embed_dim, **kwargs)
    if name in MOBILEFACENETS:
        return MOBILEFACENETS[name](embed_dim, **kwargs)
    if name == "mobilefacenet_relu6":
        return MobileFaceNetReLU6(embed_dim, **kwargs)
    if name in ir.names():
        return ir.build(name, embed_dim, **kwargs)
    if name in edgeface.names():
        return edgeface.build(name, embed_dim, **kwargs)
    if name in _REGISTERED:
        model = _REGISTERED[name](embed_dim, **kwargs)
        if not isinstance(model, nn.Module):
            raise TypeError(f"the PyTorch definition registered as {name!r} returned a {type(model).__name__}, not a "
                            "torch.nn.Module")
        return model
    if name in models.names():
        raise ValueError(missing_definition(name))
    raise ValueError(f"unknown model {name!r}; valid names: {', '.join(names())}")
