"""``python -m benchmarks.detect [--weights DIR] [--photos DIR] [--sizes 250x250 1280x720] [--images 8]
[--rounds 5] [--pnet-softmax channel|opensphere]``

Face detection throughput (images/s, one photo at a time, as ``jsphere.align`` and ``jsphere.embed --detect``
run it) of jsphere's MTCNN and of the PyTorch reference that follows OpenSphere's code
(``converters.torch_reference.mtcnn``: one P-Net call per pyramid scale, crops resized one by one), with the same
weights on the same photos, timed in turns on every core.

``--weights``: OpenSphere's ``face_alignment/mtcnn_pytorch/src/weights`` (or facenet-pytorch's ``data``) — real
weights find real faces, so both sides do the work a real photo costs; without it the networks are random (the
timing then says less). ``--photos``: a folder of photos, each resized to every ``--sizes`` entry (covering it,
centre crop); without it, synthetic photos with faces pasted in. Both detectors must find the same faces: the
benchmark reports it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.common import interleaved, machine, setup_threads
from converters.mtcnn_weights import mtcnn_import
from converters.torch_reference import mtcnn as torch_mtcnn
from jsphere import cli, errors
from jsphere.data import synthetic
from jsphere.detect import Detector, DetectorConfig, photos, weights
from jsphere.memory import available_memory


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise errors.UserError(f"--sizes {text}: expected WIDTHxHEIGHT, e.g. 1280x720") from None
    if w < 1 or h < 1:
        raise errors.UserError(f"--sizes {text}: both sides must be >= 1")
    if w * h > photos.MAX_PIXELS:
        raise errors.UserError(f"--sizes {text}: over the {photos.MAX_PIXELS >> 20} megapixels a photo may have")
    return w, h


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` scaled to cover ``size`` (width, height) and centre-cropped to it."""
    h, w = image.shape[:2]
    r = max(size[0] / w, size[1] / h)
    scaled = np.asarray(Image.fromarray(image).resize((max(size[0], round(w * r)), max(size[1], round(h * r))),
                                                      Image.BILINEAR))
    top, left = (scaled.shape[0] - size[1]) // 2, (scaled.shape[1] - size[0]) // 2
    return np.ascontiguousarray(scaled[top:top + size[1], left:left + size[0]])


def _synthetic(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        photo = np.empty((480, 640, 3), np.uint8)
        photo[:] = rng.integers(30, 220, 3)
        for _ in range(3):
            side = int(rng.integers(60, 200))
            face = Image.fromarray(synthetic.render(synthetic.Identity.sample(rng), rng)).resize((side, side))
            top, left = int(rng.integers(0, 480 - side)), int(rng.integers(0, 640 - side))
            photo[top:top + side, left:left + side] = np.asarray(face)
        out.append(photo)
    return out


def _params(weights_dir: str | None) -> dict[str, np.ndarray]:
    if weights_dir:
        return mtcnn_import.convert(weights_dir)[0]
    rng = np.random.default_rng(0)
    return {k: (rng.standard_normal(s) * (0.3 if len(s) > 1 else 0.05)).astype(np.float32)
            for k, s in weights.expected_shapes().items()}


def _torch_nets(params: dict[str, np.ndarray], pnet_softmax: str):
    """The reference networks holding ``params`` (jsphere's layout mapped back to OpenSphere's state_dict)."""
    nets = torch_mtcnn.OpenSphereNets(pnet_softmax)
    for net, module in nets.items():
        state = {}
        for layer, source in mtcnn_import.LAYOUTS["opensphere"][net].items():
            if layer.startswith("prelu"):
                state[f"{source}.weight"] = params[f"{net}.{layer}.slope"]
                continue
            kernel = params[f"{net}.{layer}.kernel"]
            if kernel.ndim == 4:
                kernel = kernel.transpose(3, 2, 0, 1)
            else:
                kernel = kernel.T
                if (net, layer) in mtcnn_import.FLATTENED:  # jsphere's (H, W, C) flatten -> OpenSphere's (C, W, H)
                    h, w, c = mtcnn_import.FLATTENED[net, layer]
                    kernel = kernel.reshape(-1, h, w, c).transpose(0, 3, 2, 1).reshape(kernel.shape[0], -1)
            state[f"{source}.weight"], state[f"{source}.bias"] = kernel, params[f"{net}.{layer}.bias"]
        module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
        module.eval()
    return nets


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="benchmarks.detect", description=__doc__)
    p.add_argument("--weights", default=None, help="folder of pnet/rnet/onet .npy (OpenSphere) or .pt")
    p.add_argument("--photos", default=None, help="folder of photos (default: synthetic ones)")
    p.add_argument("--sizes", nargs="+", default=["250x250", "1280x720"])
    p.add_argument("--images", type=int, default=8, help="photos per size")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--pnet-softmax", choices=("channel", "opensphere"), default="channel")
    a = p.parse_args(argv)
    if a.images < 1 or a.rounds < 1:
        raise errors.UserError(f"--images {a.images} / --rounds {a.rounds}: both must be >= 1")
    sizes = [_size(text) for text in a.sizes]
    memory = available_memory()
    need = 2 * 3 * a.images * max(w * h for w, h in sizes)  # each photo as an array and as a PIL image, at once
    if memory is not None and need > memory:
        raise errors.UserError(f"--images {a.images:,}: {a.images:,} photos of the largest of --sizes need "
                               f"{need / 2**30:,.1f} GiB, and this machine has {memory / 2**30:,.1f} GiB available; "
                               "ask for fewer")
    if a.photos and not Path(a.photos).is_dir():
        raise errors.UserError(f"--photos {a.photos}: not a folder (give a folder of .jpg/.jpeg/.png photos)")
    torch.set_num_threads(setup_threads("cpu"))
    params = _params(a.weights)
    detector = Detector(weights.to_model(params), DetectorConfig(pnet_softmax=a.pnet_softmax))
    nets = _torch_nets(params, a.pnet_softmax)
    if a.photos:
        files = sorted(f for f in Path(a.photos).iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise errors.UserError(f"--photos {a.photos}: no .jpg/.jpeg/.png photos in this folder")
        sources = [photos.read_photo(f) for f in files]
    else:
        sources = _synthetic(a.images)
    print(f"MTCNN detection img/s ({'given' if a.weights else 'random'} weights, P-Net softmax {a.pnet_softmax}), "
          f"median of {a.rounds} interleaved rounds, on {machine()}")
    rows = []
    for size in sizes:
        batch = [_fit(sources[i % len(sources)], size) for i in range(a.images)]
        pil = [Image.fromarray(b) for b in batch]
        ours = [len(detector(b).boxes) for b in batch]  # also compiles every bucket these photos need
        theirs = [len(torch_mtcnn.detect_faces(im, nets)[0]) for im in pil]
        seconds = interleaved({"jsphere": lambda batch=batch: [detector(b) for b in batch],
                               "torch": lambda pil=pil: [torch_mtcnn.detect_faces(im, nets) for im in pil]},
                              a.rounds, warmup=1, settle=0)
        row = {"size": f"{size[0]}x{size[1]}", "images": a.images, "faces_jsphere": sum(ours),
               "faces_torch": sum(theirs), "same_faces": ours == theirs,
               **{f"{k}_img_per_s": a.images / v for k, v in seconds.items()}}
        rows.append(row)
        print(f"  {row['size']:>9}  jsphere {row['jsphere_img_per_s']:7.2f}  PyTorch {row['torch_img_per_s']:7.2f}  "
              f"jsphere/PyTorch {seconds['torch'] / seconds['jsphere']:.2f}x  faces {sum(ours)} / {sum(theirs)}",
              flush=True)
    print(json.dumps({"benchmark": "detect", "machine": machine(), "rows": rows}))
    return 0


if __name__ == "__main__":
    cli.run("benchmarks.detect", main)
