"""``python -m converters.check --pth FILE [--arch auto|ARCH] [--model-kwargs JSON] [--images PATH]
[--pairs LIST --data-dir DIR] [--input-convention CONVENTION]``

Loads the file into our PyTorch reference definition of the model (read from the file, or ``--arch``) and into the
converted jsphere model, runs both on the same images (given ones, or rendered synthetic faces), both fed the input
convention ``converters.import_torch`` records for the file (foamliu's ImageNet normalisation, AdaFace's BGR ...;
``--input-convention`` overrides), with a progress bar, and prints max |Δ| and min cosine of the embeddings — and,
with a pair list, both frameworks' verification accuracy side by side. A low cosine means the architecture is wrong
even if the keys fit. When the keys fit two models (``sfnet*`` vs ``sfnet*_deprecated``) the other one is embedded
too and compared: with ``--pairs``, the higher verification accuracy names the right one.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from converters.core import agreement, arguments, backbone_import, conventions, layouts
from converters.pth_format import crosscheck, pth_file
from converters.torch_reference import backbones as torch_backbones
from jsphere import cli, errors


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.check", description=__doc__)
    p.add_argument("--pth", required=True)
    arguments.add_model_arguments(p, torch_backbones.names())
    p.add_argument("--images", default=None, help="folder, list file or .npy of aligned 112x112 images")
    p.add_argument("--pairs", default=None, help="a pair file (any published form): side-by-side verification accuracy")
    p.add_argument("--data-dir", default=None, help="with --pairs: the folder its image paths are relative to")
    conventions.add_argument(p, "the one converters.import_torch records for the file")
    a = p.parse_args(argv)
    if a.data_dir and not a.pairs:
        raise errors.UserError(f"--data-dir {a.data_dir}: --data-dir goes with --pairs (the folder of the pair "
                               "list's images)")
    override = conventions.from_argument(a.input_convention)
    state_dict, _, layout = layouts.split_checkpoint(pth_file.load(a.pth), a.pth)
    kwargs = arguments.parse_json_object(a.model_kwargs, "--model-kwargs")
    found, alternatives, decision = crosscheck.choose(state_dict, layout, a.pth, arch=a.arch, kwargs=kwargs,
                                                      input_convention=override)
    print(f"checking {backbone_import.describe(found)}")
    print(f"both frameworks are fed {decision.convention.describe_pixels()}, the input an import records "
          f"({decision.why}; --input-convention changes it)")
    images, evaluator = crosscheck.load_images(a.pairs, a.images, a.data_dir)
    r = crosscheck.compare(found, state_dict, a.pth, images, progress=True)
    print(f"{found.arch}: {len(images)} images, max |jsphere - torch| = {r['max_abs_diff']:.3e}, "
          f"min cosine = {r['min_cosine']:.7f}")
    if evaluator is not None:
        for name in ("jsphere", "torch"):
            m = evaluator.score(r[name]).metrics
            print(f"  {name:<8} ACC {m['ACC']:.3f}  std_acc {m.get('std_acc', float('nan')):.3f}  AUC {m['AUC']:.3f}")
    siblings = alternatives or crosscheck.other_fits(found, state_dict, layout, a.pth)
    for other in siblings:
        alt = crosscheck.compare(replace(other, kwargs={**other.kwargs, **kwargs}), state_dict, a.pth, images,
                                 progress=True)
        line = (f"NOTE: the file also fits {other.arch} (same keys), which computes different embeddings "
                f"(min cosine to {found.arch}: {agreement.min_cosine(alt['jsphere'], r['jsphere']):.4f}).")
        if evaluator is not None:
            acc = {n: evaluator.score(v).metrics["ACC"]
                   for n, v in ((found.arch, r["jsphere"]), (other.arch, alt["jsphere"]))}
            line += (f" Verification ACC: {found.arch} {acc[found.arch]:.3f}, {other.arch} {acc[other.arch]:.3f} — "
                     "the higher one is right.")
        else:
            line += " Give --pairs to see which one verifies faces; OpenSphere v1 VGGFace2 models are *_deprecated."
        print(line, file=sys.stderr)
    if r["min_cosine"] < crosscheck.AGREE_COSINE:
        print(f"WARNING: the two frameworks disagree (min cosine {r['min_cosine']:.5f} < {crosscheck.AGREE_COSINE}). "
              f"The keys fit {found.arch}, but the function differs: is it the right architecture? (sfnet* and "
              "sfnet*_deprecated share keys; OpenSphere v1 VGGFace2 models are *_deprecated)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    cli.run("converters.check", main)
