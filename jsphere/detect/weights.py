"""The detector checkpoint: one ``mtcnn.safetensors`` file holding the three networks' parameters under their NNX
paths (``pnet.conv1.kernel`` ... HWIO kernels, ``[in, out]`` dense kernels, ``prelu*.slope``), with metadata
naming the format and where the weights came from. ``converters.import_mtcnn`` writes it; nothing downloads it.

Its default place is ``$JSPHERE_MTCNN`` (a folder or the file) if set, else ``$XDG_CACHE_HOME/jsphere/mtcnn`` or
``~/.cache/jsphere/mtcnn``.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from jsphere import outputs
from jsphere.detect.nets import MTCNN

FILENAME = "mtcnn.safetensors"
FORMAT = "jsphere-mtcnn"
ENV = "JSPHERE_MTCNN"
IMPORT_HINT = ("import OpenSphere's MTCNN weights first: python -m converters.import_mtcnn --weights "
               "<opensphere>/face_alignment/mtcnn_pytorch/src/weights")


def default_dir() -> Path:
    """Where the detector checkpoint lives unless a path is given (see the module docstring)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "jsphere" / "mtcnn"


def checkpoint_file(path: str | os.PathLike | None = None) -> Path:
    """The checkpoint file for ``path`` (a folder holding ``mtcnn.safetensors``, or the file), default
    ``default_dir()``."""
    p = Path(path).expanduser() if path is not None else default_dir()
    return p / FILENAME if p.is_dir() or p.suffix != ".safetensors" else p


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every parameter of the detector, by checkpoint key, with its shape."""
    model = nnx.eval_shape(lambda: MTCNN(rngs=nnx.Rngs(0)))
    return {".".join(str(k) for k in path): tuple(v.shape)
            for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def _output(path: str | os.PathLike | None) -> tuple[Path, bool]:
    """Where ``save`` writes for ``path`` and whether that is a file (else a folder receiving ``FILENAME``)."""
    target = Path(path).expanduser() if path is not None else default_dir()
    return target, target.suffix == ".safetensors" and not target.is_dir()


def check_output(path: str | os.PathLike | None, *, overwrite: bool = False, flag: str = "--out") -> Path:
    """Refuse (naming ``flag``) what ``save`` would refuse to write at ``path``, before any work is done."""
    target, is_file = _output(path)
    return outputs.check_free(target, flag=flag, overwrite=overwrite, folder=not is_file)


def save(params: dict[str, np.ndarray], path: str | os.PathLike | None = None, *, source: str = "",
         overwrite: bool = False, flag: str = "--out") -> Path:
    """Write ``params`` (checkpoint key -> array, every key of ``expected_shapes()``) as a detector checkpoint at
    ``path`` (a folder, or a ``.safetensors`` file; default ``default_dir()``) under :mod:`jsphere.outputs`' rule:
    an existing output is replaced only with ``overwrite``, and a failure leaves nothing behind."""
    check(params, "the converted weights")
    target, is_file = _output(path)
    tensors = {k: np.ascontiguousarray(v, np.float32) for k, v in params.items()}
    metadata = {"format": FORMAT, "version": "1", "source": source}
    if is_file:
        with outputs.staged_file(target, flag=flag, overwrite=overwrite) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
        return target
    with outputs.staged_dir(target, flag=flag, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp / FILENAME), metadata=metadata)
    return target / FILENAME


def check(params: dict[str, np.ndarray], where: str) -> None:
    """Refuse a parameter set with missing, unexpected or misshapen entries, naming them."""
    shapes = expected_shapes()
    missing = sorted(set(shapes) - set(params))
    extra = sorted(set(params) - set(shapes))
    if missing or extra:
        raise ValueError(f"{where}: not MTCNN's P-Net/R-Net/O-Net (missing {missing[:4] or 'nothing'}, "
                         f"unexpected {extra[:4] or 'nothing'})")
    for key, shape in shapes.items():
        if tuple(params[key].shape) != shape:
            raise ValueError(f"{where}: {key} has shape {tuple(params[key].shape)}, expected {shape}")
        if not np.all(np.isfinite(params[key])):
            raise ValueError(f"{where}: {key} holds NaN or infinite values")


def load(path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The parameters of a detector checkpoint (``path`` as for ``checkpoint_file``)."""
    file = checkpoint_file(path)
    if not file.exists():
        where = f"{file}" if path is not None else f"{file} (the default location; set ${ENV} or pass a path)"
        raise FileNotFoundError(f"no MTCNN detector checkpoint at {where}: {IMPORT_HINT}")
    try:
        with safe_open(str(file), "numpy") as f:
            meta = f.metadata() or {}
        params = load_file(str(file))
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{file}: not a readable detector checkpoint ({e})") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{file}: not a jsphere MTCNN checkpoint (format {meta.get('format')!r}); {IMPORT_HINT}")
    check(params, str(file))
    return params


def to_model(params: dict[str, np.ndarray], dtype=None) -> MTCNN:
    """An ``MTCNN`` module holding ``params`` (computing in ``dtype``, float32 by default)."""
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = nnx.eval_shape(lambda: MTCNN(rngs=nnx.Rngs(0), **kwargs))  # no random init: every value is replaced
    pure: dict = {}
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = pure
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jax.numpy.asarray(value, jax.numpy.float32)
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, pure)
    nnx.update(model, state)
    return model
