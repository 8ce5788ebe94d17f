"""OpenSphere test config cplfw: pair verification, both protocols."""

from configs.test.common import PAIR_SETS, eval_config


def get_config(arg=None):
    return eval_config(PAIR_SETS["cplfw"])
