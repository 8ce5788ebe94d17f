"""``python -m benchmarks.gpu_check --out DIR [--smoke] [--stages NAME ...] [--deadline S]``: see the package
docstring. Exit code 0 when every stage passed, 1 when one did not, 2 on bad input or a GPU check where JAX
sees no GPU."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import benchmarks.gpu_check as package
from benchmarks.gpu_check import profiles, table
from benchmarks.gpu_check.runner import Runner
from jsphere import cli, errors

PROG = "benchmarks.gpu_check"


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog=PROG, description=package.__doc__)
    p.add_argument("--out", required=True, help="folder for gpu_check.json, gpu_check.log and gpu_check.md")
    p.add_argument("--smoke", action="store_true", help="every stage on the CPU with tiny shapes (a dry run)")
    p.add_argument("--stages", nargs="+", metavar="NAME", help=f"run only these, of: {' '.join(profiles.ORDER)}")
    p.add_argument("--deadline", type=float, default=None, help="seconds for the whole check (default: the "
                   "profile's); stages that would start later are recorded as skipped")
    p.add_argument("--cache-dir", default=None, help="JAX's persistent compilation cache (default: "
                   "$JAX_COMPILATION_CACHE_DIR, else a folder in the system's temporary directory)")
    a = p.parse_args(argv)
    profile = profiles.SMOKE if a.smoke else profiles.GPU
    wanted = a.stages or profiles.ORDER
    unknown = [s for s in wanted if s not in profiles.ORDER]
    if unknown:
        raise errors.UserError(f"--stages: unknown stage(s) {', '.join(unknown)}; valid: {', '.join(profiles.ORDER)}")
    if a.deadline is not None and not a.deadline > 0:
        raise errors.UserError(f"--deadline {a.deadline}: must be > 0 seconds")
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise errors.UserError(f"--out {out}: is a file; give a folder (it is created if missing)")
    if a.cache_dir is not None and Path(a.cache_dir).exists() and not Path(a.cache_dir).is_dir():
        raise errors.UserError(f"--cache-dir {a.cache_dir}: is a file; give a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    stages = [s for s in profile.stages if s.name in wanted]
    cache = a.cache_dir or str(Path(tempfile.gettempdir()) / "jsphere_gpu_check_jax_cache")
    header = {"check": PROG, "profile": profile.name, "argv": sys.argv[1:] if argv is None else list(argv)}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        runner = Runner(profile, stages, out, Path(work), a.deadline or profile.deadline_s, cache, header)
        try:
            doc = runner.run()
        finally:  # also when a SIGTERM (the time limit of gpu_run.sh) ends the check: the table of what finished
            text = table.render(runner.doc)
            (out / "gpu_check.md").write_text(text + "\n")
            print("\n" + text, flush=True)
    if doc.get("stopped"):
        raise errors.UserError(doc["stopped"])
    print(json.dumps({s["name"]: s["status"] for s in doc["stages"]}), flush=True)
    return 0 if all(s["status"] == "ok" for s in doc["stages"]) else 1


if __name__ == "__main__":
    cli.run(PROG, main)
