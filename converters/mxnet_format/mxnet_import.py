"""An insightface MXNet model (``model-XXXX.params`` and, when present, ``model-symbol.json``; read without mxnet) as
a jsphere checkpoint directory: the files read (``model_files``), the network rewritten as a torch-named state_dict
(``networks``), then resolved, converted and saved as every importer does (``converters.core.backbone_import``).
``python -m converters.import_mxnet`` is its command.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from converters.core import backbone_import, conventions
from converters.core.found import Found
from converters.mxnet_format import model_files, networks
from jsphere import outputs


def symbol_path_for(params: Path) -> Path:
    """``model-0000.params`` -> ``model-symbol.json``."""
    return params.with_name(re.sub(r"-\d+\.params$", "", params.name) + "-symbol.json")


def import_params(params: str, out: str, *, symbol: str | None = None, arch: str = backbone_import.AUTO,
                  kwargs: dict | None = None, report: Callable[[Found, str], None] | None = None,
                  overwrite: bool = False) -> Path:
    """Import ``params`` (and its symbol JSON, ``symbol`` or the one beside it) into a checkpoint at ``out``;
    ``arch`` may be ``'auto'``. ``report(found, layout)`` is called before anything is written."""
    outputs.check_free(out, overwrite=overwrite)
    params_path = Path(params)
    if not params_path.exists():
        raise FileNotFoundError(f"{params_path} does not exist")
    symbol_file = Path(symbol) if symbol else symbol_path_for(params_path)
    if symbol and not symbol_file.exists():
        raise FileNotFoundError(f"{symbol_file} does not exist")
    arrays = model_files.read_params(params_path)
    sym = model_files.read_symbol(symbol_file) if symbol_file.exists() else None
    sd, network = networks.to_torch_state_dict(arrays, sym, str(params_path))
    if sym is None:
        print(f"converters.import_mxnet: no {symbol_file.name} beside the params: using insightface's symbol "
              "definitions for BatchNorm eps/fix_gamma and the input map (x - 127.5) * 0.0078125", file=sys.stderr)
    layout = "insightface-mxnet"
    found = backbone_import.resolve(sd, layout, str(params_path), arch=arch, kwargs=kwargs)
    decision = conventions.decide(found.origin, layout, params_path, arch=found.arch,
                                  pixels_why="the symbol's (x - 127.5) * 0.0078125 folded into the first convolution")
    found = replace(found, input=decision.convention.to_meta())
    if report:
        report(found, f"{network}, {layout}")
    pure = backbone_import.backbone_to_pure(found.arch, sd, found.embed_dim, found.kwargs, str(params_path))
    match = re.search(r"-(\d+)\.params$", params_path.name)
    source = {"converter": "converters.import_mxnet", "file": str(params_path), "layout": layout,
              "network": network, "symbol": str(symbol_file) if sym else None,
              "mxnet_epoch": int(match.group(1)) if match else None,  # a save counter, not a training step
              **decision.source_meta()}
    return backbone_import.save(out, found=found, pure=pure, source=source, overwrite=overwrite)
