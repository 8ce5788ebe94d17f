"""``python -m benchmarks.real_faces --lfw DIR --pairs pairs.txt --out DIR``: whole training runs on real faces,
jsphere against the reference codebases' own loops in PyTorch.

Holds out the people of LFW View 2's test folds (default 9 and 10), trains every recipe
(``benchmarks.real_faces.recipes``) from scratch in both frameworks from the same initial weights at each seed,
one run at a time, and writes the table and the PNG (``OUT/report/``) after every run. Rerunning the command skips
finished runs and resumes an interrupted jsphere run from its checkpoint, so it can be stopped at any time.

    --recipe R / --framework F / --seeds 0 1 2   run only these (repeatable; default: the recipes of the table)
    --steps N                                    shortened runs (the schedule scaled; a smoke test)
    --report                                     only rebuild the table and PNG from finished runs
    --time-steps N                               only time N training steps of each recipe, both frameworks in
                                                 turns on the same real batch (OUT/timing.json)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from benchmarks.real_faces import recipes, report, runs, split
from jsphere import cli
from jsphere.errors import UserError

PROG = "benchmarks.real_faces"
DEFAULT_TEST_FOLDS = (9, 10)
DEFAULT_SEEDS = (0, 1, 2)
SETTINGS = "settings.json"


def _parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("--lfw", type=Path, help="LFW aligned to 112x112: <name>/<name>_NNNN.jpg")
    p.add_argument("--pairs", type=Path, help="LFW View 2's pairs.txt (header '10 300')")
    p.add_argument("--out", type=Path, required=True, help="folder of the split, the runs and the report")
    p.add_argument("--test-folds", type=int, nargs="+", default=list(DEFAULT_TEST_FOLDS),
                   help="View 2 folds (1-10) whose people are held out (default: 9 10)")
    p.add_argument("--recipe", action="append", choices=list(recipes.RECIPES),
                   help=f"default: {', '.join(recipes.DEFAULT_RECIPES)}")
    p.add_argument("--framework", action="append", choices=list(runs.FRAMEWORKS), help="default: both")
    p.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    p.add_argument("--steps", type=int, help="train this many steps instead of the recipe's (schedule scaled)")
    p.add_argument("--report", action="store_true", help="only write the table and PNG from finished runs")
    p.add_argument("--time-steps", type=int, metavar="N", help="only time N steps of each recipe, both frameworks")
    return p


def _check_settings(out: Path, settings: dict) -> None:
    """One ``--out`` holds one experiment: the same test folds and step count for every run in it."""
    path = out / SETTINGS
    if path.is_file():
        before = json.loads(path.read_text())
        if before != settings:
            raise UserError(f"--out {out} holds runs made with {before}, not {settings}: use another --out for "
                            "other test folds or step counts")
    else:
        out.mkdir(parents=True, exist_ok=True)
        runs.write_json(path, settings)


def prepare(lfw: Path, pairs: Path, out: Path, test_folds: tuple[int, ...], steps: int | None) -> dict:
    """Check the inputs, then write the split (training list, held-out pairs) into ``OUT/split``."""
    held_out = split.make_split(lfw, pairs, test_folds)
    _check_settings(out, {"test_folds": list(test_folds), "steps": steps})
    summary = split.write_split(held_out, runs.split_dir(out))
    print(f"{PROG}: held out folds {summary['test_folds']} ({summary['heldout_people']} people, "
          f"{summary['heldout_pairs']} pairs); training on {summary['train_people']} people, "
          f"{summary['train_images']} images", flush=True)
    return summary


def run_all(a, names: list[str], frameworks: list[str]) -> None:
    """Every missing run, seed by seed (so a partial table has every recipe and framework), one at a time."""
    from benchmarks.real_faces import jsphere_run, torch_run

    runners = {"jsphere": jsphere_run.run, "torch": torch_run.run}
    for seed in a.seeds:
        for name in names:
            for framework in frameworks:
                folder = runs.run_dir(a.out, name, framework, seed)
                if runs.read_result(folder) is not None:
                    continue
                print(f"{PROG}: {name} / {framework} / seed {seed} (log: {folder / 'run.log'})", flush=True)
                start = time.perf_counter()
                result = runners[framework](name, seed, a.out, a.lfw, a.steps)
                print(f"{PROG}:   held-out ACC {result['final']['ACC']:.2f}, std_acc {result['final']['std_acc']:.2f}"
                      f", EER {result['final']['EER']:.2f} after {result['steps']} steps in "
                      f"{(time.perf_counter() - start) / 60:.1f} min", flush=True)
                report.write_report(a.out)


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    names = a.recipe or list(recipes.DEFAULT_RECIPES)
    frameworks = a.framework or list(runs.FRAMEWORKS)
    if a.out.exists() and not a.out.is_dir():
        raise UserError(f"--out {a.out}: is a file; give the folder of the split, the runs and the report")
    if a.report:
        if not (a.out / "runs").is_dir():
            raise UserError(f"--out {a.out}: holds no runs to report (train them first, without --report)")
        print(report.write_report(a.out), end="")
        return 0
    for flag in ("lfw", "pairs"):
        if getattr(a, flag) is None:
            raise UserError(f"--{flag} is required to train or time (only --report works without it)")
    if a.steps is not None and a.steps < 1 or a.time_steps is not None and a.time_steps < 1:
        raise UserError("--steps and --time-steps take a positive number of steps")
    bad_seed = next((seed for seed in a.seeds if not 0 <= seed < 2**32), None)
    if bad_seed is not None:
        raise UserError(f"--seeds {bad_seed}: a seed is an integer in [0, 2**32)")
    if not a.pairs.is_file():
        raise UserError(f"--pairs {a.pairs}: no such file (expected LFW View 2's pairs.txt)")
    a.lfw, a.pairs, a.out = a.lfw.resolve(), a.pairs.resolve(), a.out.resolve()
    prepare(a.lfw, a.pairs, a.out, tuple(a.test_folds), a.steps)
    if a.time_steps:
        from benchmarks.real_faces import timing

        results = [timing.time_recipe(name, a.out, a.lfw, a.time_steps) for name in names]
        runs.write_json(a.out / report.TIMING, {"results": results})
        report.write_report(a.out)
        for r in results:
            print(f"{r['recipe']}: batch {r['batch_size']}, jsphere {r['jsphere_s_per_step']:.3f} s/step, PyTorch "
                  f"{r['torch_s_per_step']:.3f} s/step ({r['jsphere_over_torch']:.2f}x), median of {r['rounds']} "
                  f"steps in turns on {r['machine']['cpu']}")
        return 0
    run_all(a, names, frameworks)
    print(report.write_report(a.out), end="")
    return 0


if __name__ == "__main__":
    cli.run(PROG, main)
