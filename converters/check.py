"""``python -m converters.check --pth FILE [--arch auto|ARCH] [--model-kwargs JSON] [--images PATH]
[--pairs LIST --data-dir DIR]``

Loads the file into our PyTorch reference definition of the model (read from the file, or ``--arch``) and into the
converted jsphere model, runs both on the same images (given ones, or rendered synthetic faces) with a progress
bar, and prints max |Δ| and min cosine of the embeddings — and, with a pair list, both frameworks' verification
accuracy side by side. A low cosine means the architecture is wrong even if the keys fit. When the keys fit two
models (``sfnet*`` vs ``sfnet*_deprecated``) the other one is embedded too and compared: with ``--pairs``, the
higher verification accuracy names the right one.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from converters import import_torch, infer, layouts, pth
from converters.torch_reference import backbones as torch_backbones
from jsphere import cli, observe

AGREE_COSINE = 0.9999
BATCH = 16


def synthetic_faces(count: int = 16, seed: int = 0) -> np.ndarray:
    from jsphere.data.synthetic import Identity, render

    rng = np.random.default_rng(seed)
    return np.stack([render(Identity.sample(rng), rng) for _ in range(count)])


def _torch_embed(reference, images: np.ndarray, label: str, progress: bool) -> np.ndarray:
    import torch

    out = []
    with observe.ImageProgress(len(images), label, enabled=progress) as bar, torch.no_grad():
        for start in range(0, len(images), BATCH):
            chunk = images[start:start + BATCH].astype(np.float32)
            x = torch.from_numpy(((chunk - 127.5) / 127.5).transpose(0, 3, 1, 2).copy())
            out.append(reference(x).numpy())
            bar.advance(len(chunk))
    return np.concatenate(out)


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.min())


def compare(found: infer.Found, state_dict: dict, file: str, images: np.ndarray, *, progress: bool = False) -> dict:
    """Embeddings of both frameworks (no flip) for the model ``found`` and their agreement."""
    import torch

    from jsphere import models
    from jsphere.inference import Embedder

    pure = import_torch.backbone_to_pure(found.arch, state_dict, found.embed_dim, found.kwargs, file)
    model = models.build(found.arch, embed_dim=found.embed_dim, **found.kwargs)
    models.load_pure_state(model, pure, source=file)
    ours = Embedder(model, batch_size=BATCH).embed(images, flip="none", label=f"jsphere {found.arch}",
                                                   progress=progress)
    reference = torch_backbones.build(found.arch, found.embed_dim, **found.kwargs)
    reference.load_state_dict({k: torch.from_numpy(np.array(v, np.float32 if np.asarray(v).dtype.kind == "f"
                                                            else np.asarray(v).dtype))
                               for k, v in state_dict.items()})
    theirs = _torch_embed(reference.eval(), images, f"torch {found.arch}", progress)
    return {"jsphere": ours, "torch": theirs, "max_abs_diff": float(np.max(np.abs(ours - theirs))),
            "min_cosine": _min_cosine(ours, theirs)}


def _load_images(a) -> tuple[np.ndarray, object]:
    """The images to embed and, given ``--pairs``, the evaluator that scores them (the one of ``--mode=eval``)."""
    if a.pairs:
        from jsphere.eval.evaluators import PairEvaluator

        evaluator = PairEvaluator({"name": Path(a.pairs).name, "type": "pairs", "path": a.pairs,
                                   "data_dir": a.data_dir})
        return evaluator.pairs.images, evaluator
    if a.images:
        from jsphere.data.inputs import load_inputs

        return load_inputs(a.images, flag="--images"), None
    return synthetic_faces(), None


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.check", description=__doc__)
    p.add_argument("--pth", required=True)
    import_torch.add_model_arguments(p, torch_backbones.names())
    p.add_argument("--images", default=None, help="folder, list file or .npy of aligned 112x112 images")
    p.add_argument("--pairs", default=None, help="a pair file (any published form): side-by-side verification accuracy")
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    state_dict, _, layout = layouts.split_checkpoint(pth.load(a.pth), a.pth)
    kwargs = import_torch.parse_json_object(a.model_kwargs, "--model-kwargs")
    fits = infer.infer(state_dict, layout, a.pth) if a.arch == import_torch.AUTO else []
    if len(fits) > 1:  # the keys cannot tell: check the first, compare with the others below
        found = replace(fits[0], kwargs={**fits[0].kwargs, **kwargs})
    else:
        found = import_torch.resolve(state_dict, layout, a.pth, arch=a.arch, kwargs=kwargs)
    print(f"checking {import_torch.describe(found)}")
    images, evaluator = _load_images(a)
    r = compare(found, state_dict, a.pth, images, progress=True)
    print(f"{found.arch}: {len(images)} images, max |jsphere - torch| = {r['max_abs_diff']:.3e}, "
          f"min cosine = {r['min_cosine']:.7f}")
    if evaluator is not None:
        for name in ("jsphere", "torch"):
            m = evaluator.score(r[name]).metrics
            print(f"  {name:<8} ACC {m['ACC']:.3f}  std_acc {m.get('std_acc', float('nan')):.3f}  AUC {m['AUC']:.3f}")
    siblings = fits[1:] if len(fits) > 1 else [f for f in _safe_infer(state_dict, layout, a.pth)
                                               if f.arch != found.arch]
    for other in siblings:
        alt = compare(replace(other, kwargs={**other.kwargs, **kwargs}), state_dict, a.pth, images, progress=True)
        line = (f"NOTE: the file also fits {other.arch} (same keys), which computes different embeddings "
                f"(min cosine to {found.arch}: {_min_cosine(alt['jsphere'], r['jsphere']):.4f}).")
        if evaluator is not None:
            acc = {n: evaluator.score(v).metrics["ACC"]
                   for n, v in ((found.arch, r["jsphere"]), (other.arch, alt["jsphere"]))}
            line += (f" Verification ACC: {found.arch} {acc[found.arch]:.3f}, {other.arch} {acc[other.arch]:.3f} — "
                     "the higher one is right.")
        else:
            line += " Give --pairs to see which one verifies faces; OpenSphere v1 VGGFace2 models are *_deprecated."
        print(line, file=sys.stderr)
    if r["min_cosine"] < AGREE_COSINE:
        print(f"WARNING: the two frameworks disagree (min cosine {r['min_cosine']:.5f} < {AGREE_COSINE}). The keys "
              f"fit {found.arch}, but the function differs: is it the right architecture? (sfnet* and "
              "sfnet*_deprecated share keys; OpenSphere v1 VGGFace2 models are *_deprecated)", file=sys.stderr)
        return 2
    return 0


def _safe_infer(state_dict: dict, layout: str, where: str) -> list[infer.Found]:
    try:
        return infer.infer(state_dict, layout, where)
    except ValueError:
        return []


if __name__ == "__main__":
    cli.run("converters.check", main)
