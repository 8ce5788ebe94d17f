"""What a run tells its user: metrics.jsonl, TensorBoard event files and a console progress bar.

Only process 0 writes; other processes get a writer that drops everything.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from absl import logging as absl_logging

_PACKAGE_DIR = str(Path(__file__).resolve().parent)


class _JsphereInfo(logging.Filter):
    """jsphere's INFO lines and everyone's warnings and errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.pathname.startswith(_PACKAGE_DIR)


def log_jsphere_info() -> None:
    """One log channel, absl's: show jsphere's INFO lines (run summary, resume, validation) and every library's
    warnings, not the other libraries' INFO chatter (orbax, grain)."""
    absl_logging.use_absl_handler()
    absl_logging.set_verbosity(absl_logging.INFO)
    handler = absl_logging.get_absl_handler()
    if not any(isinstance(f, _JsphereInfo) for f in handler.filters):
        handler.addFilter(_JsphereInfo())


def _scalar(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v


class MetricWriter:
    """Append ``{'step': s, **metrics}`` lines to ``<workdir>/metrics.jsonl`` and TensorBoard scalars."""

    def __init__(self, workdir: str | Path, *, enabled: bool = True):
        self.enabled = enabled
        self._tb = None
        self._file = None
        if not enabled:
            return
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self._file = open(workdir / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        # tensorboardX takes 1-1.4 s to import: only a training run writes event files, and the commands that show
        # a progress bar from this module (embed, align, pack, synthetic) start without it.
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(str(workdir / "tensorboard"))

    def write(self, step: int, metrics: dict[str, Any], *, prefix: str = "") -> None:
        if not self.enabled:
            return
        row = {"step": int(step)}
        for key, value in metrics.items():
            v = _scalar(value)
            if v is None:
                continue
            name = f"{prefix}{key}"
            row[name] = v
            if math.isfinite(v):
                self._tb.add_scalar(name, v, int(step))
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._tb.close()
            self._file = self._tb = None


def _clock(seconds: float) -> str:
    """``H:MM:SS`` (hours past 24 kept), ``--:--:--`` when unknown; never raises, whatever the estimate."""
    if not math.isfinite(seconds):
        return "--:--:--"
    if seconds >= 3600 * 1_000_000:
        return ">1e6 h"
    minutes, secs = divmod(int(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


class ProgressBar:
    """A one-line console bar, redrawn at most every ``interval`` seconds on a terminal; elsewhere (a log file)
    a line is written when forced and at most every ``log_interval`` seconds."""

    def __init__(self, total: int, *, enabled: bool = True, stream=None, interval: float = 0.5,
                 log_interval: float = 30.0):
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interval = interval
        self.log_interval = log_interval
        self._last_draw = self._last_line = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def show(self, done: int, details: str, *, force: bool = False) -> None:
        """Draw ``[###...] done/total details``."""
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        width = 24
        filled = int(width * done / max(self.total, 1))
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,} {details}"
        if self.tty:
            self.stream.write("\r" + line)
        elif force or now - self._last_line >= self.log_interval:
            self._last_line = now
            self.stream.write(line + "\n")
        self.stream.flush()

    def update(self, step: int, *, loss: float, lr: float, img_per_s: float, eta_s: float, force: bool = False):
        """The training bar: step, loss, lr, img/s and ETA."""
        self.show(step, f"loss {loss:.4f} lr {lr:.2e} {img_per_s:,.0f} img/s ETA {_clock(eta_s)}", force=force)

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


class ImageProgress:
    """Progress of a long embedding job: images done, img/s and ETA, with a label (``with`` closes the bar)."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, stream=None):
        self.label = label
        self.done = 0
        self.start = time.perf_counter()
        self.bar = ProgressBar(total, enabled=enabled and total > 0, stream=stream)

    def advance(self, images: int) -> None:
        self.done += images
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        eta = (self.bar.total - self.done) / rate if rate > 0 else math.inf
        self.bar.show(self.done, f"images {self.label}: {rate:,.1f} img/s ETA {_clock(eta)}",
                      force=self.done >= self.bar.total and self.bar.tty)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> ImageProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
