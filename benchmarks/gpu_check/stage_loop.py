"""Stage ``loop``: is the device fed? ``jsphere.main`` trains the loop recipe (``loop_config``: iresnet50 + ArcFace,
bf16, batch 256, Grain worker processes) on synthetic identities packed to ArrayRecord; its img/s (median of
``metrics.jsonl``'s windows after the first, which holds the compilation) is set next to the img/s of the same
step on a fixed device-resident batch, timed after the run in this process.

``prepare`` builds the data set in the background process the supervisor starts first: identities rendered by
``jsphere.data.synthetic`` in parallel parts, one OpenSphere v1 list over all parts, packed by
``jsphere.data.pack``. It leaves ``prep.json`` (or the supervisor leaves ``prep.exit`` when it died).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from benchmarks.gpu_check.child import Context, write_json
from benchmarks.gpu_check.profiles import Profile

ROOT = Path(__file__).resolve().parents[2]


def _render(folder: str, identities: int, images: int, seed: int) -> str:
    from jsphere.data import synthetic

    synthetic.generate(folder, identities=identities, images_per_identity=images, holdout_identities=2,
                       holdout_images=2, pairs=2, seed=seed)
    return folder


def prepare(profile: Profile, work: Path) -> None:
    """Render and pack the loop's identities into ``work/loop_data/packed``; write ``work/prep.json``."""
    from jsphere.data import pack

    start = time.perf_counter()
    root = work / "loop_data"
    parts = max(1, min((os.cpu_count() or 1) // 2, 8, profile.identities // 100))
    sizes = [profile.identities // parts + (i < profile.identities % parts) for i in range(parts)]
    jobs = [(str(root / f"part{i}"), n, profile.images_per_identity, i) for i, n in enumerate(sizes)]
    try:
        if parts == 1:
            _render(*jobs[0])
        else:
            with ProcessPoolExecutor(parts, mp_context=get_context("spawn")) as pool:
                list(pool.map(_render, *zip(*jobs, strict=True)))
        rendered = time.perf_counter() - start
        lines = []
        for i in range(parts):
            for line in (root / f"part{i}" / "train_list.txt").read_text().splitlines():
                path, label = line.rsplit(" ", 1)
                lines.append(f"part{i}/{path} p{i}_{label}")
        (root / "train_list.txt").write_text("\n".join(lines) + "\n")
        summary = pack.pack(str(root / "train_list.txt"), root / "packed", data_dir=str(root), fmt="list_v1",
                            verbose=False)
        write_json(work / "prep.json", {"status": "ok", "packed": str(root / "packed"), "parts": parts,
                                        "images": summary["num_images"], "classes": summary["num_classes"],
                                        "render_s": round(rendered, 2),
                                        "seconds": round(time.perf_counter() - start, 2)})
    except Exception as e:
        write_json(work / "prep.json", {"status": "error", "error": f"{type(e).__name__}: {e}"})
        raise


def _wait_for_data(work: Path) -> dict:
    while True:
        if (work / "prep.json").exists():
            info = json.loads((work / "prep.json").read_text())
            if info["status"] != "ok":
                raise RuntimeError(f"the loop's data set could not be built: {info['error']}")
            return info
        if (work / "prep.exit").exists():
            raise RuntimeError(f"the data process died (exit code {(work / 'prep.exit').read_text()}) without a "
                               "data set; see its output in the log")
        time.sleep(0.2)


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
    from benchmarks.gpu_check.stage_train import device_memory, recipe_step, time_steps

    waited = time.perf_counter()
    data = _wait_for_data(ctx.work)
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
