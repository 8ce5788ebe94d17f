"""``python -m converters.check --arch ARCH --pth FILE [--images PATH] [--pairs LIST --data-dir DIR]``

Loads the file into our PyTorch reference definition of ARCH and into the converted jsphere model, runs both
on the same images (given ones, or rendered synthetic faces), and prints max |Δ| and min cosine of the
embeddings — and, with a pair list, both frameworks' verification accuracy side by side. A low cosine means
the architecture is wrong even if the keys fit (``sfnet*`` vs ``sfnet*_deprecated``).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from converters import import_torch, layouts, pth, torch_models

AGREE_COSINE = 0.9999


def synthetic_faces(count: int = 16, seed: int = 0) -> np.ndarray:
    from jsphere.data.synthetic import Identity, render

    rng = np.random.default_rng(seed)
    return np.stack([render(Identity.sample(rng), rng) for _ in range(count)])


def compare(arch: str, file: str, images: np.ndarray, embed_dim: int | None = None) -> dict:
    """Embeddings of both frameworks (no flip) and their agreement."""
    import torch

    from jsphere import models
    from jsphere.inference import Embedder

    state_dict, _, layout = layouts.split_checkpoint(pth.load(file), file)
    dim = embed_dim or import_torch.embed_dim_of(state_dict)
    kwargs = import_torch.model_kwargs(arch, state_dict, layout)
    pure = import_torch.backbone_to_pure(arch, state_dict, dim, kwargs, file)
    model = models.build(arch, embed_dim=dim, **kwargs)
    models.load_pure_state(model, pure, source=file)
    ours = Embedder(model, batch_size=16).embed(images, flip="none")
    reference = torch_models.build(arch, dim, **kwargs)
    reference.load_state_dict(
        {
            k: torch.from_numpy(np.asarray(v, np.float32).copy())
            if np.asarray(v).dtype.kind == "f"
            else torch.from_numpy(np.asarray(v))
            for k, v in state_dict.items()
        }
    )
    reference.eval()
    x = torch.from_numpy(((images.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        theirs = reference(x).numpy()
    cos = np.sum(ours * theirs, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    return {
        "jsphere": ours,
        "torch": theirs,
        "max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "min_cosine": float(np.min(cos)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=torch_models.names())
    p.add_argument("--pth", required=True)
    p.add_argument("--images", default=None, help="folder, list file or .npy of aligned 112x112 images")
    p.add_argument("--pairs", default=None, help="OpenSphere pair list for side-by-side verification accuracy")
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    if a.pairs:
        from jsphere.data.images import load_images
        from jsphere.data.pairs import read_pair_list

        pair_list = read_pair_list(a.pairs, a.data_dir)
        images = load_images(pair_list.paths)
    elif a.images:
        from jsphere.embed import load_inputs

        images = load_inputs(a.images)
    else:
        images = synthetic_faces()
    r = compare(a.arch, a.pth, images)
    print(
        f"{a.arch}: {len(images)} images, max |jsphere - torch| = {r['max_abs_diff']:.3e}, "
        f"min cosine = {r['min_cosine']:.7f}"
    )
    if a.pairs:
        from jsphere.eval.pairs import pair_metrics

        for name in ("jsphere", "torch"):
            m = pair_metrics(r[name], pair_list.pairs, pair_list.labels)
            print(f"  {name:<8} ACC {m['ACC']:.3f}  std_acc {m.get('std_acc', float('nan')):.3f}  AUC {m['AUC']:.3f}")
    state_dict, _, _ = layouts.split_checkpoint(pth.load(a.pth), a.pth)
    siblings = [n for n in import_torch.suggest_arch(state_dict, import_torch.embed_dim_of(state_dict)) if n != a.arch]
    for other in siblings:
        alt = compare(other, a.pth, images)
        cos = np.sum(alt["jsphere"] * r["jsphere"], 1) / (
            np.linalg.norm(alt["jsphere"], axis=1) * np.linalg.norm(r["jsphere"], axis=1)
        )
        line = (
            f"NOTE: the file also fits {other} (same keys), which computes different embeddings "
            f"(min cosine to {a.arch}: {cos.min():.4f})."
        )
        if a.pairs:
            from jsphere.eval.pairs import pair_metrics

            acc = {
                n: pair_metrics(v, pair_list.pairs, pair_list.labels)["ACC"]
                for n, v in ((a.arch, r["jsphere"]), (other, alt["jsphere"]))
            }
            line += (
                f" Verification ACC: {a.arch} {acc[a.arch]:.3f}, {other} {acc[other]:.3f} — the higher one is right."
            )
        else:
            line += " Give --pairs to see which one verifies faces; OpenSphere v1 VGGFace2 models are *_deprecated."
        print(line, file=sys.stderr)
    if r["min_cosine"] < AGREE_COSINE:
        print(
            f"WARNING: the two frameworks disagree (min cosine {r['min_cosine']:.5f} < {AGREE_COSINE}). The keys "
            f"fit {a.arch}, but the function differs: is it the right architecture? (sfnet* and sfnet*_deprecated "
            "share keys; OpenSphere v1 VGGFace2 models are *_deprecated)",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
