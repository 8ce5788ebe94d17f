"""Checks of a training config before anything is read or compiled; each error names the key at fault.

``check_values`` looks only at the config (every shipped recipe passes it); ``check_model`` builds the model
abstractly (shapes only) with ``model.kwargs``; ``check_paths`` also looks at the files the config names and at
the workdir.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import jax
import ml_collections
from flax import nnx

import configs
from jsphere import heads, models, optim, outputs
from jsphere.data import training_alignment
from jsphere.eval import report
from jsphere.inference import check_batch_size
from jsphere.trainers import DTYPES, TRAINERS

SAMPLERS = ("shuffle", "grouped")
MAX_STEPS = 2**31 - 1  # the training state's step is an int32
ON_CORRUPT = ("raise", "skip")


def _require(ok: bool, key: str, value, why: str) -> None:
    if not ok:
        raise ValueError(f"config.{key}={value!r} {why}")


def _number(config: ml_collections.ConfigDict, key: str, test: Callable[[float], bool], why: str,
            optional: bool = False) -> None:
    """``config.<key>`` is a finite number passing ``test`` (inf passes every bound and ends in a NaN loss)."""
    value = config
    for part in key.split("."):
        value = value[part]
    if value is None and optional:
        return
    number = isinstance(value, int | float) and not isinstance(value, bool)
    _require(not number or math.isfinite(value), key, value, f"is not a finite number; it {why}")
    _require(number and test(value), key, value, why)


def _check_optim(config: ml_collections.ConfigDict) -> None:
    o, total = config.optim, config.total_steps
    _number(config, "optim.lr", lambda v: v >= 0, "must be >= 0 (a negative learning rate climbs the loss)")
    _number(config, "optim.weight_decay", lambda v: v >= 0, "must be >= 0")
    for key in ("bkb_lr", "head_lr"):
        _number(config, f"optim.{key}", lambda v: v >= 0, "must be >= 0 (or None: use optim.lr)", optional=True)
    for key in ("bkb_wd", "head_wd"):
        _number(config, f"optim.{key}", lambda v: v >= 0, "must be >= 0 (or None: use optim.weight_decay)",
                optional=True)
    _number(config, "optim.momentum", lambda v: 0 <= v < 1, "must be in [0, 1)")
    _number(config, "optim.gamma", lambda v: 0 < v <= 1, "must be in (0, 1] (the factor applied at each milestone)")
    _number(config, "optim.warmup_steps", lambda v: 0 <= v < total,
            f"must be in [0, config.total_steps={total})")
    _number(config, "optim.power", lambda v: v > 0, "must be > 0")
    _number(config, "optim.end_lr", lambda v: v >= 0, "must be >= 0")
    _number(config, "optim.b1", lambda v: 0 <= v < 1, "must be in [0, 1)")
    _number(config, "optim.b2", lambda v: 0 <= v < 1, "must be in [0, 1)")
    _number(config, "optim.eps", lambda v: v > 0, "must be > 0")
    _number(config, "optim.clip_grad_norm", lambda v: v > 0, "must be > 0 (or None: no clipping)", optional=True)
    if o.schedule == "multistep":
        milestones = tuple(o.milestones)
        _require(all(isinstance(m, int) and 0 < m <= total for m in milestones), "optim.milestones", milestones,
                 f"must be steps in [1, config.total_steps={total}] (a later milestone is never reached)")
        _require(list(milestones) == sorted(set(milestones)), "optim.milestones", milestones,
                 "must be strictly increasing")
    optim.make_optimizer(o, total)  # unknown optimizer, schedule or clip scope


def _check_data(config: ml_collections.ConfigDict) -> None:
    d = config.data
    for key in ("flip", "augment.crop_prob", "augment.lowres_prob", "augment.photo_prob"):
        _number(config, f"data.{key}", lambda v: 0 <= v <= 1, "is a probability: it must be in [0, 1]")
    _number(config, "data.label_noise.ratio", lambda v: 0 <= v < 1, "must be in [0, 1)")
    _number(config, "data.workers", lambda v: v >= 0, "must be >= 0 (0: decode in the training process)")
    _number(config, "data.threads", lambda v: v >= 1, "must be >= 1")
    _number(config, "data.prefetch", lambda v: v >= 0, "must be >= 0")
    _require(d.on_corrupt in ON_CORRUPT, "data.on_corrupt", d.on_corrupt, f"is not one of {ON_CORRUPT}")
    _require(d.alignment in training_alignment.CHOICES, "data.alignment", d.alignment,
             f"is not one of {training_alignment.CHOICES}")
    _require(d.sampler.type in SAMPLERS, "data.sampler.type", d.sampler.type, f"is not one of {SAMPLERS}")
    if d.sampler.type == "grouped":
        k = d.sampler.samples_per_identity
        _require(isinstance(k, int) and k >= 1 and config.batch_size % k == 0, "data.sampler.samples_per_identity",
                 k, f"must be >= 1 and divide config.batch_size={config.batch_size}")


def check_values(config: ml_collections.ConfigDict) -> None:
    """Reject values that cannot be right (negative lr, milestones past the end, unknown names...)."""
    _require(config.model.name in models.names(), "model.name", config.model.name,
             f"is unknown; valid: {', '.join(models.names())}")
    _require(config.model.dtype in DTYPES, "model.dtype", config.model.dtype, f"is not one of {tuple(DTYPES)}")
    _require(config.model.dtype != "float64" or jax.config.jax_enable_x64, "model.dtype", config.model.dtype,
             "needs 64-bit JAX: run with the environment variable JAX_ENABLE_X64=1")
    _number(config, "model.embed_dim", lambda v: isinstance(v, int) and v > 0, "must be a positive integer")
    _require(config.trainer in TRAINERS, "trainer", config.trainer, f"is not one of {tuple(TRAINERS)}")
    try:  # unknown head / hyper-parameter, a value outside the head's declared range
        head = heads.from_config(config.head)
    except ValueError as error:
        raise ValueError(f"config.head: {error}") from None
    for name, trainer in TRAINERS.items():  # a trainer of one head only (SimPLE's) and that head go together
        if trainer.head is not None and (config.trainer == name) != (head.name == trainer.head):
            raise ValueError(f"config.trainer={config.trainer!r} with config.head.name={config.head.name!r}: head "
                             f"{trainer.head!r} needs trainer {name!r}, and that trainer needs that head")
    _number(config, "head.sample_rate", lambda v: 0 < v <= 1, "must be in (0, 1]")
    _number(config, "total_steps", lambda v: isinstance(v, int) and 0 < v <= MAX_STEPS,
            f"must be a positive integer up to {MAX_STEPS:,} (the step counter is a 32-bit integer)")
    _number(config, "batch_size", lambda v: isinstance(v, int) and v > 0, "must be a positive integer")
    _number(config, "seed", lambda v: isinstance(v, int) and 0 <= v < 2**32,
            "must be an integer in [0, 2**32) (numpy's and Grain's seeds are unsigned 32-bit)")
    _number(config, "num_devices", lambda v: isinstance(v, int) and v >= 0, "must be >= 0 (0: every device)")
    if config.trainer == "simple":
        _require(config.simple.num_bank % config.batch_size == 0, "simple.num_bank", config.simple.num_bank,
                 f"must be a multiple of config.batch_size={config.batch_size} (the bank is a FIFO of whole batches)")
        _number(config, "simple.encoder_momentum", lambda v: 0 <= v <= 1, "must be in [0, 1]")
    _check_optim(config)
    _check_data(config)
    _number(config, "log_every", lambda v: isinstance(v, int) and v > 0, "must be a positive integer")
    _number(config, "val_every", lambda v: isinstance(v, int) and v > 0, "must be a positive integer")
    _number(config, "checkpoint.every_steps", lambda v: isinstance(v, int) and v >= 0,
            "must be >= 0 (0: only at the end)")
    _number(config, "checkpoint.keep", lambda v: isinstance(v, int) and v >= 1, "must be >= 1")
    save_steps = tuple(config.checkpoint.save_steps)
    _require(all(isinstance(s, int) and 0 < s <= config.total_steps for s in save_steps), "checkpoint.save_steps",
             save_steps, f"must be steps in [1, config.total_steps={config.total_steps}]")


def check_model(config: ml_collections.ConfigDict) -> None:
    """The model ``config.model`` names builds with its ``kwargs`` (abstractly: no array is allocated); if not, the
    error names the keyword argument(s) at fault (those the model's message mentions), or all of them."""
    kwargs = config.model.kwargs.to_dict()
    try:
        nnx.eval_shape(lambda: models.build(config.model.name, embed_dim=config.model.embed_dim, rngs=nnx.Rngs(0),
                                            dtype=DTYPES[config.model.dtype], **kwargs))
    except (TypeError, ValueError) as error:
        text = str(error).removeprefix(f"model {config.model.name!r}: ")
        named = [k for k in kwargs if re.search(rf"\b{re.escape(k)}\b", text)]
        where = ", ".join(f"config.model.kwargs.{k}={kwargs[k]!r}" for k in named) or f"config.model.kwargs={kwargs!r}"
        raise ValueError(f"{where}: model {config.model.name!r} cannot be built with it: {text}") from None


def check_eval_values(config: ml_collections.ConfigDict, source: str = "the config") -> None:
    """Reject evaluation settings (``config.eval``, ``--mode=eval``) that cannot be right, and a config without
    them (a training recipe; ``source`` names the config in that message)."""
    if "eval" not in config:
        raise ValueError(f"{source} has no 'eval' section (a training recipe?): --mode=eval takes a test config, "
                         f"configs/test/<set>.py with <set> one of {', '.join(test_configs())}, e.g. "
                         "--config=configs/test/lfw.py")
    for key, why in (("last_k", "must be a positive integer: the number of newest checkpoints to evaluate"),
                     ("batch_size", "must be a positive integer")):
        if key in config.eval:
            _number(config, f"eval.{key}", lambda v: isinstance(v, int) and v > 0, why)
    if "batch_size" in config.eval:
        check_batch_size(config.eval.batch_size, "config.eval.batch_size")
    names = [str(dict(s).get("name", "")) for s in config.eval.get("sets", [])]
    for i, name in enumerate(names):
        try:
            report.check_name(name)
        except ValueError as e:
            raise ValueError(f"config.eval.sets[{i}].name: {e}") from None
        _require(name not in names[:i], f"eval.sets[{i}].name", name,
                 f"is also the name of config.eval.sets[{names.index(name)}]: each set's reports are named after it")


def test_configs() -> list[str]:
    """The names of the shipped test configs (``configs/test/<name>.py``)."""
    folder = Path(configs.__file__).resolve().parent / "test"
    return sorted(p.stem for p in folder.glob("*.py") if p.stem not in ("__init__", "common"))


def check_workdir_given(workdir: str | os.PathLike | None) -> None:
    """Refuse an empty ``--workdir`` (it would mean the current folder)."""
    if workdir is None or not str(workdir).strip():
        raise ValueError(f"--workdir={str(workdir or '')!r} is empty: give the run's folder (e.g. "
                         "--workdir=runs/my_run)")


def check_workdir(workdir: str | os.PathLike) -> Path:
    """The workdir as an absolute path, created if needed; an empty name, a file or an unwritable folder is
    refused."""
    check_workdir_given(workdir)
    path = Path(workdir).expanduser().resolve()
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"--workdir {workdir}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(f"--workdir {workdir}: {parent} is not writable by this user")
            break
    path.mkdir(parents=True, exist_ok=True)
    outputs.refuse_links_inside(path, flag="--workdir")
    return path


def check_paths(config: ml_collections.ConfigDict) -> None:
    """The files and folders the config names exist."""
    source = config.data.source
    if not source:
        raise ValueError("config.data.source is not set: give a list file, an image folder, a train.rec, a packed "
                         "ArrayRecord folder or tfds:<name> (e.g. --config.data.source=/data/ms1m/train.rec)")
    if not str(source).startswith("tfds:"):
        if not Path(source).expanduser().exists():
            raise FileNotFoundError(f"config.data.source={source!r} does not exist")
        if config.data.data_dir and not Path(config.data.data_dir).expanduser().is_dir():
            raise FileNotFoundError(f"config.data.data_dir={config.data.data_dir!r} is not a folder")
    for val_set in config.val:
        if not Path(val_set["path"]).expanduser().exists():
            raise FileNotFoundError(f"config.val set {val_set.get('name', '?')!r}: path {val_set['path']!r} "
                                    "does not exist")
    if config.init_from and not Path(config.init_from).expanduser().exists():
        raise FileNotFoundError(f"config.init_from={config.init_from!r} does not exist")


def validate_config(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> Path:
    """Every check that needs no device: values, the model's arguments, the workdir (returned absolute), the paths
    the config names."""
    check_values(config)
    check_model(config)
    workdir = check_workdir(workdir)
    check_paths(config)
    return workdir
