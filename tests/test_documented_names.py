"""Every name the README gives a user exists: each ``python -m <command>`` is a runnable module, each dotted
``jsphere.<...>`` name resolves to a module or an attribute of one, and each ``from jsphere... import ...`` line
imports."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(set(re.findall(r"python -m ((?:jsphere|converters|benchmarks)(?:\.\w+)+)", README)))
DOTTED = sorted({name for name in re.findall(r"\bjsphere(?:\.\w+)+", README)} - set(COMMANDS))
FROM_IMPORTS = sorted(set(re.findall(r"^from (jsphere(?:\.\w+)*) import ([\w, ]+)$", README, re.MULTILINE)))


def _resolve(name: str) -> object:
    """The module or attribute ``name`` names: its longest importable module prefix, then attributes."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(name)


def test_the_readme_names_commands_and_library_names():
    assert "jsphere.main" in COMMANDS and "jsphere.models.build" in DOTTED and FROM_IMPORTS


@pytest.mark.parametrize("command", COMMANDS)
def test_every_documented_command_is_a_runnable_module(command):
    spec = importlib.util.find_spec(command)
    assert spec is not None, command
    if spec.submodule_search_locations:  # a package runs its __main__
        assert importlib.util.find_spec(f"{command}.__main__") is not None, command
    else:
        assert "__main__" in Path(spec.origin).read_text(encoding="utf-8"), command


@pytest.mark.parametrize("name", DOTTED)
def test_every_documented_name_resolves(name):
    assert _resolve(name) is not None


@pytest.mark.parametrize(("module", "names"), FROM_IMPORTS)
def test_every_documented_import_line_imports(module, names):
    imported = importlib.import_module(module)
    for name in (n.strip() for n in names.split(",")):
        assert hasattr(imported, name), f"from {module} import {name}"
