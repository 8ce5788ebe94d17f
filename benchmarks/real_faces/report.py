"""The table, the verdicts and the PNG of the real-faces benchmark, from the finished runs under ``--out``.

The comparison is statistical: whole float32 runs diverge chaotically, so each framework trains several seeds and
the held-out metrics are compared as distributions. **The test**: jsphere matches PyTorch on a recipe when the mean
of jsphere's held-out ACC (OpenSphere's best-threshold accuracy) over its seeds lies within [min, max] of
PyTorch's seeds (the issue's rule). Welch's t-test of the two sets of seeds is reported beside it (p < 0.05 would
flag a difference that the range rule, with three seeds, might miss or wrongly see), and the same range check is
shown for the 10-fold std_acc, EER and TPR@FPR=1e-3.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

from benchmarks.real_faces import recipes, runs

CHECKED = ("ACC", "std_acc", "EER", "TPR@FPR=0.001")
DECISIVE = "ACC"
COLOURS = {"jsphere": "tab:blue", "torch": "tab:orange"}
LABELS = {"jsphere": "jsphere", "torch": "PyTorch (reference loop)"}
PNG = "real_faces.png"
TIMING = "timing.json"


def collect(out: Path) -> dict[str, dict[str, list[dict]]]:
    """recipe -> framework -> the ``result.json`` of every finished seed (with its curves added)."""
    found: dict[str, dict[str, list[dict]]] = {}
    for recipe in recipes.RECIPES:
        for framework in runs.FRAMEWORKS:
            base = out / "runs" / recipe / framework
            for folder in sorted(base.glob("seed*")) if base.is_dir() else ():
                result = runs.read_result(folder)
                if result is not None:
                    result["curves"] = runs.curves(runs.read_metrics(folder / runs.METRICS))
                    found.setdefault(recipe, {}).setdefault(framework, []).append(result)
    return found


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


def welch_p(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test (None with fewer than two seeds a side or no variance at all)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2 or (np.std(a) == 0 and np.std(b) == 0):
        return None
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def summarise(found: dict[str, dict[str, list[dict]]]) -> dict:
    """Per recipe: each framework's statistics, and the verdict of each checked metric."""
    summary = {}
    for recipe, by_framework in found.items():
        entry: dict = {"frameworks": {}, "checks": {}}
        for framework, results in by_framework.items():
            entry["frameworks"][framework] = {
                "seeds": sorted(r["seed"] for r in results),
                "steps": sorted({r["steps"] for r in results}),
                "batch_size": results[0]["batch_size"],
                "metrics": {m: _stats([r["final"][m] for r in results]) for m in CHECKED},
                "time_per_step_s": _stats([r["time_per_step_s"] for r in results if r["time_per_step_s"]]),
                "wall_s": _stats([r["wall_s"] for r in results]),
                "step0_acc": [r["step0"]["ACC"] for r in results if r.get("step0")],
                "attempts": {r["seed"]: r["attempts"] for r in results},
                "cpu": results[0]["machine"]["cpu"],
            }
        if {"jsphere", "torch"} <= set(by_framework):
            for metric in CHECKED:
                ours = [r["final"][metric] for r in by_framework["jsphere"]]
                ref = [r["final"][metric] for r in by_framework["torch"]]
                mean = statistics.fmean(ours)
                entry["checks"][metric] = {"jsphere_mean_in_torch_range": min(ref) <= mean <= max(ref),
                                           "difference_of_means": mean - statistics.fmean(ref),
                                           "welch_p": welch_p(ours, ref)}
            entry["verdict"] = "matches" if entry["checks"][DECISIVE]["jsphere_mean_in_torch_range"] else "differs"
        summary[recipe] = entry
    return summary


def _cell(s: dict) -> str:
    return f"{s['mean']:.2f} ± {s['std']:.2f} [{s['min']:.2f}, {s['max']:.2f}]"


def table(summary: dict) -> str:
    """The markdown table (recipe x framework) and the verdicts."""
    lines = ["| recipe | framework | seeds | steps (batch) | ACC | std_acc (10-fold) | EER | TPR@FPR=1e-3 | "
             "time/step | wall time | step-0 ACC |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for recipe, entry in summary.items():
        for framework, f in entry["frameworks"].items():
            m = f["metrics"]
            step_time = f"{f['time_per_step_s']['mean']:.2f} s" if f["time_per_step_s"]["n"] else "-"
            wall = f"{f['wall_s']['mean'] / 60:.1f} min [{f['wall_s']['min'] / 60:.1f}, {f['wall_s']['max'] / 60:.1f}]"
            step0 = ", ".join(f"{a:.2f}" for a in f["step0_acc"])
            lines.append(f"| {recipe} | {LABELS[framework]} | {f['seeds']} | {'/'.join(map(str, f['steps']))} "
                         f"({f['batch_size']}) | {_cell(m['ACC'])} | {_cell(m['std_acc'])} | {_cell(m['EER'])} | "
                         f"{_cell(m['TPR@FPR=0.001'])} | {step_time} | {wall} | {step0} |")
    lines += ["", "mean ± sample std [min, max] over seeds; ACC = OpenSphere's best-threshold accuracy, std_acc = "
              "the standard 10-fold protocol, both in % on the held-out folds' pairs."]
    resumed = [f"{recipe} / {framework} / seed {seed} ({n} attempts)" for recipe, entry in summary.items()
               for framework, f in entry["frameworks"].items() for seed, n in f["attempts"].items() if n > 1]
    if resumed:
        lines.append(f"Resumed from a checkpoint after being killed (their wall time includes the lost work): "
                     f"{'; '.join(resumed)}.")
    lines += ["",
              "| recipe | verdict (jsphere's mean ACC within PyTorch's [min, max]) | ACC difference of means | "
              "Welch p (ACC) | other metrics within PyTorch's range |", "|---|---|---:|---:|---|"]
    for recipe, entry in summary.items():
        if "verdict" not in entry:
            continue
        c = entry["checks"]
        p = c[DECISIVE]["welch_p"]
        others = ", ".join(f"{m}: {'yes' if c[m]['jsphere_mean_in_torch_range'] else 'no'}" for m in CHECKED[1:])
        lines.append(f"| {recipe} | **{entry['verdict']}** | {c[DECISIVE]['difference_of_means']:+.2f} | "
                     f"{'-' if p is None else f'{p:.2f}'} | {others} |")
    return "\n".join(lines) + "\n"


def speed_table(timing: dict) -> str:
    """The ``--time-steps`` measurement (``OUT/timing.json``): both frameworks' step on one real batch, in turns."""
    lines = ["| recipe | batch | jsphere s/step | PyTorch s/step | jsphere / PyTorch | steps timed | machine |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in timing["results"]:
        m = r["machine"]
        lines.append(f"| {r['recipe']} | {r['batch_size']} | {r['jsphere_s_per_step']:.3f} | "
                     f"{r['torch_s_per_step']:.3f} | {r['jsphere_over_torch']:.2f}x | {r['rounds']} | {m['cpu']} "
                     f"({', '.join(m['cpu_features'])}), {m['cores']} cores, load {m['load_avg'][0]:.1f} |")
    return "\n".join(lines) + "\n"


def plot(found: dict[str, dict[str, list[dict]]], path: Path) -> None:
    """Training loss and held-out ACC against steps, both frameworks, every seed (thin) and their mean (thick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(found)
    fig, axes = plt.subplots(2, len(names), figsize=(5.5 * len(names), 7), squeeze=False)
    for col, recipe in enumerate(names):
        for row, key in enumerate(("train/loss", f"{runs.VAL_PREFIX}ACC")):
            ax = axes[row][col]
            for framework, results in found[recipe].items():
                series = [r["curves"].get(key, []) for r in results]
                for points in series:
                    if points:
                        ax.plot(*zip(*points, strict=True), color=COLOURS[framework], alpha=0.3, linewidth=0.8)
                common = sorted(set.intersection(*(set(dict(s)) for s in series))) if all(series) else []
                if common:
                    mean = [statistics.fmean(dict(s)[k] for s in series) for k in common]
                    ax.plot(common, mean, color=COLOURS[framework], linewidth=2,
                            label=f"{LABELS[framework]} (mean of {len(series)} seeds)")
            ax.set_xlabel("step")
            ax.set_ylabel("training loss" if row == 0 else "held-out ACC (%)")
            ax.set_title(f"{recipe}: {'loss' if row == 0 else 'held-out ACC'}", fontsize=10)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(out: Path) -> str:
    """Write ``report/table.md``, ``report/summary.json`` and ``report/real_faces.png``; return the table."""
    found = collect(out)
    folder = runs.report_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarise(found)
    text = table(summary)
    timing = out / TIMING
    if timing.is_file():
        text += "\n" + speed_table(json.loads(timing.read_text()))
    (folder / "table.md").write_text(text)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if found:
        plot(found, folder / PNG)
    return text
