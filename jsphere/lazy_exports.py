"""Names a package exports, imported on first use (PEP 562), so that importing the package (which every
``python -m jsphere.<command>`` does first) does not wait for JAX, Flax or Grain: a command's ``--help`` answers at
once. Each package lists its names once, with the module that defines each::

    EXPORTS = {"Embedder": "jsphere.inference", "models": "jsphere.models"}  # a submodule names itself
    __all__ = ["Embedder", "models"]  # the same names, written out for linters and type checkers
    __getattr__, __dir__ = lazy_exports.attach(__name__, EXPORTS)

and imports the same names under ``typing.TYPE_CHECKING`` for type checkers (``tests/test_public_api.py`` checks
that the three agree).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def attach(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: ``name`` is taken from module ``exports[name]`` when first
    used (the module itself when it is ``<package>.<name>``)."""

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module)
        return imported if module == f"{package}.{name}" else getattr(imported, name)

    def dir_() -> list[str]:
        return sorted(exports)

    return getattr_, dir_
