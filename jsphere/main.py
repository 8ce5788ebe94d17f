"""Entry point: ``python -m jsphere.main --config=configs/ms1m_iresnet100.py[:arg] --workdir=DIR [--mode=train|eval]``.

Parses the locked ml_collections config (``--config.optim.lr=0.05`` style overrides), starts
``jax.distributed`` for multi-process jobs (``--coordinator/--num_processes/--process_id`` or SLURM / MPI / k8s
auto-detection), logs the processes and devices, and hands over to training or evaluation.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Run recipe (configs/*.py[:arg]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for checkpoints, logs and reports (resumed if present).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"], "train: train (then validate); eval: evaluate "
                          "the checkpoints of --workdir with the test sets of --config.")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0 for a multi-process job.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Index of this process in a multi-process job.")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax/absl INFO chatter; -v 0 brings it back
    import jax

    from jsphere import parallel

    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    logging.info("JAX %s: %d process(es), %d device(s): %s", jax.__version__, jax.process_count(),
                 jax.device_count(), jax.devices())
    config = _CONFIG.value
    from jsphere import train

    try:
        if _MODE.value == "eval":
            from jsphere import evaluate

            evaluate.evaluate(config, _WORKDIR.value)
        else:
            train.train_and_evaluate(config, _WORKDIR.value)
    except (FileNotFoundError, ValueError) as e:  # bad input: the message names the file, key or value at fault
        print(f"jsphere: error: {e}", file=sys.stderr, flush=True)
        return 2
    except train.Preempted as e:
        print(f"jsphere: {e}", file=sys.stderr, flush=True)
        return 143
    except train.NonFiniteLoss as e:
        print(f"jsphere: {e}", file=sys.stderr, flush=True)
        return 3
    return 0


def run() -> None:
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(lambda argv: sys.exit(main(argv)))


if __name__ == "__main__":
    run()
