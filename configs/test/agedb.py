"""Test config agedb: pair verification, both protocols: ``configs/test/agedb.py[:opensphere|bin]``.

Default: OpenSphere's pair list; ``:bin`` insightface's ``agedb_30.bin`` (the form AgeDB-30 is published in for
verification). Paths are in ``configs/test/common.py``.
"""

from configs.test.common import pair_set_config


def get_config(arg=None):
    return pair_set_config("agedb", arg)
