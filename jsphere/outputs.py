"""One rule for every command's output path (``--out`` / ``--output``), written all-or-nothing.

* the output is written at exactly the path given (no suffix is added);
* missing parent folders are created (and removed again if the command fails);
* an existing output is refused unless ``--overwrite`` is given (an empty folder counts as free for a folder
  output); a folder is never replaced by a file or a file by a folder;
* a symbolic link at the output path is refused: nothing is ever written through a link (nor inside a training
  workdir, whose folders are outputs too: ``refuse_links_inside``);
* an output never names an input or another output of the same command (``check_distinct``);
* the output is built under a hidden sibling name and renamed into place when complete, so a command that
  fails half-way (bad input found late, disk full, Ctrl-C) leaves nothing behind;
* a place that cannot be written (read-only file system, no permission, disk full) is named by the flag and the
  path given, never by the hidden name.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from jsphere import errors

OVERWRITE_FLAG = "--overwrite"


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--overwrite`` flag every command that writes an output accepts."""
    parser.add_argument(OVERWRITE_FLAG, action="store_true",
                        help="replace an existing output (never through a symbolic link)")


def _sibling(out: Path, kind: str) -> Path:
    """A fresh hidden name next to ``out`` (same file system, so the final rename is atomic)."""
    return out.parent / f".{out.name}.{secrets.token_hex(6)}.{kind}"


def check_free(out: str | os.PathLike, *, flag: str = "--out", overwrite: bool = False,
               folder: bool = True) -> Path:
    """``out`` as a Path if the rule lets a command write it (a ``folder`` or a file); raises naming ``flag``."""
    if not str(out).strip():
        raise ValueError(f"{flag} is empty: give the path to write")
    path = Path(out).expanduser()
    if path.is_symlink():
        raise FileExistsError(f"{flag} {out}: is a symbolic link; give the real path (outputs are never written "
                              "through a link)")
    if folder:
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"{flag} {out}: is a file; give a folder (created if missing)")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise FileExistsError(f"{flag} {out}: already exists and is not empty; give another folder, or add "
                                  f"{OVERWRITE_FLAG} to replace it")
    else:
        if path.is_dir():
            raise IsADirectoryError(f"{flag} {out}: is a folder; give a file name (e.g. {path / 'out.npy'})")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{flag} {out}: already exists; give another name, or add {OVERWRITE_FLAG} to "
                                  "replace it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{flag} {out}: {parent} is a file, not a folder")
            break
    return path


def check_distinct(paths: dict[str, str | os.PathLike | None]) -> None:
    """Refuse a command whose outputs and inputs (``{flag: path}``, None for a flag not given) name one file twice:
    an output written over an input, or over another output, would lose it."""
    seen: dict[Path, str] = {}
    for flag, path in paths.items():
        if path is None or not str(path).strip():
            continue
        key = Path(path).expanduser().resolve()
        if key in seen:
            raise ValueError(f"{flag} {path}: is also the path of {seen[key]}; one would be written over the other. "
                             f"Give {flag} another path")
        seen[key] = flag


def _link_error(folder: str | os.PathLike, flag: str, link: str | os.PathLike) -> FileExistsError:
    return FileExistsError(f"{flag} {folder}: {link} is a symbolic link; outputs are never written through a link: "
                           f"replace it with the real file or folder, or give another {flag}")


def refuse_links_inside(folder: str | os.PathLike, *, flag: str, within: str | None = None) -> None:
    """Refuse a folder a command writes into (a training workdir) that holds a symbolic link anywhere below it:
    the rule's "nothing is written through a link" for every file and folder the command may create, replace or
    delete there. The folder itself may be a link (it is resolved once, up front). ``within``: only that entry of
    the folder and what it holds (the one subfolder a command writes, e.g. an evaluation's reports)."""
    root = Path(folder).expanduser()
    pending = [root]
    if within is not None:
        top = root / within
        if top.is_symlink():
            raise _link_error(folder, flag, top)
        pending = [top] if top.is_dir() else []
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_symlink():
                    raise _link_error(folder, flag, entry.path)
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the folders created, deepest first."""
    created = []
    while not folder.exists():
        created.append(folder)
        folder = folder.parent
    for path in reversed(created):
        path.mkdir()
    return created


def _remove_if_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _commit(tmp: Path, out: Path, flag: str, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``out`` under the rule (checked again: the path may have changed)."""
    check_free(out, flag=flag, overwrite=overwrite, folder=tmp.is_dir())
    if not out.exists():
        os.replace(tmp, out)
    elif tmp.is_dir():
        old = _sibling(out, "old")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextlib.contextmanager
def _named_by_flag(out: Path, flag: str) -> Iterator[None]:
    """An ``OSError`` writing at or beside ``out`` (the hidden sibling, a parent created for it) as one naming
    ``flag`` and ``out``."""
    try:
        yield
    except OSError as e:
        if e.filename is None or not e.strerror or not str(e.filename).startswith(str(out.parent)):
            raise
        raise errors.UserError(f"{flag} {out}: cannot write there ({e.strerror.lower()}); give a place that can "
                               "be written") from None


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, *, flag: str = "--out", overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``out``; on success it becomes ``out``, on failure it is removed."""
    out = check_free(out, flag=flag, overwrite=overwrite, folder=True)
    with _named_by_flag(out, flag):
        created = _make_parents(out.parent)
    tmp = _sibling(out, "partial")
    try:
        with _named_by_flag(out, flag):
            tmp.mkdir()  # with the user's umask, unlike tempfile.mkdtemp's 0700
            yield tmp
            _commit(tmp, out, flag, overwrite)
        created = []
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_if_empty(created)


@contextlib.contextmanager
def staged_file(out: str | os.PathLike, *, flag: str = "--out", overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary file path next to ``out`` for the writer to create; on success it becomes ``out``."""
    out = check_free(out, flag=flag, overwrite=overwrite, folder=False)
    with _named_by_flag(out, flag):
        created = _make_parents(out.parent)
    tmp = _sibling(out, "partial")  # created by the writer, with the user's umask
    try:
        with _named_by_flag(out, flag):
            yield tmp
            if not tmp.is_file():
                raise RuntimeError(f"{flag} {out}: the writer left no file at {tmp}")
            _commit(tmp, out, flag, overwrite)
        created = []
    finally:
        if tmp.exists():
            tmp.unlink()
        _remove_if_empty(created)
