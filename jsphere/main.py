"""Entry point: ``python -m jsphere.main --config=configs/ms1m_iresnet100.py[:arg] --workdir=DIR [--mode=train|eval]``.

Parses the locked ml_collections config (``--config.optim.lr=0.05`` style overrides), starts
``jax.distributed`` for multi-process jobs (``--coordinator/--num_processes/--process_id`` or SLURM / MPI / k8s
auto-detection), logs the processes and devices, and hands over to training or evaluation.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

import configs
from jsphere import cli, config_overrides, errors, observe

PROG = "jsphere.main"

_ARGV: list[str] = []  # the command line the config flag reads its overrides from, filled by parse_flags
_CONFIG = config_flags.DEFINE_config_file("config", None, "Run recipe (configs/*.py[:arg]).", lock_config=True,
                                          sys_argv=_ARGV)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and reports (resumed if present).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "train: train (then validate); eval: evaluate "
                          "the checkpoints of --workdir with the test sets of --config.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0 for a multi-process job.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Index of this process in a multi-process job.")
flags.DEFINE_boolean("debug", False, "Show the Python traceback of an error (or set JSPHERE_DEBUG=1).")


def _shipped(path: str) -> Path | None:
    """A relative ``configs/...`` path that is not in the current folder, found among jsphere's own recipes."""
    relative = Path(path)
    if relative.is_absolute() or not relative.parts or relative.parts[0] != "configs":
        return None
    shipped = Path(configs.__file__).resolve().parent.joinpath(*relative.parts[1:])
    return shipped if shipped.is_file() else None


def _config_file(argv: list[str]) -> list[str]:
    """``argv`` with its ``--config=FILE[:arg]`` checked: a ``configs/...`` recipe is found from any folder (the
    shipped file, when the current folder has none); a file that does not exist is refused in one line."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        at = i if arg.startswith("--config=") else i + 1 if arg == "--config" and i + 1 < len(argv) else None
        if at is None:
            continue
        value = argv[at].split("=", 1)[1] if at == i else argv[at]
        path, sep, rest = value.partition(":")
        if Path(path).expanduser().is_file():
            continue
        shipped = _shipped(path)
        if shipped is None:
            cli.fail(PROG, f"--config={value}: no such config file {path!r} (the recipes are in configs/)")
        argv[at] = ("--config=" if at == i else "") + f"{shipped}{sep}{rest}"
    return argv


def _override_error(argv: list[str], error: Exception) -> str:
    """An exception from applying ``--config.a.b=v`` overrides, naming the override at fault."""
    text = errors.describe(error).replace("\\n", " ").replace("\\'", "'")
    missing = re.match(r"""^['"]*'?([A-Za-z_][\w]*)'?['"]*""", text)
    overrides = [a for a in argv[1:] if a.startswith("--config.")]
    if isinstance(error, AttributeError | KeyError) and missing:
        key = missing.group(1)
        culprit = next((a for a in overrides if key in a.split("=", 1)[0].split(".")), None)
        hint = re.search(r"Did you mean .*\?", text)
        where = culprit.split("=", 1)[0] if culprit else f"config key {key!r}"
        return (f"{where}: the config has no key {key!r}" + (f" ({hint.group(0).strip(chr(39))})" if hint else "")
                + "; every key is listed by --config=<file> --helpfull or in configs/base.py")
    culprit = next((a for a in overrides if a.split("=", 1)[0] in text), None)
    return f"{culprit.split('=', 1)[0] + ': ' if culprit else ''}{text}"


def _repeated_config(argv: list[str]) -> str | None:
    """``--config`` given more than once (absl would keep the last one, or fail naming an override)."""
    given = [a for a in argv[1:] if a == "--config" or a.startswith("--config=")]
    if len(given) < 2:
        return None
    return (f"--config was given {len(given)} times ({', '.join(given)}): give one recipe, and change its values "
            "with --config.<key>=<value>")


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing with every failure (unknown flag, missing config file, bad override) as one line."""
    repeated = _repeated_config(argv)
    if repeated:
        cli.fail(PROG, repeated)
    argv = _config_file(argv)
    argv, free_form = config_overrides.split(argv)  # model.kwargs / head.hparams entries keep the type written
    _ARGV[:] = argv
    try:
        remaining = flags.FLAGS(argv)
        if _CONFIG.value is not None:
            config_overrides.apply(_CONFIG.value, free_form)
        return remaining
    except flags.Error as e:
        if errors.debug_requested(argv):
            raise
        text = str(e)
        if "Traceback (most recent call last)" in text:  # the config file's get_config raised
            last = text.strip().splitlines()[-1].strip()
            cli.fail(PROG, f"{text.split(':', 1)[0]}: the config file raised {last}")
        cli.fail(PROG, f"{errors.describe(e)} (see --helpshort)")
    except Exception as e:  # a config file or an override that fails to apply
        if errors.debug_requested(argv):
            raise
        cli.fail(PROG, _override_error(argv, e))


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        cli.fail(PROG, f"unexpected arguments: {' '.join(argv[1:])} (flags take the form --name=value)")
    if not flags.FLAGS["verbosity"].present:
        observe.log_jsphere_info()  # other libraries' INFO chatter stays hidden; -v 0 shows it
    try:
        return _run(_CONFIG.value, _WORKDIR.value, _MODE.value)
    except errors.BAD_INPUT as e:  # the message names the file, key, value or step at fault
        if errors.debug_requested():
            raise
        cli.fail(PROG, errors.describe(e))


def _run(config, workdir: str, mode: str) -> int:
    # The training stack (JAX, Flax, orbax, Grain; 3-4 s to import on a 2-core machine) is imported once the flags
    # parse: --help, a mistyped flag or a missing config file answer in 0.2 s.
    from jsphere import config_check, parallel, train
    from jsphere.eval.run import evaluate

    config_check.check_workdir_given(workdir)
    if mode == "train":
        config_check.check_values(config)  # before anything starts, the values that cannot be right
    else:
        config_check.check_eval_values(config, f"--config={config_flags.get_config_filename(flags.FLAGS['config'])}")
    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    try:
        if mode == "eval":
            evaluate(config, workdir)
        else:
            train.train_and_evaluate(config, workdir)
    except train.NonFiniteLoss as e:
        raise errors.UserError(str(e)) from e
    except train.Preempted as e:
        print(f"{PROG}: {e}", file=sys.stderr, flush=True)
        return 143
    return 0


def run() -> None:
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)


if __name__ == "__main__":
    run()
