"""One error style for every command: bad input ends with ``<command>: error: <message>`` on stderr, exit code 2.

Every command's ``__main__`` goes through :func:`run`::

    if __name__ == "__main__":
        cli.run("converters.import_torch", main)

``main(argv) -> int`` parses its arguments with :class:`ArgumentParser` (a usage error is one line too) and
raises on bad input. The exceptions that mean "the input is wrong" (``jsphere.errors.BAD_INPUT``: ``UserError``,
``ValueError``, ``KeyError``, ``OSError``, a refused pickle...) become one line; anything else is a bug and
keeps its traceback. ``--debug`` on the command line or ``JSPHERE_DEBUG=1`` in the environment shows the
traceback of bad input too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

from jsphere.errors import BAD_INPUT, DEBUG_FLAG, debug_requested, describe

EXIT_BAD_INPUT = 2


def fail(prog: str, message: str) -> NoReturn:
    """Print ``<prog>: error: <message>`` (one line) and exit with code 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_BAD_INPUT)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``<prog>: error: <what> (see --help)``) and a ``--debug`` flag."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument(DEBUG_FLAG, action="store_true", help="show the Python traceback of an error")

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see --help)")


def run(prog: str, main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> NoReturn:
    """Run ``main(argv)`` and exit with its code; bad input becomes one line on stderr and exit code 2."""
    debug = debug_requested(argv)
    try:
        code = main(argv)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except BAD_INPUT as e:
        if debug:
            raise
        fail(prog, describe(e))
    raise SystemExit(code or 0)
