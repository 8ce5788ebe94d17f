"""The supervising process: stage processes with budgets, one record per stage in ``gpu_check.json`` at once.

It imports no framework (so it holds no device memory). Stages run in as few processes as possible (each
start costs the imports and the device start-up), but a stage past its budget, or a process that dies (an
out-of-memory abort, a hang) or stops after an error, costs only that stage: the process is killed (its whole
process group, Grain workers and ``jsphere.main`` included) and a fresh one runs the stages left. The loop's
data set is built by a background process (once the environment stage found the device), on the CPU, while the
device stages run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from itertools import takewhile
from pathlib import Path
from typing import Any, TextIO

from benchmarks.gpu_check import profiles
from benchmarks.gpu_check.context import write_json

ROOT = Path(__file__).resolve().parents[2]
MIN_START_S = 10.0  # a stage is not started with less than this left before the deadline
POLL_S = 0.2


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


class _Process:
    """A child in its own process group (one ``killpg`` ends it with everything it started); its output goes to
    our stdout and the log, the tail kept in memory."""

    def __init__(self, args: list[str], env: dict[str, str], log: TextIO):
        self.popen = subprocess.Popen([sys.executable, "-m", "benchmarks.gpu_check.child", *args], cwd=ROOT,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      errors="replace", process_group=0)
        self.tail: deque[str] = deque(maxlen=30)
        self.reader = threading.Thread(target=self._pump, args=(log,), daemon=True)
        self.reader.start()

    def _pump(self, log: TextIO) -> None:
        for line in self.popen.stdout:
            self.tail.append(line.rstrip())
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            log.flush()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """Kill the child's process group (only what this child started)."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait()
        self.reader.join(timeout=5)


def child_env(profile: profiles.Profile, cache_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX and PyTorch share the device in one process
    env.setdefault("JAX_COMPILATION_CACHE_DIR", cache_dir)  # a second try, and loop after train5, compile less
    if profile.device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["JSPHERE_CPU_CONV"] = "0"  # XLA's own convolution, as on a GPU (and it compiles faster)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch's idle threads yield to JAX's (-40 % CPU time)
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
        env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={profiles.SMOKE_DEVICES}"])
    return env


class Runner:
    def __init__(self, profile: profiles.Profile, stages: list[profiles.Stage], out: Path, work: Path,
                 deadline_s: float, cache_dir: str, header: dict[str, Any]):
        self.profile, self.stages, self.out, self.work = profile, stages, out, work
        self.deadline_s = deadline_s
        self.env = child_env(profile, cache_dir)
        self.doc: dict[str, Any] = {**header, "started": datetime.now(UTC).isoformat(timespec="seconds"),
                                    "complete": False, "stages": []}
        self.log = open(out / "gpu_check.log", "a", encoding="utf-8")  # noqa: SIM115 - closed in run()
        self.t0 = time.monotonic()

    def _left(self) -> float:
        return self.deadline_s - (time.monotonic() - self.t0)

    def _save(self, record: dict[str, Any]) -> None:
        self.doc["stages"].append(record)
        self.doc["seconds"] = round(time.monotonic() - self.t0, 1)
        write_json(self.out / "gpu_check.json", self.doc)

    def _partial(self, name: str) -> dict[str, Any]:
        try:
            return json.loads((self.work / f"{name}.partial.json").read_text())
        except (OSError, ValueError):
            return {}

    def _start_prep(self) -> _Process | None:
        if not any(s.name == "loop" for s in self.stages):
            return None
        return _Process(["--profile", self.profile.name, "--work", str(self.work), "--prep"], self.env, self.log)

    def _watch_prep(self, prep: _Process | None) -> None:
        """Tell the loop stage when the data process ended without a result (it waits for one or the other)."""
        if prep is not None and not prep.alive() and not (self.work / "prep.exit").exists():
            (self.work / "prep.exit").write_text(str(prep.popen.returncode))

    def _wait_stage(self, proc: _Process, stage: profiles.Stage, first: bool,
                    prep: _Process | None) -> dict[str, Any] | None:
        """The record of ``stage`` run by ``proc``; None when the process ended before starting it (it stops
        after a stage's error; a fresh one takes over)."""
        start_marker, done = self.work / f"{stage.name}.start", self.work / f"{stage.name}.json"
        waited = time.monotonic()
        allowance = self.profile.startup_s if first else 60.0
        while not start_marker.exists():
            self._watch_prep(prep)
            if not proc.alive() and not start_marker.exists():
                if first:  # a fresh process that cannot start its first stage: that stage fails, not the loop
                    return {"name": stage.name, "status": "crashed", "seconds": 0.0, "result": {}, "failures": [],
                            "error": f"the stage process exited with code {proc.popen.returncode} before the stage "
                                     f"began: {' | '.join(list(proc.tail)[-5:])}"}
                return None
            if time.monotonic() - waited > min(allowance, max(self._left(), 0.0)):
                proc.kill()
                return {"name": stage.name, "status": "timeout", "seconds": 0.0, "result": {}, "failures": [],
                        "error": f"the stage process did not begin the stage within {allowance:.0f} s"}
            time.sleep(POLL_S)
        began = time.monotonic()
        limit = min(stage.budget_s, max(self._left(), MIN_START_S))
        while True:
            self._watch_prep(prep)
            if done.exists():
                record = json.loads(done.read_text())
                record["budget_s"] = stage.budget_s
                return record
            elapsed = time.monotonic() - began
            if not proc.alive():
                time.sleep(0.5)  # the record may land just as the process ends
                if done.exists():
                    continue
                return {"name": stage.name, "status": "crashed", "seconds": round(elapsed, 2), "budget_s":
                        stage.budget_s, "result": self._partial(stage.name), "failures": [],
                        "error": f"the stage process died (exit code {proc.popen.returncode}): "
                                 f"{' | '.join(list(proc.tail)[-5:])}"}
            if elapsed > limit:
                proc.kill()
                why = "its budget" if limit >= stage.budget_s else "the check's deadline"
                return {"name": stage.name, "status": "timeout", "seconds": round(elapsed, 2),
                        "budget_s": stage.budget_s, "result": self._partial(stage.name), "failures": [],
                        "error": f"killed after {limit:g} s ({why})"}
            time.sleep(POLL_S)

    def _skip(self, stages: list[profiles.Stage], why: str) -> None:
        for stage in stages:
            self._save({"name": stage.name, "status": "skipped", "seconds": 0.0, "result": {}, "failures": [],
                        "error": why})

    def run(self) -> dict[str, Any]:
        """Run the stages; a SIGTERM (``timeout``) ends the stage processes too and keeps every finished record."""
        previous = signal.signal(signal.SIGTERM, _terminate)
        proc: _Process | None = None
        current: profiles.Stage | None = None  # the stage being waited for
        remaining = list(self.stages)
        # the data process starts once the environment stage found the device (nothing is built for a check that
        # stops there)
        prep = None if remaining and remaining[0].name == "environment" else self._start_prep()
        try:
            while remaining:
                if self._left() < MIN_START_S:
                    self._skip(remaining, f"the check's deadline ({self.deadline_s:.0f} s) came first")
                    break
                group = [remaining[0], *takewhile(lambda s: not s.fresh, remaining[1:])]
                proc = _Process(["--profile", self.profile.name, "--work", str(self.work),
                                 *[s.name for s in group]], self.env, self.log)
                for i, stage in enumerate(group):
                    current = stage
                    record = self._wait_stage(proc, stage, i == 0, prep)
                    if record is None:
                        break
                    self._save(record)
                    remaining.remove(stage)
                    current = None
                    if prep is None and not self.stop_reason(record):
                        prep = self._start_prep()
                    if record["status"] in ("timeout", "crashed") or self.stop_reason(record):
                        break
                proc.kill()
                reason = self.stop_reason(self.doc["stages"][-1]) if self.doc["stages"] else None
                if reason:
                    self.doc["stopped"] = reason
                    self._skip(remaining, reason)
                    break
            self.doc["complete"] = True
        finally:
            signal.signal(signal.SIGTERM, previous)
            for child in (proc, prep):
                if child is not None:
                    child.kill()
            if current is not None and (self.work / f"{current.name}.start").exists():
                self.doc["stages"].append({"name": current.name, "status": "killed", "budget_s": current.budget_s,
                                           "result": self._partial(current.name), "failures": [],
                                           "error": "the check was ended (SIGTERM) while the stage ran"})
            self.doc["seconds"] = round(time.monotonic() - self.t0, 1)
            write_json(self.out / "gpu_check.json", self.doc)
            self.log.close()
        return self.doc

    def stop_reason(self, record: dict[str, Any]) -> str | None:
        """Why nothing after ``record`` can run: a GPU check on a host where JAX sees no GPU."""
        if record["name"] == "environment" and self.profile.device == "gpu":
            platform = record.get("result", {}).get("jax_platform")
            if platform != "gpu":
                return (f"JAX sees no GPU here (its platform: {platform or 'unknown'}); on a GPU host install "
                        "jax with its CUDA plugin, or run --smoke for the CPU dry run")
        return None
