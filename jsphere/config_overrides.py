"""``--config`` overrides of a run config's free-form dicts, ``model.kwargs`` and ``head.hparams``: the keyword
arguments of the model and the head, whose names and types are theirs, not the recipe's.

ml_collections parses an override by the type of the value the recipe holds, so ``--config.model.kwargs.width=16``
over a recipe's ``width=0.5`` would arrive as 16.0, and a name the recipe does not hold would be refused as a
typo. These overrides are taken out of the command line before absl parses it (``split``) and set afterwards as
the user wrote them (``apply``): a Python literal (``16`` an int, ``0.5`` a float, ``(2, 8, 16, 4)`` a tuple,
``true`` / ``false`` / ``none`` in any case, ``inf`` / ``-inf`` / ``nan`` a float, as absl reads them), else the text
itself. The model and the head then check names and
values (``config_check.check_model``, ``heads.from_config``), naming the key at fault.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

import ml_collections

FREE_FORM = ("model.kwargs", "head.hparams")
PREFIX = "--config."
WORDS = {"true": True, "false": False, "none": None}
NON_FINITE = ("inf", "+inf", "-inf", "infinity", "+infinity", "-infinity", "nan")


def split(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """``argv`` without the overrides of a free-form dict's entries (``--config.model.kwargs.width=16`` or
    ``--config.model.kwargs.width 16``), and those overrides as ``(dotted key, text)``."""
    kept: list[str] = []
    overrides: list[tuple[str, str]] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        key = arg[len(PREFIX):].split("=", 1)[0] if arg.startswith(PREFIX) else ""
        if key.rpartition(".")[0] in FREE_FORM:
            if "=" in arg:
                overrides.append((key, arg.split("=", 1)[1]))
            elif i + 1 < len(args):
                overrides.append((key, args[i + 1]))
                i += 1
            else:
                kept.append(arg)  # no value: absl names the missing value
        else:
            kept.append(arg)
        i += 1
    return kept, overrides


def literal(text: str) -> Any:
    """The value ``text`` writes: a Python literal, ``true``/``false``/``none`` in any case, a non-finite float
    (``inf``, ``-inf``, ``nan``: the head or model refuses it by name), else the text."""
    word = text.strip().lower()
    if word in WORDS:
        return WORDS[word]
    if word in NON_FINITE:
        return float(word)
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def apply(config: ml_collections.ConfigDict, overrides: Sequence[tuple[str, str]]) -> None:
    """Set each ``(dotted key, text)`` of ``split`` in ``config`` as written (a new entry is added); the dict stays
    locked if it was."""
    for key, text in overrides:
        parent, _, name = key.rpartition(".")  # 'model.kwargs', 'width'
        owner, _, field = parent.rpartition(".")  # 'model', 'kwargs'
        locked = config[owner][field].is_locked
        config[owner][field] = ml_collections.ConfigDict({**config[owner][field].to_dict(), name: literal(text)})
        if locked:
            config[owner][field].lock()
