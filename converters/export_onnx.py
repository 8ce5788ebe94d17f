"""``python -m converters.export_onnx --ckpt DIR --out model.onnx [--step N] [--opset 17] [--no-verify]``:
any jsphere backbone as an ONNX model that runs where insightface's released ones do.

The checkpoint's weights fill our PyTorch reference definition of the model
(``converters.torch_reference.backbones``, the same tensors ``converters.export_torch`` writes), which PyTorch's
TorchScript-based exporter writes in eval mode: input ``input`` float32 [N, 3, 112, 112] RGB in ``(x - 127.5) /
127.5`` (insightface's ``ArcFaceONNX`` uses mean = std = 127.5 for graphs without in-graph normalisation, so it
needs no setting), output ``embedding`` [N, D] (not normalised), dynamic batch size; BatchNorms after convolutions
are folded into them by the exporter. A model imported with another input convention takes this input too: a BGR
model's channel swap is folded into its first convolution, another normalisation becomes an in-graph multiply-add
(``converters.conventions``). With onnxruntime installed the file is checked after writing: onnxruntime and jsphere
embed the same rendered faces and must agree (min cosine >= 0.99999). Needs ``pip install 'jsphere[torch,onnx]'``.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import numpy as np

from converters import conventions, export_torch
from jsphere import cli, outputs
from jsphere.input_convention import InputConvention

AGREE_COSINE = 0.99999
OPSETS = range(7, 21)  # PyTorch's TorchScript exporter writes opsets 7-20; every backbone exports and imports back


def check_opset(opset: int) -> None:
    if opset not in OPSETS:
        raise ValueError(f"--opset {opset}: the supported ONNX opsets are {OPSETS[0]} to {OPSETS[-1]} (what "
                         "PyTorch's TorchScript exporter writes; 17 is the default)")


def _reference_model(ckpt: str, step: int | None):
    from converters.torch_reference import backbones as torch_backbones

    state, _, weights = export_torch.torch_state_dicts(ckpt, step)
    spec = weights.meta["model"]
    model = torch_backbones.build(spec["name"], int(spec["embed_dim"]), **spec.get("kwargs", {}))
    model.load_state_dict(state, strict=True)
    convention = InputConvention.from_meta(weights.meta.get("input"))  # imported from AdaFace, foamliu ...
    return conventions.torch_input_adapter(model.eval(), convention), weights


def _write(model, path: Path, opset: int) -> None:
    import torch

    options = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model, (torch.zeros(1, 3, 112, 112),), str(path), input_names=["input"],
                          output_names=["embedding"], dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
                          opset_version=opset, do_constant_folding=True, **options)


def verify(onnx_file: str | Path, ckpt: str, step: int | None = None, images: np.ndarray | None = None) -> dict:
    """Embed ``images`` (default: rendered faces) with onnxruntime and with jsphere; max |Δ| and min cosine."""
    import onnxruntime

    from converters.check import synthetic_faces
    from jsphere.inference import Embedder

    images = synthetic_faces(4) if images is None else images
    ours = Embedder.from_checkpoint(ckpt, step=step, batch_size=len(images)).embed(images, flip="none")
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = ((images.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
    cos = np.sum(ours * theirs, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "min_cosine": float(cos.min())}


def export(ckpt: str, out: str, *, step: int | None = None, opset: int = 17, check: bool = True,
           overwrite: bool = False) -> dict | None:
    """Write ``out`` (all-or-nothing); with ``check`` (and onnxruntime installed) return ``verify``'s figures."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import torch  # noqa: F401
    except ImportError as e:
        raise ValueError(f"exporting to ONNX needs torch and onnx ({e.name} is missing): "
                         "pip install 'jsphere[torch,onnx]'") from None
    check_opset(opset)
    outputs.check_free(out, overwrite=overwrite, folder=False)
    model, weights = _reference_model(ckpt, step)
    with outputs.staged_file(out, overwrite=overwrite) as tmp:
        _write(model, tmp, opset)
        if not check:
            return None
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return None
        figures = verify(tmp, ckpt, weights.step)
        if figures["min_cosine"] < AGREE_COSINE:
            raise ValueError(f"{out}: onnxruntime and jsphere disagree (min cosine {figures['min_cosine']:.6f}); "
                             "the file was not written")
    return figures


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog="converters.export_onnx", description=__doc__)
    p.add_argument("--ckpt", required=True, help="jsphere checkpoint (workdir, converted model)")
    p.add_argument("--out", required=True, help="model.onnx")
    p.add_argument("--step", type=int, default=None)
    p.add_argument("--opset", type=int, default=17, help=f"ONNX opset, {OPSETS[0]} to {OPSETS[-1]} (default 17)")
    p.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    figures = export(a.ckpt, a.out, step=a.step, opset=a.opset, check=not a.no_verify, overwrite=a.overwrite)
    print(f"wrote {a.out}")
    if figures:
        print(f"onnxruntime vs jsphere on rendered faces: max |Δ| = {figures['max_abs_diff']:.3e}, "
              f"min cosine = {figures['min_cosine']:.7f}")
    return 0


if __name__ == "__main__":
    cli.run("converters.export_onnx", main)
