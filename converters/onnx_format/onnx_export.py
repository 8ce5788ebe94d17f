"""A jsphere checkpoint as an ONNX model (``export``): its weights fill our PyTorch reference definition of the model
(``converters.core.torch_state``, the tensors ``converters.export_torch`` writes), adapted to take jsphere's input
(``converters.core.conventions.torch_input_adapter``), which PyTorch's TorchScript exporter writes (``write``), the
file's metadata saying what it takes, the alignment of the model's faces included (``record_input``); onnxruntime
and jsphere then embed the same rendered faces and must agree (``verify``).
``python -m converters.export_onnx`` is its command. Needs torch and onnx (``jsphere[torch,onnx]``).
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from converters.core import agreement, conventions, torch_state
from jsphere import checkpoint, outputs
from jsphere.inference import Embedder
from jsphere.input_convention import JSPHERE, InputConvention

if TYPE_CHECKING:
    import torch

AGREE_COSINE = 0.99999
OPSETS = range(7, 21)  # PyTorch's TorchScript exporter writes opsets 7-20; every backbone exports and imports back


def check_opset(opset: int) -> None:
    """Refuse an opset PyTorch's TorchScript exporter does not write."""
    if opset not in OPSETS:
        raise ValueError(f"--opset {opset}: the supported ONNX opsets are {OPSETS[0]} to {OPSETS[-1]} (what "
                         "PyTorch's TorchScript exporter writes; 17 is the default)")


def _reference_model(ckpt: str, step: int | None) -> tuple[torch.nn.Module, checkpoint.Weights]:
    # torch is optional (jsphere[torch,onnx]): imported where it is needed, so that ``export`` can say so
    from converters.torch_reference import backbones as torch_backbones

    state, _, weights = torch_state.torch_state_dicts(ckpt, step)
    spec = weights.meta["model"]
    model = torch_backbones.build(spec["name"], int(spec["embed_dim"]), **spec.get("kwargs", {}))
    model.load_state_dict(state, strict=True)
    convention = InputConvention.from_meta(weights.meta.get("input"))  # imported from AdaFace, foamliu ...
    return conventions.torch_input_adapter(model.eval(), convention), weights


def write(model: torch.nn.Module, path: Path, opset: int) -> None:
    """``model`` (a torch module taking jsphere's input) as the ONNX file ``export`` writes: PyTorch's TorchScript
    exporter in eval mode, input ``input`` [N, 3, 112, 112], output ``embedding`` [N, D], dynamic batch size."""
    import torch  # optional, as in _reference_model

    options = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model, (torch.zeros(1, 3, 112, 112),), str(path), input_names=["input"],
                          output_names=["embedding"], dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}},
                          opset_version=opset, do_constant_folding=True, **options)


def record_input(path: Path, convention: InputConvention) -> None:
    """Say in the file's ``metadata_props`` (``conventions.ONNX_INPUT_KEY``) what the graph takes: jsphere's pixels
    and the alignment of the model's training faces, which ``converters.import_onnx`` reads back."""
    import onnx  # optional, as in _reference_model

    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = conventions.ONNX_INPUT_KEY, json.dumps(convention.to_meta())
    onnx.save(model, str(path))


def verify(onnx_file: str | Path, ckpt: str, step: int | None = None, images: np.ndarray | None = None) -> dict:
    """Embed ``images`` (default: rendered faces) with onnxruntime and with jsphere; max |Δ| and min cosine."""
    import onnxruntime  # optional (jsphere[onnx]): export skips this check without it

    images = agreement.synthetic_faces(4) if images is None else images
    ours = Embedder.from_checkpoint(ckpt, step=step, batch_size=len(images)).embed(images, flip="none")
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x = ((images.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()
    theirs = session.run(None, {session.get_inputs()[0].name: x})[0]
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "min_cosine": agreement.min_cosine(ours, theirs)}


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
    takes = JSPHERE.with_alignment(InputConvention.from_meta(weights.meta.get("input")).alignment)
    with outputs.staged_file(out, overwrite=overwrite) as tmp:
        write(model, tmp, opset)
        record_input(tmp, takes)
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
