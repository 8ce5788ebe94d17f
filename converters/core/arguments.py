"""The command-line options and report every importer command shares: ``--arch`` (default ``auto``: read from the
file) with ``--model-kwargs``, JSON-object flags, the line saying what was found and the last line, saying what was
written and the input convention recorded with it."""

from __future__ import annotations

import argparse
import json
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


def wrote(path: Path) -> str:
    """Every importer's last line: the checkpoint written and the input it recorded (``summary``: what was
    known, or what was assumed and how to change it)."""
    meta = checkpoint.load_meta(path)
    source = meta.get("source") or {}
    convention = InputConvention.from_meta(meta.get("input"))
    return f"wrote {path}; " + conventions.summary(convention, source.get("input_reason", ""),
                                                    bool(source.get("input_assumed")))
