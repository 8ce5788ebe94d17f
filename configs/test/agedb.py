"""Test config agedb: pair verification, both protocols: ``configs/test/agedb.py[:opensphere|pairs|bin]``.

Default: OpenSphere's ``agedb_30_ann.txt``; ``:pairs`` AgeDB's protocol file ``04_FINAL_protocol_30_years.mat``
(scored on its 10 folds; images ``03_Protocol_Images/<name>.jpg``, aligned to 112x112); ``:bin``
insightface's ``agedb_30.bin``. The set's ``format`` is ``auto`` (detected from the file). Paths are in
``configs/test/common.py``.
"""

from configs.test.common import pair_set_config


def get_config(arg=None):
    return pair_set_config("agedb", arg)
