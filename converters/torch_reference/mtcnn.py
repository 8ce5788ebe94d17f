"""A small PyTorch MTCNN that follows OpenSphere's ``face_alignment`` code path by path: the reference that
``tests/detect`` and ``benchmarks.detect`` compare jsphere's detector with.

* ``OpenSphereNets``: P-Net/R-Net/O-Net with the parameter names of OpenSphere's ``mtcnn_pytorch/src/get_nets.py``
  (``features.conv1.weight`` ..., the layout of its ``weights/{pnet,rnet,onet}.npy``), whose ``Flatten`` reads
  the last feature map as (C, W, H);
* ``FacenetNets``: the same networks with facenet-pytorch's names (``conv1``, ``dense4``, ``dense6_3`` ...,
  the layout of its ``data/{pnet,rnet,onet}.pt``), whose flatten reads (W, H, C);
* ``detect_faces``: OpenSphere's cascade, one pyramid scale at a time, NMS as a Python loop, crops resized
  one by one with Pillow, as ``mtcnn.py``/``first_stage.py``/``box_utils.py`` do.

``pnet_softmax='channel'`` is MTCNN's softmax over the two classes; ``'opensphere'`` is OpenSphere's port, which
takes P-Net's softmax over the last axis of the [N, 2, h, w] map (the width).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image
from torch import nn

# (name, in, out, kernel) of each conv, per network; PReLU after each, pooling (window, stride) where given.
_TRUNKS = {
    "pnet": [("conv1", 3, 10, 3, (2, 2)), ("conv2", 10, 16, 3, None), ("conv3", 16, 32, 3, None)],
    "rnet": [("conv1", 3, 28, 3, (3, 2)), ("conv2", 28, 48, 3, (3, 2)), ("conv3", 48, 64, 2, None)],
    "onet": [("conv1", 3, 32, 3, (3, 2)), ("conv2", 32, 64, 3, (3, 2)), ("conv3", 64, 64, 3, (2, 2)),
             ("conv4", 64, 128, 2, None)],
}


def _trunk(net: str) -> list[tuple[str, nn.Module]]:
    layers = []
    for i, (name, cin, cout, k, pool) in enumerate(_TRUNKS[net], start=1):
        layers += [(name, nn.Conv2d(cin, cout, k, 1)), (f"prelu{i}", nn.PReLU(cout))]
        if pool:
            layers.append((f"pool{i}", nn.MaxPool2d(*pool, ceil_mode=True)))
    return layers


class _OpenSphereFlatten(nn.Module):
    def forward(self, x):
        return x.transpose(3, 2).contiguous().view(x.size(0), -1)


class OpenSpherePNet(nn.Module):
    def __init__(self, pnet_softmax: str = "channel"):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(_trunk("pnet")))
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1, 1), nn.Conv2d(32, 4, 1, 1)
        self.dim = 1 if pnet_softmax == "channel" else -1

    def forward(self, x):
        x = self.features(x)
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=self.dim)


class OpenSphereRNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(_trunk("rnet") + [
            ("flatten", _OpenSphereFlatten()), ("conv4", nn.Linear(576, 128)), ("prelu4", nn.PReLU(128))]))
        self.conv5_1, self.conv5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = self.features(x)
        return self.conv5_2(x), torch.softmax(self.conv5_1(x), dim=-1)


class OpenSphereONet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(_trunk("onet") + [
            ("flatten", _OpenSphereFlatten()), ("conv5", nn.Linear(1152, 256)), ("drop5", nn.Dropout(0.25)),
            ("prelu5", nn.PReLU(256))]))
        self.conv6_1, self.conv6_2, self.conv6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        x = self.features(x)
        return self.conv6_3(x), self.conv6_2(x), torch.softmax(self.conv6_1(x), dim=-1)


class _FacenetNet(nn.Module):
    """facenet-pytorch's naming: the trunk's modules at top level, ``dense*`` linears, flatten over (W, H, C)."""

    def __init__(self, net: str, dense: list[tuple[str, int, int]], heads: list[tuple[str, int, int]]):
        super().__init__()
        for name, module in _trunk(net):
            setattr(self, name, module)
        self.trunk = [name for name, _ in _trunk(net)]
        self.dense = [(name, f"prelu{len(_TRUNKS[net]) + 1 + i}") for i, (name, _, _) in enumerate(dense)]
        for (name, prelu), (_, fin, fout) in zip(self.dense, dense, strict=True):
            setattr(self, name, nn.Linear(fin, fout))
            setattr(self, prelu, nn.PReLU(fout))
        self.heads = [name for name, _, _ in heads]
        for name, fin, fout in heads:
            setattr(self, name, (nn.Conv2d(fin, fout, 1) if net == "pnet" else nn.Linear(fin, fout)))

    def forward(self, x):
        for name in self.trunk:
            x = getattr(self, name)(x)
        if self.dense:
            x = x.permute(0, 3, 2, 1).contiguous().view(x.shape[0], -1)
            for name, prelu in self.dense:
                x = getattr(self, prelu)(getattr(self, name)(x))
        outs = [getattr(self, name)(x) for name in self.heads]
        outs[0] = torch.softmax(outs[0], dim=1)
        return tuple(reversed(outs))  # (offsets, probs) / (landmarks, offsets, probs) as OpenSphere's


def FacenetNets() -> dict[str, nn.Module]:  # noqa: N802 (a constructor)
    return {"pnet": _FacenetNet("pnet", [], [("conv4_1", 32, 2), ("conv4_2", 32, 4)]),
            "rnet": _FacenetNet("rnet", [("dense4", 576, 128)], [("dense5_1", 128, 2), ("dense5_2", 128, 4)]),
            "onet": _FacenetNet("onet", [("dense5", 1152, 256)],
                                [("dense6_1", 256, 2), ("dense6_2", 256, 4), ("dense6_3", 256, 10)])}


def OpenSphereNets(pnet_softmax: str = "channel") -> dict[str, nn.Module]:  # noqa: N802
    return {"pnet": OpenSpherePNet(pnet_softmax), "rnet": OpenSphereRNet(), "onet": OpenSphereONet()}


# --------------------------------------------------------------------------------- the cascade, reference
def _nms(b: np.ndarray, threshold: float, mode: str = "union") -> list[int]:
    if len(b) == 0:
        return []
    area = (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
    ids, pick = np.argsort(b[:, 4]), []
    while len(ids) > 0:
        last = len(ids) - 1
        i = ids[last]
        pick.append(i)
        others = ids[:last]
        iw = np.maximum(0.0, np.minimum(b[i, 2], b[others, 2]) - np.maximum(b[i, 0], b[others, 0]) + 1.0)
        ih = np.maximum(0.0, np.minimum(b[i, 3], b[others, 3]) - np.maximum(b[i, 1], b[others, 1]) + 1.0)
        inter = iw * ih
        denom = np.minimum(area[i], area[others]) if mode == "min" else area[i] + area[others] - inter
        ids = np.delete(ids, np.concatenate([[last], np.where(inter / denom > threshold)[0]]))
    return pick


def _calibrate(b: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    w, h = b[:, 2] - b[:, 0] + 1.0, b[:, 3] - b[:, 1] + 1.0
    b[:, 0:4] = b[:, 0:4] + np.hstack([w[:, None], h[:, None], w[:, None], h[:, None]]) * offsets
    return b


def _square_round(b: np.ndarray) -> np.ndarray:
    out = np.zeros_like(b)
    w, h = b[:, 2] - b[:, 0] + 1.0, b[:, 3] - b[:, 1] + 1.0
    side = np.maximum(w, h)
    out[:, 0], out[:, 1] = b[:, 0] + w * 0.5 - side * 0.5, b[:, 1] + h * 0.5 - side * 0.5
    out[:, 2], out[:, 3] = out[:, 0] + side - 1.0, out[:, 1] + side - 1.0
    out[:, 4] = b[:, 4]
    out[:, 0:4] = np.round(out[:, 0:4])
    return out


def _tensor(images: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
    x = np.stack(images).astype(np.float32).transpose(0, 3, 1, 2)
    return torch.from_numpy((x - 127.5) * 0.0078125).to(dtype)


def _cutouts(b: np.ndarray, img: np.ndarray, size: int, dtype: torch.dtype) -> torch.Tensor:
    height, width = img.shape[:2]
    out = []
    for x1, y1, x2, y2 in b[:, 0:4].astype(np.int32):
        box = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), np.uint8)
        x, y, ex, ey = max(x1, 0), max(y1, 0), min(x2, width - 1), min(y2, height - 1)
        box[y - y1:ey - y1 + 1, x - x1:ex - x1 + 1] = img[y:ey + 1, x:ex + 1]
        out.append(np.asarray(Image.fromarray(box).resize((size, size), Image.BILINEAR)))
    # OpenSphere's correct_bboxes clips the boxes it was given to the image, in place
    np.clip(b[:, 0:2], 0.0, None, out=b[:, 0:2], where=b[:, 0:2] < 0.0)
    b[:, 2] = np.minimum(b[:, 2], width - 1.0)
    b[:, 3] = np.minimum(b[:, 3], height - 1.0)
    return _tensor(out, dtype)


@torch.no_grad()
def detect_faces(image: Image.Image, nets: dict[str, nn.Module], min_face_size: float = 20.0,
                 thresholds=(0.6, 0.7, 0.9), nms_thresholds=(0.7, 0.7, 0.7), factor: float = 0.85,
                 dtype: torch.dtype = torch.float32) -> tuple[np.ndarray, np.ndarray]:
    """(boxes [n, 5] with scores, landmarks [n, 10] as x1..x5, y1..y5) of an RGB PIL image; empty arrays when
    no face is found."""
    width, height = image.size
    img = np.asarray(image, np.uint8)
    m = 12 / min_face_size
    min_length, scales, k = min(height, width) * m, [], 0
    while min_length > 12:
        scales.append(m * factor**k)
        min_length *= factor
        k += 1
    none = (np.zeros((0, 5)), np.zeros((0, 10)))
    stage1 = []
    for s in scales:  # P-Net on each scale
        scaled = np.asarray(image.resize((math.ceil(width * s), math.ceil(height * s)), Image.BILINEAR))
        offsets, probs = nets["pnet"](_tensor([scaled], dtype))
        probs, offsets = probs[0, 1].double().numpy(), offsets[0].double().numpy()
        r, c = np.where(probs > thresholds[0])
        if r.size == 0:
            continue
        cand = np.vstack([np.round((2 * c + 1.0) / s), np.round((2 * r + 1.0) / s), np.round((2 * c + 13.0) / s),
                          np.round((2 * r + 13.0) / s), probs[r, c], offsets[:, r, c]]).T
        stage1.append(cand[_nms(cand[:, 0:5], 0.5)])
    if not stage1:
        return none
    b = np.vstack(stage1)
    b = b[_nms(b[:, 0:5], nms_thresholds[0])]
    b = _square_round(_calibrate(b[:, 0:5], b[:, 5:]))
    offsets, probs = (t.double().numpy() for t in nets["rnet"](_cutouts(b, img, 24, dtype)))
    keep = np.where(probs[:, 1] > thresholds[1])[0]
    b, offsets = b[keep], offsets[keep]
    b[:, 4] = probs[keep, 1]
    keep = _nms(b, nms_thresholds[1])
    b = _square_round(_calibrate(b[keep], offsets[keep]))
    if len(b) == 0:
        return none
    marks, offsets, probs = (t.double().numpy() for t in nets["onet"](_cutouts(b, img, 48, dtype)))
    keep = np.where(probs[:, 1] > thresholds[2])[0]
    b, offsets, marks = b[keep], offsets[keep], marks[keep]
    b[:, 4] = probs[keep, 1]
    w, h = b[:, 2] - b[:, 0] + 1.0, b[:, 3] - b[:, 1] + 1.0
    marks[:, 0:5] = b[:, 0:1] + w[:, None] * marks[:, 0:5]
    marks[:, 5:10] = b[:, 1:2] + h[:, None] * marks[:, 5:10]
    b = _calibrate(b, offsets)
    keep = _nms(b, nms_thresholds[2], mode="min")
    return b[keep], marks[keep]
