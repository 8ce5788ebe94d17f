"""One training run per workdir: an exclusive lock on ``WORKDIR/train.lock``, held by process 0 for the run.

The lock is ``flock`` on the file (the kernel drops it whenever the holder exits, ``kill -9`` and crashes
included; NFS forwards it to the server), and the file records who holds it (PID, host, start time) so that a
refused run can name them. The record is cleared when the run ends; a record found under a free lock is that of
a run that died holding it, which the new run takes over with a warning. Several processes: only process 0 takes
the lock, and tells the others whether it got it, so that every process stops with the same message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

LOCK_FILE = "train.lock"


class WorkdirInUse(OSError):
    """Another training run holds the workdir."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _read_record(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace")
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _describe(record: dict) -> str:
    if not record:
        return "a process that left no record"
    try:
        when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(float(record.get("started"))))
    except (TypeError, ValueError, OverflowError, OSError):
        when = ""
    return f"PID {record.get('pid', '?')} on host {record.get('host', '?')}{when}"


def _alive_here(record: dict) -> bool:
    if record.get("host") != socket.gethostname() or not isinstance(record.get("pid"), int):
        return True  # cannot tell for another host
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkdirLock:
    """``acquire()`` / ``release()`` (or ``with``) the training lock of ``workdir``."""

    def __init__(self, workdir: str | os.PathLike):
        self.path = Path(workdir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise WorkdirInUse naming the PID and host that hold it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            record = _read_record(fd)
            os.close(fd)
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                logging.warning("cannot lock %s (%s): this file system does not support locks, so a second training "
                                "run on this workdir would not be refused", self.path, e.strerror)
                return
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            gone = "" if _alive_here(record) else (
                " (that process is gone: one it started still holds the lock; see `fuser " + str(self.path) + "`)")
            raise WorkdirInUse(f"{self.path.parent} is in use by another training run: {_describe(record)}{gone} "
                               f"holds {self.path}; wait for it to end, stop it, or use another --workdir") from None
        stale = _read_record(fd)
        if stale:
            logging.warning("taking over %s from a run that ended without releasing it (%s)", self.path,
                            _describe(stale))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": round(time.time(), 3)}).encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Clear the record and drop the lock (no-op when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> WorkdirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def hold(workdir: str | os.PathLike) -> Iterator[None]:
    """Hold ``workdir``'s training lock for the block: process 0 locks, every process raises if that failed."""
    lock = WorkdirLock(workdir) if jax.process_index() == 0 else None
    error: OSError | None = None
    if lock is not None:
        try:
            lock.acquire()
        except OSError as e:
            error = e
    if jax.process_count() > 1:
        locked = bool(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
        if not locked and lock is None:
            error = WorkdirInUse(f"process 0 could not lock {Path(workdir) / LOCK_FILE}; see its message")
    if error is not None:
        raise error
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
