"""Text list files (training lists, pair lists, image lists): one parser, every error naming ``file:line``.

Blank lines and lines starting with ``#`` are skipped; fields are separated by whitespace.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


class ListFormatError(ValueError):
    """A malformed line in a list file (the message names the file and line)."""


@dataclasses.dataclass(frozen=True)
class Line:
    """One entry of a list file: its 1-based line number in ``path`` and its whitespace-separated fields."""

    path: Path
    number: int
    fields: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"

    def error(self, expected: str) -> ListFormatError:
        return ListFormatError(f"{self.where}: expected {expected}, got {' '.join(self.fields)!r}")


def read_lines(path: str | os.PathLike, what: str = "list file") -> list[Line]:
    """Every entry of ``path``; a missing, unreadable, non-text or empty file is an error naming it."""
    path = Path(path)
    lines = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ListFormatError(f"{path}:{number}: not UTF-8 text; is this a {what}?") from None
            if text and not text.startswith("#"):
                lines.append(Line(path, number, tuple(text.split())))
    if not lines:
        raise ListFormatError(f"{path}: the {what} has no entries")
    return lines


def resolve(root: Path, relative: str) -> str:
    """``relative`` below ``root`` (an absolute path is kept)."""
    p = Path(relative)
    return str(p if p.is_absolute() else root / p)
