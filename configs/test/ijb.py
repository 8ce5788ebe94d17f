"""OpenSphere test config ijb: IJB-B and IJB-C."""

from configs.test.common import IJB_SETS, eval_config


def get_config(arg=None):
    return eval_config(IJB_SETS["ijbb"], IJB_SETS["ijbc"])
