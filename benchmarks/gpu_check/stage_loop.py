"""Stage ``loop``: is the device fed? ``jsphere.main`` trains the loop recipe (``loop_config``: iresnet50 + ArcFace,
bf16, batch 256, Grain worker processes) on synthetic identities packed to ArrayRecord (``loop_data``, built in
the background while the stages before this one run); its img/s (median of ``metrics.jsonl``'s windows after the
first, which holds the compilation) is set next to the img/s of the same step on a fixed device-resident batch
(``measure.recipe_step``), timed after the run in this process.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.gpu_check import loop_data
from benchmarks.gpu_check.context import Context
from benchmarks.gpu_check.measure import device_memory, recipe_step, time_steps
from benchmarks.gpu_check.profiles import Profile

ROOT = Path(__file__).resolve().parents[2]


def loop_rates(metrics_file: Path) -> tuple[list[int], list[float], list[float]]:
    """(steps, img/s, loss) of the training windows in ``metrics.jsonl``."""
    steps, rates, losses = [], [], []
    for line in metrics_file.read_text().splitlines():
        row = json.loads(line)
        if "train/img_per_s" in row:
            steps.append(int(row["step"]))
            rates.append(float(row["train/img_per_s"]))
            losses.append(float(row.get("train/loss", math.nan)))
    return steps, rates, losses


def run(name: str, profile: Profile, ctx: Context) -> None:
    waited = time.perf_counter()
    data = loop_data.wait_for(ctx.work)
    ctx.record(data={**data, "waited_s": round(time.perf_counter() - waited, 2)})
    workdir = ctx.work / "loop_run"
    cmd = [sys.executable, "-m", "jsphere.main",
           f"--config={ROOT / 'benchmarks' / 'gpu_check' / 'loop_config.py'}:{profile.name},{data['packed']}",
           f"--workdir={workdir}"]
    print("  " + " ".join(cmd), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, stdout=sys.stdout, stderr=subprocess.STDOUT, check=False)
    run_s = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"jsphere.main exited with code {done.returncode} (its output is in the log)")
    steps, rates, losses = loop_rates(workdir / "metrics.jsonl")
    steady = rates[1:] or rates
    loop_rate = statistics.median(steady)
    ctx.record(run_s=round(run_s, 1), windows={"steps": steps, "img_per_s": rates, "loss": losses},
               loop_img_per_s=round(loop_rate, 1), workers=profile.loop_workers, batch=profile.train_batch)
    ctx.check(f"the loop ran {profile.loop_steps} steps (last logged: {steps[-1] if steps else None})",
              bool(steps) and steps[-1] == profile.loop_steps)
    ctx.check("finite losses", all(math.isfinite(v) for v in losses))
    compiled, holder, batch, facts = recipe_step(profile)
    seconds = time_steps(compiled, holder, batch, profile.timed_steps)
    step_rate = profile.train_batch / seconds
    ctx.record(step_img_per_s=round(step_rate, 1), step_compile_s=facts["compile_s"],
               loop_over_step=round(loop_rate / step_rate, 3), memory_gib=device_memory())
    print(f"  loop {loop_rate:,.0f} img/s vs step {step_rate:,.0f} img/s: {100 * loop_rate / step_rate:.0f}% "
          f"({profile.loop_workers} Grain workers)", flush=True)
