"""The command-line options and report every importer command shares: ``--arch`` (default ``auto``: read from the
file) with ``--model-kwargs``, JSON-object flags, the line saying what was found, the last line (what was written
and the input convention recorded with it), and ``--import MODULE`` (the module that registers a backbone of one's
own)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from pathlib import Path

from converters.core import backbone_import, conventions
from converters.core.found import Found
from jsphere import checkpoint, models
from jsphere.input_convention import InputConvention


def parse_json_object(text: str, flag: str) -> dict:
    """The JSON object given to ``flag``; a one-line error for anything else."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{flag} {text!r} is not valid JSON ({e.msg}); e.g. {flag} '{{\"scale\": 1}}'") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, e.g. '{{\"scale\": 1}}', got {text!r}")
    return value


def print_found(found: Found, layout: str) -> None:
    """The line every importer prints before writing: what it recognised, in which layout."""
    print(f"found {backbone_import.describe(found)} ({layout} layout)")


def add_model_arguments(parser: argparse.ArgumentParser, names: list[str] | None = None) -> None:
    """The ``--arch`` (default ``auto``: read from the file) and ``--model-kwargs`` options of every importer."""
    names = names or models.names()
    parser.add_argument("--arch", default=backbone_import.AUTO, choices=[backbone_import.AUTO, *names], metavar="ARCH",
                        help=f"'{backbone_import.AUTO}' (default: read from the file) or one of {', '.join(names)}")
    parser.add_argument("--model-kwargs", default="{}",
                        help='JSON keyword arguments of the model, e.g. \'{"scale": 1}\'')


def add_import_argument(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable): a module to import first, the one that registers a backbone of one's own
    (the command calls ``import_requested`` before building its parser, so ``--arch`` lists the backbone)."""
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import this Python module first (a dotted name importable from the current folder, "
                             "or a .py file): the one that registers your own backbone (@jsphere.models.register) "
                             "and its PyTorch definition; repeatable")


def import_requested(argv: list[str] | None) -> None:
    """Import the modules the command line's ``--import`` options name (``argv``: the arguments, None for
    ``sys.argv[1:]``), before the command's parser lists the backbones."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--import", dest="imports", action="append", default=[])
    known, _ = early.parse_known_args(sys.argv[1:] if argv is None else argv)
    for name in known.imports:
        _import(name)


def _import(name: str) -> None:
    """Import ``name`` (a dotted module name, or the path of a ``.py`` file); a missing one is a one-line error."""
    if name.endswith(".py"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ValueError(f"--import {name}: no such file")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        raise ValueError(f"--import {name}: {e} (give a module importable from the current folder, or a .py "
                         "file)") from None


def wrote(path: Path) -> str:
    """Every importer's last line: the checkpoint written and the input it recorded (``summary``: what was
    known, or what was assumed and how to change it)."""
    meta = checkpoint.load_meta(path)
    source = meta.get("source") or {}
    convention = InputConvention.from_meta(meta.get("input"))
    return f"wrote {path}; " + conventions.summary(convention, source.get("input_reason", ""),
                                                    bool(source.get("input_assumed")))
