"""A jsphere checkpoint written as what OpenSphere's and insightface's own model classes load with ``strict=True``
(``export``), and the note an export prints when the model takes another input than the layout's code feeds
(``input_note``). ``python -m converters.export_torch`` is its command; the layouts are described there.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from converters.core import layouts, torch_state
from jsphere import outputs
from jsphere.input_convention import CONVENTIONS, InputConvention


def export(ckpt: str, layout: str, out: str, step: int | None = None, *, overwrite: bool = False) -> list[Path]:
    """Write the checkpoint as ``layout`` at ``out`` (all-or-nothing, under ``jsphere.outputs``' rule); returns
    the files written."""
    import torch  # optional (jsphere[torch]): this module loads without it

    if layout not in layouts.LAYOUTS:
        raise ValueError(f"--layout must be one of {layouts.LAYOUTS}, got {layout!r}")
    outputs.check_free(out, overwrite=overwrite, folder=layout == "opensphere-v1")
    backbone, head, weights = torch_state.torch_state_dicts(ckpt, step)

    def tensors(params):
        return OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in layouts.head_to_torch(params, layout).items())

    out = Path(out).expanduser()
    if layout in ("insightface", "opensphere-v2", "adaface"):
        obj = backbone if layout == "insightface" else {"backbone": backbone,
                                                         "head": tensors(head) if head else OrderedDict()}
        if layout == "adaface":
            obj = {"state_dict": OrderedDict((f"model.{k}", v) for k, v in backbone.items())}
        files = {out.name: obj}
    else:
        files = {f"backbone_{weights.step}.pth": OrderedDict((f"module.{k}", v) for k, v in backbone.items())}
        if head:
            files[f"head_{weights.step}.pth"] = OrderedDict((f"module.{k}", v) for k, v in tensors(head).items())
    if layout != "opensphere-v1":
        with outputs.staged_file(out, overwrite=overwrite) as tmp:
            _save(files[out.name], tmp)
        return [out]
    with outputs.staged_dir(out, overwrite=overwrite) as tmp:
        for name, state in files.items():
            _save(state, tmp / name)
    return [out / name for name in files]


def _save(obj: object, path: Path) -> None:
    """``torch.save`` through a file Python opens, so a place that cannot be written is an ``OSError`` that
    ``jsphere.outputs`` names by ``--out`` (torch's own writer raises a RuntimeError)."""
    import torch

    with open(path, "wb") as f:
        torch.save(obj, f)


def input_note(meta: dict, layout: str) -> str:
    """What input the exported model takes when it is not what the layout's own code feeds (RGB, mean = std = 127.5;
    AdaFace: BGR)."""
    convention = InputConvention.from_meta(meta.get("input"))
    expected = CONVENTIONS["bgr" if layout == "adaface" else "rgb"]
    if convention.pixels == expected.pixels:
        return ""
    return (f"NOTE: this model takes {convention.describe_pixels()} (recorded at import); {layout} code feeds "
            f"{expected.describe_pixels()}: convert the input accordingly")
