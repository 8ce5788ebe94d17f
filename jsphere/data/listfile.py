"""Text list files (training lists, pair files, image and landmark lists): one parser, every error naming
``file:line``.

Blank lines and lines starting with ``#`` are skipped; fields are separated by whitespace (spaces or tabs);
Windows line ends and a UTF-8 byte-order mark are accepted. Lines are read one at a time, so a list of tens of
millions of images costs only what its caller keeps.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

BYTE_ORDER_MARK = "\ufeff"


class ListFormatError(ValueError):
    """A malformed list file (the message names the file and line)."""


class Line(NamedTuple):
    """One entry of a list file: its 1-based line number in ``path`` and its whitespace-separated fields."""

    path: Path
    number: int
    fields: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"

    def error(self, expected: str) -> ListFormatError:
        """The error for this line: what was expected and what the line holds."""
        return ListFormatError(f"{self.where}: expected {expected}, got {' '.join(self.fields)!r}")


def iter_lines(path: str | os.PathLike, what: str = "list file") -> Iterator[Line]:
    """The entries of ``path``, one at a time. A missing or unreadable file raises ``OSError`` naming it; a line
    that is not UTF-8 text, or a file without a single entry, raises :class:`ListFormatError`."""
    path = Path(path)
    entries = 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ListFormatError(f"{path}:{number}: not UTF-8 text; is this a {what}?") from None
            if number == 1:
                text = text.removeprefix(BYTE_ORDER_MARK)
            fields = text.split()
            if fields and not fields[0].startswith("#"):
                entries += 1
                yield Line(path, number, tuple(fields))
    if not entries:
        raise ListFormatError(f"{path}: the {what} has no entries")


def read_lines(path: str | os.PathLike, what: str = "list file") -> list[Line]:
    """Every entry of ``path`` (see :func:`iter_lines`)."""
    return list(iter_lines(path, what))


def resolve(root: str | os.PathLike, relative: str) -> str:
    """``relative`` below ``root`` (an absolute path is kept)."""
    return os.path.join(root, relative)
