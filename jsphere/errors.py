"""The errors that mean "the input is wrong", raised by the library and turned into one line by ``jsphere.cli``.

:class:`UserError` is bad input whose message names the file, line, key or value at fault and what to do;
:data:`BAD_INPUT` lists every exception type a command reports as bad input (``ValueError``, ``KeyError``,
``OSError``, a refused pickle...) rather than as a bug. ``--debug`` on the command line or ``JSPHERE_DEBUG=1`` in
the environment asks for the traceback of bad input too (:func:`debug_requested`).
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Sequence

DEBUG_FLAG = "--debug"
DEBUG_ENV = "JSPHERE_DEBUG"


class UserError(Exception):
    """Bad input; the message names the file, line, key or value at fault and what to do."""


BAD_INPUT: tuple[type[BaseException], ...] = (UserError, ValueError, KeyError, OSError, EOFError,
                                              pickle.UnpicklingError)


def debug_requested(argv: Sequence[str] | None = None) -> bool:
    """Whether tracebacks were asked for (``--debug`` in ``argv`` or ``JSPHERE_DEBUG`` set to a true value)."""
    argv = sys.argv[1:] if argv is None else argv
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def describe(error: BaseException) -> str:
    """The one-line message of a bad-input exception."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        where = error.filename if error.filename2 is None else f"{error.filename} -> {error.filename2}"
        text = f"{where}: {error.strerror.lower()}"
    elif isinstance(error, KeyError) and len(error.args) == 1:
        text = str(error.args[0])  # str(KeyError) adds quotes
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())
