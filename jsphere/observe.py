"""What a run tells its user: metrics.jsonl, TensorBoard event files and a console progress bar.

Only process 0 writes; other processes get a writer that drops everything.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any


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


class ProgressBar:
    """A one-line console bar: step, loss, lr, img/s and ETA, redrawn at most every ``interval`` seconds."""

    def __init__(self, total_steps: int, *, enabled: bool = True, stream=None, interval: float = 0.5):
        self.total = total_steps
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interval = interval
        self._last_draw = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, step: int, *, loss: float, lr: float, img_per_s: float, eta_s: float, force: bool = False):
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.interval:
            return
        self._last_draw = now
        frac = step / max(self.total, 1)
        width = 24
        filled = int(width * frac)
        eta = time.strftime("%H:%M:%S", time.gmtime(max(eta_s, 0))) if math.isfinite(eta_s) else "--:--:--"
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} loss {loss:.4f} lr {lr:.2e} "
                f"{img_per_s:,.0f} img/s ETA {eta}")
        if self._tty:
            self.stream.write("\r" + line)
        elif force:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._tty:
            self.stream.write("\n")
            self.stream.flush()
