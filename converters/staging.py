"""Write converter outputs all-or-nothing: build them under a hidden sibling, then rename into place.

A conversion that fails half-way (bad input found late, disk full, Ctrl-C) leaves nothing under ``--out``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


def _sibling(out: Path) -> Path:
    """A fresh hidden name next to ``out`` (same file system, so the final rename is atomic)."""
    return out.parent / f".{out.name}.{secrets.token_hex(6)}.partial"


def check_free(out: str | os.PathLike) -> Path:
    """``out`` as a Path; refuses an existing non-empty folder or an existing file (nothing is overwritten)."""
    out = Path(out).expanduser()
    if out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out} already exists and is not empty: choose another output folder or remove it")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} already exists and is a file: choose another output folder")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: its folder {out.parent} does not exist")
    return out


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``out``; on success it becomes ``out``, on failure it is removed."""
    out = check_free(out)
    tmp = _sibling(out)
    tmp.mkdir()  # with the user's umask, unlike tempfile.mkdtemp's 0700
    try:
        yield tmp
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def staged_file(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``out``; on success it replaces ``out``, on failure it is removed."""
    out = Path(out).expanduser()
    if out.is_dir():
        raise IsADirectoryError(f"{out} is a folder: give a file name (e.g. {out / 'backbone.pth'})")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out}: its folder {out.parent} does not exist")
    tmp = _sibling(out)  # created by the writer, with the user's umask
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
