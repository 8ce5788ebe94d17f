"""PyTorch definitions of the IR / IR-SE family with the released state_dict names and order, so that AdaFace's
``.ckpt`` backbones, CurricularFace's IR-101, face.evoLVe's and TreB1eN's ``Backbone`` files load with
``strict=True`` (``jsphere.models.ir`` describes the layouts). Written from the layouts of AdaFace ``net.py``,
face.evoLVe / CurricularFace ``backbone/model_irse.py`` and TreB1eN ``model.py``: registration order
``input_layer``, ``output_layer``, ``body``; in a unit ``shortcut_layer`` then ``res_layer``. ``forward`` returns the
``output_layer`` embedding, not normalised (AdaFace's returns it normalised together with its norm). Input NCHW in
the model's own convention (``jsphere.input_convention.InputConvention``).
"""

from __future__ import annotations

from torch import nn

from jsphere.models.ir import BASIC_CHANNELS, BOTTLENECK_CHANNELS, DEPTHS, SE_REDUCTION, default_bottleneck


class Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class SEModule(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // SE_REDUCTION, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // SE_REDUCTION, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        return x * self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))


class Unit(nn.Module):
    """A residual unit: ``res_layer(x) + shortcut_layer(x)``."""

    def __init__(self, cin, cout, stride, se, unit_bn, bottleneck):
        super().__init__()
        if cin == cout:
            self.shortcut_layer = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        if bottleneck:
            mid = cout // 4
            layers = [nn.BatchNorm2d(cin), nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
                      nn.Conv2d(mid, mid, 3, 1, 1, bias=False), nn.BatchNorm2d(mid), nn.PReLU(mid),
                      nn.Conv2d(mid, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)]
        elif unit_bn:
            layers = [nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
                      nn.PReLU(cout), nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
        else:
            layers = [nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.PReLU(cout),
                      nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
        if se and not (unit_bn or bottleneck):
            layers.append(SEModule(cout))  # res_layer.5
        self.res_layer = nn.Sequential(*layers)
        if se and (unit_bn or bottleneck):
            self.res_layer.add_module("se_block", SEModule(cout))

    def forward(self, x):
        return self.res_layer(x) + self.shortcut_layer(x)


class IRNet(nn.Module):
    """``depth`` in 18/34/50/100/152/200, ``se`` for IR-SE; the keyword arguments of ``jsphere.models.ir.IR``."""

    def __init__(self, depth, se=False, embed_dim=512, unit_bn=True, bottleneck=None, features_affine=False,
                 dropout=0.4):
        super().__init__()
        bottleneck = default_bottleneck(depth) if bottleneck is None else bool(bottleneck)
        channels = BOTTLENECK_CHANNELS if bottleneck else BASIC_CHANNELS
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.output_layer = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.Dropout(dropout), Flatten(),
                                          nn.Linear(channels[-1] * 7 * 7, embed_dim),
                                          nn.BatchNorm1d(embed_dim, affine=features_affine))
        units, cin = [], 64
        for cout, count in zip(channels, DEPTHS[depth], strict=True):
            for i in range(count):
                units.append(Unit(cin, cout, 2 if i == 0 else 1, se, unit_bn, bottleneck))
                cin = cout
        self.body = nn.Sequential(*units)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.output_layer(self.body(self.input_layer(x)))


def names() -> list[str]:
    return [f"ir_{d}" for d in DEPTHS] + [f"ir_se_{d}" for d in DEPTHS]


def build(name: str, embed_dim: int = 512, **kwargs) -> IRNet:
    """``ir_<depth>`` / ``ir_se_<depth>`` with ``jsphere.models.build``'s keyword arguments."""
    se = name.startswith("ir_se_")
    depth = int(name[len("ir_se_" if se else "ir_"):])
    return IRNet(depth, se, embed_dim, **kwargs)

