"""Stage ``convert``: a random-weight PyTorch backbone (``converters.torch_reference.random_weights``: random BN
affines and PReLU slopes, BN statistics measured on random images), imported with ``converters.import_torch``,
embeds the same synthetic faces with jsphere on the device as with PyTorch on the device.

Pass: min cosine >= 0.9999 for jsphere float32 against PyTorch float32, >= 0.999 for jsphere bfloat16 against
PyTorch float32 (PyTorch's own bfloat16 autocast is reported beside it). Both frameworks use their GPU
defaults: TF32 convolutions (cuDNN) and, in XLA, TF32 matmuls.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import torch

from benchmarks.common import torch_device
from benchmarks.gpu_check.context import Context
from benchmarks.gpu_check.profiles import Profile
from converters.pth_format import pth_import
from converters.torch_reference.random_weights import normalised_nchw, random_torch_model
from jsphere.data import synthetic
from jsphere.data.decode import decode_image
from jsphere.inference import Embedder

COS_FP32, COS_BF16 = 0.9999, 0.999


def faces(folder, n: int) -> np.ndarray:
    """``n`` synthetic aligned faces (uint8 [n, 112, 112, 3]) of n // 4 identities."""
    ids = max(2, -(-n // 4))
    synthetic.generate(folder, identities=ids, images_per_identity=4, holdout_identities=2, holdout_images=2, pairs=2)
    paths = sorted((folder / "train").rglob("*.jpg"))[:n]
    return np.stack([decode_image(p.read_bytes(), what=str(p)) for p in paths])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def run(name: str, profile: Profile, ctx: Context) -> None:
    model_spec = profile.convert_model
    images = faces(ctx.work / "convert_faces", profile.convert_images)
    reference = random_torch_model(model_spec.arch, seed=0, embed_dim=512, **model_spec.kwargs)
    torch.save(reference.state_dict(), ctx.work / "convert_backbone.pth")
    pth_import.import_checkpoint(model_spec.arch, str(ctx.work / "convert_backbone.pth"),
                                 str(ctx.work / "convert_ckpt"))
    dev = torch_device(profile.device)
    reference = reference.to(dev).eval()
    x = torch.from_numpy(normalised_nchw(images)).to(dev)
    with torch.no_grad():
        torch_fp32 = reference(x).float().cpu().numpy()
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            torch_bf16 = reference(x).float().cpu().numpy()
    ours = {}
    for dtype, jdtype in (("fp32", jnp.float32), ("bf16", jnp.bfloat16)):
        embedder = Embedder.from_checkpoint(ctx.work / "convert_ckpt", dtype=jdtype, batch_size=len(images))
        ours[dtype] = embedder.embed(images, flip="none")
    result = {"arch": model_spec.arch, "kwargs": model_spec.kwargs, "images": len(images),
              "cos_min_fp32": float(cosines(ours["fp32"], torch_fp32).min()),
              "cos_min_bf16": float(cosines(ours["bf16"], torch_fp32).min()),
              "cos_min_torch_bf16": float(cosines(torch_bf16, torch_fp32).min()),
              "max_abs_rel_fp32": float(np.abs(ours["fp32"] - torch_fp32).max() / np.abs(torch_fp32).max())}
    ctx.record(**result)
    print(f"  {model_spec.arch}: min cos fp32 {result['cos_min_fp32']:.6f}, bf16 {result['cos_min_bf16']:.6f} "
          f"(PyTorch bf16 {result['cos_min_torch_bf16']:.6f})", flush=True)
    ctx.check(f"jsphere fp32 min cos {result['cos_min_fp32']:.6f} >= {COS_FP32}", result["cos_min_fp32"] >= COS_FP32)
    ctx.check(f"jsphere bf16 min cos {result['cos_min_bf16']:.6f} >= {COS_BF16}", result["cos_min_bf16"] >= COS_BF16)
