"""``--config`` overrides of ``model.kwargs`` and ``head.hparams`` keep the type the user writes (an int stays an
int over a recipe's float), may add an argument the recipe does not set, and a model that cannot be built with
them is refused in one line naming the key."""

import ast
import math
import subprocess
import sys

import ml_collections
import pytest

from jsphere import config_check, config_overrides
from tests.test_cli_errors import ROOT, assert_one_error_line, run

PRINT_CONFIG = ("import sys; from absl import flags; from jsphere import main; main.parse_flags(sys.argv); "
                "c = flags.FLAGS.config; print(repr((c.model.kwargs.to_dict(), c.head.hparams.to_dict(), c.optim.lr)))")


def _parsed(*overrides):
    """(model.kwargs, head.hparams, optim.lr) of the quickstart recipe with ``overrides``, parsed by jsphere.main."""
    proc = subprocess.run([sys.executable, "-c", PRINT_CONFIG, "--config=configs/quickstart.py", "--workdir=unused",
                           *overrides], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def test_overrides_of_the_model_and_head_arguments_keep_the_type_written():
    kwargs, hparams, lr = _parsed("--config.model.kwargs.width=16", "--config.head.hparams.r", "30",
                                  "--config.head.hparams.magn_type=A", "--config.model.kwargs.blocks=(1, 2)",
                                  "--config.optim.lr=1")
    assert kwargs == {"width": 16, "blocks": (1, 2)} and type(kwargs["width"]) is int  # the recipe's width is 0.5
    assert hparams["r"] == 30 and type(hparams["r"]) is int and hparams["magn_type"] == "A"
    assert type(hparams["m"]) is float  # untouched entries keep the recipe's values
    assert lr == 1.0 and type(lr) is float  # a declared field keeps the config's type


@pytest.mark.parametrize(("text", "value"), [("16", 16), ("0.5", 0.5), ("-3", -3), ("(2, 8, 16, 4)", (2, 8, 16, 4)),
                                             ("True", True), ("false", False), ("None", None), ("'C'", "C"),
                                             ("C", "C"), ("trainable", "trainable"), ("inf", float("inf")),
                                             ("-Inf", float("-inf"))])
def test_an_override_is_read_as_the_literal_it_writes(text, value):
    assert config_overrides.literal(text) == value and type(config_overrides.literal(text)) is type(value)


def test_an_override_reads_nan_as_a_float_for_the_head_to_refuse():
    assert math.isnan(config_overrides.literal("nan"))


def test_split_takes_out_only_entries_of_the_free_form_dicts_and_apply_keeps_them_locked():
    argv = ["jsphere.main", "--config=x.py", "--config.model.kwargs.width=16", "--config.optim.lr=0.1",
            "--config.head.hparams.m", "0.4", "--config.model.name=iresnet50", "--config.model.kwargs.a.b=1"]
    kept, overrides = config_overrides.split(argv)
    assert kept == ["jsphere.main", "--config=x.py", "--config.optim.lr=0.1", "--config.model.name=iresnet50",
                    "--config.model.kwargs.a.b=1"]
    assert overrides == [("model.kwargs.width", "16"), ("head.hparams.m", "0.4")]
    config = ml_collections.ConfigDict({"model": {"kwargs": {"width": 0.5}}, "head": {"hparams": {}}})
    config.lock()
    config_overrides.apply(config, overrides)
    assert config.model.kwargs.to_dict() == {"width": 16} and config.head.hparams.m == 0.4
    with pytest.raises(AttributeError):
        config.model.kwargs.typo = 1


def test_a_model_that_cannot_be_built_is_named_by_key():
    from configs.quickstart import get_config

    config = get_config()
    config_check.check_model(config)
    config.model.kwargs = ml_collections.ConfigDict({"width": -1})
    with pytest.raises(ValueError, match=r"^config.model.kwargs.width=-1: model 'sfnet4_bn' cannot be built with it: "
                                         r"SFNet width must be > 0"):
        config_check.check_model(config)


@pytest.mark.parametrize(("override", "fragments"), [
    ("--config.model.kwargs.widht=16", ("config.model.kwargs.widht=16", "cannot be built",
                                        "unexpected keyword argument 'widht'")),
    ("--config.model.kwargs.width=0", ("config.model.kwargs.width=0", "SFNet width must be > 0")),
])
def test_main_refuses_a_model_it_cannot_build_in_one_line_before_anything_starts(tmp_path, override, fragments):
    proc = run("jsphere.main", "--config=configs/quickstart.py", f"--workdir={tmp_path / 'w'}", override)
    assert_one_error_line(proc, "jsphere.main", *fragments)
    assert not (tmp_path / "w").exists()
