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
        with outputs.staged_file(out, overwrite=overwrite) as tmp:
            torch.save(obj, tmp)
        return [out]
    files = {f"backbone_{weights.step}.pth": OrderedDict((f"module.{k}", v) for k, v in backbone.items())}
    if head:
        files[f"head_{weights.step}.pth"] = OrderedDict((f"module.{k}", v) for k, v in tensors(head).items())
    with outputs.staged_dir(out, overwrite=overwrite) as tmp:
        for name, state in files.items():
            torch.save(state, tmp / name)
    return [out / name for name in files]


def input_note(meta: dict, layout: str) -> str:
    """What input the exported model takes when it is not what the layout's own code feeds (RGB, mean = std = 127.5;
    AdaFace: BGR)."""
    convention = InputConvention.from_meta(meta.get("input"))
    expected = CONVENTIONS["bgr" if layout == "adaface" else "rgb"]
    if convention == expected:
        return ""
    return (f"NOTE: this model takes {convention.describe()} (recorded at import); {layout} code feeds "
            f"{expected.describe()}: convert the input accordingly")
