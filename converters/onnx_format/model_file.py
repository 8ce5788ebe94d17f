"""Load an ONNX file as a hostile input: refuse what is not an ONNX model in one line, and read weights stored
beside it (ONNX "external data") only from files inside the model's folder, within their sizes.

Needs the ``onnx`` package (``jsphere[onnx]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def onnx_module() -> ModuleType:
    """The ``onnx`` package, or a one-line error saying how to install it."""
    try:
        import onnx  # optional (jsphere[onnx]): every ONNX path asks for it here
    except ImportError:
        raise ValueError("reading ONNX files needs the onnx package: pip install 'jsphere[onnx]'") from None
    return onnx


def _external_tensors(model) -> list:
    onnx = onnx_module()
    tensors = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    for node in model.graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t") and attribute.t.data_location == onnx.TensorProto.EXTERNAL:
                tensors.append(attribute.t)
    return tensors


def _read_external(tensor, folder: Path, where: str) -> None:
    """Fill ``tensor.raw_data`` from its external file, checked: a plain file inside ``folder``, the byte range
    within the file, and exactly the bytes the tensor's shape and type need."""
    onnx = onnx_module()
    info = {entry.key: entry.value for entry in tensor.external_data}
    location = info.get("location", "")
    target = (folder / location).resolve()
    if (not location or Path(location).is_absolute() or ".." in Path(location).parts
            or not target.is_relative_to(folder.resolve())):
        raise ValueError(f"{where}: tensor {tensor.name!r} keeps its data in {location!r}, outside the model's "
                         "folder; refused")
    if not target.is_file():
        raise ValueError(f"{where}: tensor {tensor.name!r} keeps its data in {location}, which does not exist "
                         "beside the model")
    size = target.stat().st_size
    try:
        offset = int(info.get("offset", 0))
        length = int(info.get("length", size - offset))
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{where}: tensor {tensor.name!r} has malformed external data ({e})") from None
    count = 1
    for d in tensor.dims:
        count *= int(d)
    if offset < 0 or length < 0 or offset + length > size or any(d < 0 for d in tensor.dims) \
            or length != count * itemsize:
        raise ValueError(f"{where}: tensor {tensor.name!r} of shape {list(tensor.dims)} claims bytes "
                         f"{offset}..{offset + length} of {location} ({size} bytes); it needs {count * itemsize}")
    with open(target, "rb") as f:
        f.seek(offset)
        tensor.raw_data = f.read(length)
    tensor.data_location = onnx.TensorProto.DEFAULT
    del tensor.external_data[:]


def load(path: str | os.PathLike) -> onnx.ModelProto:
    """The ``ModelProto`` of ``path``; one-line errors for a missing, empty, unparsable or graph-less file."""
    onnx = onnx_module()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the .onnx file")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{path} is empty (0 bytes): not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends: not an ONNX file
        raise ValueError(f"{path} is not a readable ONNX model ({type(e).__name__}: {e})") from None
    if not model.HasField("graph") or not model.graph.node:
        raise ValueError(f"{path} is not an ONNX model: its {size} bytes hold no graph (expected a model exported "
                         "by torch.onnx, paddle2onnx, tf2onnx or insightface)")
    for tensor in _external_tensors(model):
        _read_external(tensor, path.parent, str(path))
    return model
