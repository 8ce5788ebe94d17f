"""What makes a checkpoint step readable, and how failures are told, without orbax (``orbax_io`` calls it).

A step is readable when its ``meta`` item reads back, every item that ``meta`` lists (and every item the reader
needs) is there (an OCDBT item with its manifest and each process's manifest), and every array read matches the
checksum recorded in ``meta`` (``checksums``). Steps written before checksums were recorded are read with
a warning that they are unverified.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging as absl_logging
from jax.experimental import multihost_utils

from jsphere import errors
from jsphere.checkpoint import checksums
from jsphere.checkpoint.layout import CHECKSUMS, ITEMS


class UnreadableCheckpoint(ValueError):
    """A checkpoint step that does not read back (missing item or manifest, damaged file, checksum mismatch)."""

    def __init__(self, step_dir: Path, reason: str, hint: str | None = None):
        self.step_dir, self.reason = Path(step_dir), reason
        super().__init__(f"{step_dir}: the checkpoint does not read back ({reason})" + (f"; {hint}" if hint else ""))


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed (disk full, read-only or immutable folder); the message names the step kept."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def why(error: BaseException) -> str:
    """The first line of an orbax / tensorstore error, without its multi-line spec dump."""
    text = str(error).split(" See full TensorStore details")[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"


def _os_reason(error: BaseException) -> str:
    """The operating system's words for a failed write, found in the exception or its causes."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return f"{seen.strerror} ({seen.filename})" if seen.filename else seen.strerror
        code = re.search(r"os_error_code='(\d+)'", str(seen))
        if code:
            return os.strerror(int(code.group(1)))
        seen = seen.__cause__ or seen.__context__
    return why(error)


def write_error(root: Path, step: int, error: BaseException, previous: int | None) -> CheckpointWriteError:
    """One line: which step could not be written where, why (the OS's words), and which step is kept."""
    kept = (f"the checkpoint of step {previous} is kept ({root / str(previous)})" if previous is not None
            else "no earlier checkpoint was written")
    return CheckpointWriteError(f"could not write the checkpoint of step {step} in {root}: {_os_reason(error)}; "
                                f"{kept}. Free space or make the folder writable, then rerun the same command")


def _from_orbax(record: logging.LogRecord) -> bool:
    """A log record about orbax's work: logged from orbax, naming it, or carrying an exception raised inside it."""
    if f"{os.sep}orbax{os.sep}" in record.pathname or "orbax" in record.getMessage():
        return True
    trace = record.exc_info[2] if record.exc_info else None
    while trace is not None:
        if f"{os.sep}orbax{os.sep}" in trace.tb_frame.f_code.co_filename:
            return True
        trace = trace.tb_next
    return False


class _OrbaxErrorFilter(logging.Filter):
    """Drops orbax's error records (each with a traceback), and asyncio's about orbax's abandoned writes ("Task
    exception was never retrieved", logged when they are collected): the failure they describe reaches the caller
    as one CheckpointWriteError or UnreadableCheckpoint."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or not _from_orbax(record)


_FILTER = _OrbaxErrorFilter()
# What the writes still in flight when a save failed raise in tensorstore's threads once orbax has closed its event
# loop; Python reports them as "unraisable" tracebacks. The save's failure is told once, as a CheckpointWriteError.
_ABANDONED_WRITES = ("Event loop is closed", "cannot schedule new futures after shutdown")
_default_unraisablehook = sys.unraisablehook


def _unraisablehook(unraisable: sys.UnraisableHookArgs) -> None:
    if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) in _ABANDONED_WRITES):
        _default_unraisablehook(unraisable)


def hide_orbax_errors(on: bool) -> None:
    """Install (or remove) the filter of orbax's error records and of its abandoned writes' tracebacks, unless
    tracebacks were asked for (``--debug``)."""
    loggers = (logging.getLogger("absl"), logging.getLogger("asyncio"))
    if on and not errors.debug_requested():
        for logger in loggers:
            logger.addFilter(_FILTER)
        sys.unraisablehook = _unraisablehook
    else:
        for logger in loggers:
            logger.removeFilter(_FILTER)
        if sys.unraisablehook is _unraisablehook:
            sys.unraisablehook = _default_unraisablehook


@contextlib.contextmanager
def quiet_orbax_errors() -> Iterator[None]:
    """Orbax's error records hidden while the block runs."""
    hide_orbax_errors(True)
    try:
        yield
    finally:
        hide_orbax_errors(False)


def check_items(step_dir: Path, meta: dict[str, Any], needed: tuple[str, ...]) -> None:
    """Every item ``meta`` lists and every item in ``needed`` is there; OCDBT items with all their manifests."""
    for item in dict.fromkeys((*meta.get(ITEMS, ()), *needed)):
        folder = step_dir / item
        if not folder.is_dir():
            raise UnreadableCheckpoint(step_dir, f"its '{item}' item is missing")
        processes = [p for p in folder.iterdir() if p.name.startswith("ocdbt.process_")]
        for manifest in [folder / "manifest.ocdbt", *(p / "manifest.ocdbt" for p in processes)] if processes else []:
            if not manifest.is_file():
                raise UnreadableCheckpoint(step_dir, f"{manifest.relative_to(step_dir)} is missing")


def verify(step_dir: Path, meta: dict[str, Any], item: str, tree: Any) -> None:
    """Compare the arrays read from ``item`` with the checksums recorded in ``meta``."""
    recorded = meta.get(CHECKSUMS)
    if recorded is None:
        absl_logging.warning("%s was written without checksums (before jsphere recorded them): its '%s' arrays are "
                             "read unverified", step_dir, item)
        return
    if recorded.get("algorithm") != checksums.ALGORITHM:
        raise UnreadableCheckpoint(step_dir, f"unknown checksum algorithm {recorded.get('algorithm')!r}")
    problems = checksums.mismatches(tree, recorded.get("arrays", {}).get(item, {}))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UnreadableCheckpoint(step_dir, f"'{item}' array {problems[0]}{more}")


def recorded_dtypes(meta: dict[str, Any], item: str) -> dict[str, str]:
    """``{leaf: dtype name}`` of the arrays of ``item`` as they were saved (empty without checksums)."""
    entries = (meta.get(CHECKSUMS) or {}).get("arrays", {}).get(item, {})
    return {key: checksums.recorded_dtype(entry) for key, entry in entries.items()}


def with_checksums(meta: dict[str, Any], step: int, arrays: dict[str, Any], items: tuple[str, ...]) -> dict:
    """``meta`` with the step, the item names and the checksum of every array of ``arrays`` ({item: tree})."""
    sums = {item: checksums.tree_checksums(tree) for item, tree in arrays.items()}
    return {**meta, "step": int(step), ITEMS: list(items),
            CHECKSUMS: {"algorithm": checksums.ALGORITHM, "arrays": sums}}


@contextlib.contextmanager
def reading_some_items() -> Iterator[None]:
    """Silence orbax's warning that the items we do not ask for (optimizer, data) exist but are not restored."""
    level = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        yield
    finally:
        absl_logging.set_verbosity(level)


def to_numpy(tree: Any) -> Any:
    """Every array of ``tree`` as numpy."""
    return jax.tree.map(np.asarray, tree)


def agreed_step(step: int) -> int:
    """The smallest of every process's restored step (all processes must resume from the same one)."""
    if jax.process_count() == 1:
        return step
    return int(np.min(multihost_utils.process_allgather(np.asarray(step, np.int64))))


def abstract(tree: Any, saved_dtypes: dict[str, str]) -> Any:
    """Restore targets: shape and sharding of every array of ``tree``, in the dtype it was saved in (so that its
    checksum can be verified; ``cast_like`` brings it to the template's dtype afterwards)."""
    def leaf(path, x):
        dtype = saved_dtypes.get(checksums.leaf_key(path))
        return jax.ShapeDtypeStruct(x.shape, jax.numpy.dtype(dtype) if dtype else x.dtype,
                                    sharding=getattr(x, "sharding", None))

    return jax.tree_util.tree_map_with_path(leaf, tree)


def cast_like(restored: Any, template: Any) -> Any:
    """``restored`` in the dtypes of ``template``."""
    return jax.tree.map(lambda r, t: r if r.dtype == t.dtype else r.astype(t.dtype), restored, template)
