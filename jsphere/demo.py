"""``make demo``: the quickstart end to end on built-in synthetic data, no download.

1. generate the synthetic identity set into ``--data`` if it is not there (``jsphere.data.synthetic``);
2. train ``configs/quickstart.py`` in ``--workdir`` (resumes if interrupted; validates the untrained model
   first and the trained one at the end on held-out identities), with JAX's persistent compilation cache in
   ``--workdir/compilation_cache``: a demo resumed in the same workdir does not compile again (its programs are
   keyed by the workdir too, so another workdir compiles its own);
3. print the verification table: untrained vs trained, OpenSphere and standard protocols, and where the time went.

The demo imports jsphere's own dependencies only (no torch, onnx, tensorflow-datasets): ``make demo`` installs
nothing else.

``python -m jsphere.demo --models`` prints every backbone with its parameter count and output shape instead.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from absl import flags

from jsphere import cli, errors, observe
from jsphere.data import synthetic

PROG = "jsphere.demo"
TABLE_METRICS = ("ACC", "std_acc", "EER", "AUC", "TPR@FPR=0.001", "TPR@FPR=0.05")
COMPILATION_CACHE = "compilation_cache"


def use_compilation_cache(folder: Path) -> None:
    """JAX's persistent compilation cache in ``folder``: every compiled program of the run (train step, evaluation)
    is written there and read back by the next run of the same code on the same machine."""
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def validation_rows(workdir: Path, set_name: str) -> dict[int, dict[str, float]]:
    """Validation results by step from ``metrics.jsonl``."""
    rows: dict[int, dict[str, float]] = {}
    prefix = f"val/{set_name}/"
    for line in (workdir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        values = {k[len(prefix):]: v for k, v in record.items() if k.startswith(prefix)}
        if values:
            rows[int(record["step"])] = values
    return rows


def format_table(rows: dict[int, dict[str, float]], total_steps: int) -> str:
    header = f"{'model':<22}" + "".join(f"{m:>15}" for m in TABLE_METRICS)
    lines = ["Verification on held-out synthetic identities (x100; ACC: OpenSphere best threshold, "
             "std_acc: 10-fold standard protocol)", header, "-" * len(header)]
    for step in sorted(rows):
        label = "untrained (step 0)" if step == 0 else f"trained (step {step})"
        if step not in (0, total_steps):
            continue
        lines.append(f"{label:<22}" + "".join(f"{rows[step].get(m, float('nan')):>15.2f}" for m in TABLE_METRICS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--workdir", default="runs/quickstart")
    parser.add_argument("--data", default="data/synthetic", help="synthetic data folder (generated if missing)")
    parser.add_argument("--head", default="sphereface2", help="quickstart head: sphereface2, arcface, cosface, ...")
    parser.add_argument("--steps", type=int, default=None, help="override the number of training steps (>= 1)")
    parser.add_argument("--models", action="store_true", help="print the backbone table and exit")
    args = parser.parse_args(argv)
    # The training stack (JAX, Flax, orbax, Grain; 3-4 s to import on a 2-core machine) is imported once the
    # arguments parse, so that --help and a mistyped flag answer at once.
    from configs import quickstart
    from jsphere import config_check, heads, models, train

    if args.models:
        print(f"{'model':<22}{'parameters':>14}  output for [1, 112, 112, 3]", flush=True)
        for name, count, shape in models.summary():  # each row as soon as it is measured (seconds each)
            print(f"{name:<22}{count:>14,}  {list(shape)}", flush=True)
        return 0

    if args.steps is not None and not 1 <= args.steps <= config_check.MAX_STEPS:
        raise errors.UserError(f"--steps {args.steps}: must be in [1, {config_check.MAX_STEPS:,}] (the quickstart's "
                               "default is 400)")
    if args.head not in heads.names():
        raise errors.UserError(f"--head {args.head}: unknown head; valid: {', '.join(heads.names())}")
    config_check.check_workdir_given(args.workdir)
    flags.FLAGS.mark_as_parsed()  # Grain reads absl flags
    observe.log_jsphere_info()
    data = Path(args.data)
    start = time.perf_counter()
    if not (data / "train_list.txt").exists() or not (data / "val_pairs.txt").exists():
        if data.is_dir() and not data.is_symlink() and any(data.iterdir()):
            raise errors.UserError(f"--data {data}: holds other files, not the demo's synthetic set (train_list.txt "
                                   "and val_pairs.txt); give a missing or empty folder (the set is generated there) "
                                   "or the folder of an earlier demo")
        print(f"jsphere demo: generating the synthetic identity set in {data} ...", flush=True)
        synthetic.generate(data, flag="--data", progress=True)
    data_seconds = time.perf_counter() - start
    config = quickstart.get_config(args.head)
    config.data.source = str(data / "train_list.txt")
    config.data.data_dir = str(data)
    config.val = [dict(name="synthetic", type="pairs", path=str(data / "val_pairs.txt"), data_dir=str(data))]
    if args.steps is not None:
        config.total_steps = args.steps
        config.optim.warmup_steps = min(config.optim.warmup_steps, args.steps // 10)
    workdir = Path(args.workdir)
    use_compilation_cache(workdir / COMPILATION_CACHE)
    start = time.perf_counter()
    train.train_and_evaluate(config, str(workdir))
    train_seconds = time.perf_counter() - start
    print()
    print(format_table(validation_rows(workdir, "synthetic"), config.total_steps))
    print(f"\ntime: data {data_seconds:.0f} s, compile + train + evaluate {train_seconds:.0f} s")
    return 0


if __name__ == "__main__":
    cli.run(PROG, main)
