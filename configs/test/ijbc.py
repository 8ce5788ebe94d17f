"""OpenSphere test config ijbc: 1:1 TAR@FAR and 1:N identification."""

from configs.test.common import IJB_SETS, eval_config


def get_config(arg=None):
    return eval_config(IJB_SETS["ijbc"])
