"""Random MTCNN weights written in the two public layouts, and synthetic photos with faces pasted in them.

The weights are PyTorch's own modules (``converters.torch_reference.mtcnn``, the parameter names of OpenSphere's
``get_nets.py`` and of facenet-pytorch's ``mtcnn.py``) initialised at random and saved the way the published
files are: OpenSphere's ``{pnet,rnet,onet}.npy`` are ``np.save`` of a dict (a 0-d object array),
facenet-pytorch's ``{pnet,rnet,onet}.pt`` are ``torch.save`` of a state_dict. Kaiming-normal weights keep the
activations of order one, so face probabilities spread over (0, 1); the face-logit biases set how many windows
pass each stage, and the box and landmark regressions are scaled down so that boxes stay boxes (OpenSphere's code
crashes on a box of negative size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from converters.torch_reference.mtcnn import FacenetNets, OpenSphereNets
from jsphere.data import synthetic

# face-logit bias of P-Net, R-Net, O-Net and a gain on P-Net's face logit: a handful of detections on the photos
# below, per softmax mode (OpenSphere's softmax over the map's width ignores a bias; a wide spread of logits
# along a row lets one window stand out)
FACE_BIAS = {"channel": (-0.25, 2.5, 4.0), "opensphere": (0.0, 2.5, 4.0)}
PNET_FACE_GAIN = {"channel": 1.0, "opensphere": 12.0}


def _randomise(nets: dict[str, torch.nn.Module], seed: int, mode: str) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for net in nets.values():
            for mod in net.modules():
                if isinstance(mod, torch.nn.PReLU):
                    mod.weight.copy_(torch.rand(mod.weight.shape, generator=gen) * 0.45 + 0.05)
                elif isinstance(mod, torch.nn.Conv2d | torch.nn.Linear):
                    fan_in = mod.weight[0].numel()
                    mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                    mod.bias.copy_(torch.rand(mod.bias.shape, generator=gen) * 0.2 - 0.1)
        for name, bias in zip(("pnet", "rnet", "onet"), FACE_BIAS[mode], strict=True):
            for head in _heads(nets[name]):
                if head.weight.shape[0] == 2:  # face logits
                    head.bias[1] = head.bias[0] + bias
                    if name == "pnet":
                        head.weight[1] *= PNET_FACE_GAIN[mode]
                else:  # box offsets, landmarks
                    head.weight.mul_(0.1)
                    head.bias.mul_(0.1)
        for net in nets.values():
            net.eval()


def _heads(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The output layers (2 face logits, 4 offsets, 10 landmarks), told from the trunk by their wide input."""
    return [m for m in net.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)
            and m.weight.shape[0] in (2, 4, 10) and m.weight.shape[1] >= 32]


def opensphere_nets(seed: int = 0, pnet_softmax: str = "channel") -> dict[str, torch.nn.Module]:
    nets = OpenSphereNets(pnet_softmax)
    _randomise(nets, seed, pnet_softmax)
    return nets


def facenet_nets(seed: int = 0) -> dict[str, torch.nn.Module]:
    nets = FacenetNets()
    _randomise(nets, seed, "channel")
    return nets


def write_npy(nets: dict[str, torch.nn.Module], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        np.save(folder / f"{name}.npy", {k: v.numpy() for k, v in net.state_dict().items()})
    return folder


def write_pt(nets: dict[str, torch.nn.Module], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, net in nets.items():
        torch.save(net.state_dict(), folder / f"{name}.pt")
    return folder


def photo(rng: np.random.Generator, size: tuple[int, int] = (120, 150), faces: int = 1) -> np.ndarray:
    """uint8 [h, w, 3]: a plain background with synthetic faces pasted at random scales and positions."""
    h, w = size
    out = np.empty((h, w, 3), np.uint8)
    out[:] = rng.integers(40, 200, 3)
    for _ in range(faces):
        side = int(rng.integers(min(h, w) // 3, min(h, w) * 3 // 4))
        face = synthetic.render(synthetic.Identity.sample(rng), rng)
        face = np.asarray(Image.fromarray(face).resize((side, side), Image.BILINEAR))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out[top:top + side, left:left + side] = face
    return out
