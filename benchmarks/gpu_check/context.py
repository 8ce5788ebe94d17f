"""What a stage records into: ``Context`` (its figures and pass/fail checks, saved as they come) and
``write_json``, the atomic file write that the stage process and the supervising process (``runner``) share.
Plain Python, no framework: the supervisor imports it without holding a device.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from benchmarks.gpu_check import profiles


def write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    os.replace(tmp, path)


class Context:
    """What a stage gets besides the profile: its work folder, figure recording and pass/fail checks."""

    def __init__(self, stage: str, work: Path, profile: profiles.Profile):
        self.stage, self.work, self.profile = stage, work, profile
        self.result: dict[str, Any] = {}
        self.failures: list[str] = []

    def record(self, **figures: Any) -> None:
        """Add figures to the result and save them at once, so a stage killed later still reports them."""
        self.result.update(figures)
        write_json(self.work / f"{self.stage}.partial.json", self.result)

    def check(self, what: str, ok: bool) -> bool:
        """A pass/fail condition of the stage; a failed one makes the stage's status 'failed'."""
        if not ok:
            self.failures.append(what)
            print(f"  CHECK FAILED: {what}", flush=True)
        return ok
