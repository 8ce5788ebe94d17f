"""The stage process: ``python -m benchmarks.gpu_check.child --profile P --work DIR STAGE...`` runs the stages
in order and leaves, for each, ``DIR/<stage>.start`` when it begins, ``DIR/<stage>.partial.json`` whenever it
records a figure, and ``DIR/<stage>.json`` when it ends (status, seconds, result, failed checks, error). The
supervising process (``runner``) watches those files, enforces each stage's budget and restarts a process for
the stages left when this one is killed, crashes or stops after an error (a failed CUDA call can leave the
device unusable for the rest of the process). ``--prep`` builds the loop's data set instead (``loop_data``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from absl import flags

from benchmarks.gpu_check import loop_data, profiles
from benchmarks.gpu_check.context import Context, write_json

MODULES = {"environment": "stage_env", "heads": "stage_heads", "convert": "stage_convert", "train5": "stage_train",
           "sharded": "stage_train", "loop": "stage_loop", "speed_r100_b512": "stage_speed",
           "speed_r100_b128": "stage_speed", "speed_sfnet20": "stage_speed", "embed_r100": "stage_speed",
           "embed_mbf": "stage_speed"}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (``jsphere.main`` of the loop stage)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def run_stage(name: str, work: Path, profile: profiles.Profile) -> bool:
    """Run one stage and write its record; False when it raised (the process should end)."""
    (work / f"{name}.start").write_text(str(time.time()))
    print(f"== {name} ==", flush=True)
    ctx = Context(name, work, profile)
    start, cpu = time.perf_counter(), _cpu_seconds()
    record: dict[str, Any] = {"name": name}
    try:  # imported here, after main() pinned the platform: a stage imports JAX; a failed import is its error
        module = importlib.import_module(f"benchmarks.gpu_check.{MODULES[name]}")
        module.run(name, profile, ctx)
        record["status"] = "failed" if ctx.failures else "ok"
    except Exception as e:  # any failure of a stage is recorded, and the next stage runs
        traceback.print_exc()
        record["status"] = "error"
        record["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:600]}"
    record.update(seconds=round(time.perf_counter() - start, 2), cpu_s=round(_cpu_seconds() - cpu, 2),
                  result=ctx.result, failures=ctx.failures)
    write_json(work / f"{name}.json", record)
    print(f"== {name}: {record['status']} in {record['seconds']:.1f} s ==", flush=True)
    return record["status"] != "error"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.gpu_check.child")
    p.add_argument("--profile", required=True, choices=sorted(profiles.PROFILES))
    p.add_argument("--work", required=True)
    p.add_argument("--prep", action="store_true", help="build the loop's data set")
    p.add_argument("stages", nargs="*")
    a = p.parse_args(argv)
    profile, work = profiles.get(a.profile), Path(a.work)
    if profile.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")  # read by JAX when imported, and by the loop's jsphere.main
    flags.FLAGS.mark_as_parsed()  # Grain's mp_prefetch and the train-step benchmarks read absl flags
    if a.prep:
        loop_data.prepare(profile, work)
        return 0
    for name in a.stages:
        if not run_stage(name, work, profile):
            return 0  # a fresh process runs the stages left
    return 0


if __name__ == "__main__":
    sys.exit(main())
