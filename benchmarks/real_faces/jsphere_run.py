"""One jsphere run of a recipe: ``python -m jsphere.main`` in a subprocess with the recipe's config (its Grain
pipeline, schedule, BatchNorm statistics, checkpoints and held-out validation every ``val_every`` steps), then
the final checkpoint embedded with ``jsphere.inference.Embedder.from_checkpoint`` and scored on the held-out pairs.

A run that was interrupted resumes from its last checkpoint when the same command is run again (jsphere.main's own
resume), and a ``jsphere.main`` killed by a signal (the kernel's OOM killer on a crowded machine) or stopped by
SIGTERM is resumed at once, up to ``RETRIES`` times; the run's wall time is the sum of its attempts
(``attempts.jsonl``). ``jsphere.main`` gets SIGTERM (it saves a checkpoint and exits) if this process dies, so a
killed benchmark never leaves an orphan run holding the workdir's lock.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.real_faces import recipes, runs, split
from jsphere.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "benchmarks" / "real_faces" / "config.py"
ATTEMPTS = "attempts.jsonl"
RETRIES = 5
SIGTERM_EXIT = 143  # jsphere.main's exit code after a SIGTERM (checkpoint saved)
PR_SET_PDEATHSIG = 1
_PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None  # looked up before any fork


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the benchmark process dies."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def command(recipe: str, seed: int, out: Path, lfw: Path, steps: int | None) -> list[str]:
    """The ``jsphere.main`` command line of one run (printed into its log, so it can be rerun by hand)."""
    arg = recipe if steps is None else f"{recipe},{steps}"
    data = runs.split_dir(out)
    return [sys.executable, "-m", "jsphere.main", f"--config={CONFIG}:{arg}",
            f"--workdir={runs.run_dir(out, recipe, 'jsphere', seed)}", f"--config.seed={seed}",
            f"--config.data.source={data / split.TRAIN_LIST}", f"--config.data.data_dir={lfw}",
            f"--config.val[0].path={data / split.HELDOUT_PAIRS}", f"--config.val[0].data_dir={lfw}",
            "--config.progress_bar=false"]


def _attempt(cmd: list[str], folder: Path) -> int:
    """Run ``jsphere.main`` once (it resumes from the workdir's last checkpoint); log its wall time."""
    with open(folder / "run.log", "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        start = time.perf_counter()
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, check=False,
                              preexec_fn=_die_with_parent if _PRCTL is not None else None).returncode
        wall = time.perf_counter() - start
    with open(folder / ATTEMPTS, "a") as f:
        f.write(json.dumps({"wall_s": wall, "returncode": code, "machine": runs.machine()}) + "\n")
    return code


def run(recipe: str, seed: int, out: Path, lfw: Path, steps: int | None = None) -> dict:
    """Train (or finish) the run, evaluate its final checkpoint, write and return its ``result.json``."""
    from jsphere.inference import Embedder

    config = recipes.config(recipe, steps)
    folder = runs.run_dir(out, recipe, "jsphere", seed)
    folder.mkdir(parents=True, exist_ok=True)
    cmd = command(recipe, seed, out, lfw, steps)
    for _ in range(RETRIES + 1):
        code = _attempt(cmd, folder)
        if code >= 0 and code != SIGTERM_EXIT:  # finished, or failed on its own: a rerun would fail alike
            break
    if code != 0:
        raise UserError(f"jsphere.main exited with code {code} ({recipe}, seed {seed}); see {folder / 'run.log'}")
    attempts = runs.read_metrics(folder / ATTEMPTS)
    rows = runs.read_metrics(folder / runs.METRICS)
    embedder = Embedder.from_checkpoint(folder)
    result = {
        "recipe": recipe, "framework": "jsphere", "seed": seed, "steps": int(embedder.step),
        "batch_size": config.batch_size, "wall_s": sum(a["wall_s"] for a in attempts), "attempts": len(attempts),
        "time_per_step_s": runs.median_step_time(rows, config.batch_size),
        "final": runs.final_metrics(embedder, out, lfw),
        "step0": {k.removeprefix(runs.VAL_PREFIX): v for k, v in rows[0].items() if k.startswith(runs.VAL_PREFIX)}
        if rows and rows[0]["step"] == 0 else None,
        "machine": runs.machine(), "command": " ".join(cmd),
    }
    runs.write_json(folder / runs.RESULT, result)
    return result
