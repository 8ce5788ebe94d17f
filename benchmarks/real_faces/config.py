"""jsphere.main config of the real-faces recipes: ``--config=benchmarks/real_faces/config.py:<recipe>[,<steps>]``
(``steps``: a shortened run, the schedule scaled with it; ``recipes.config``).

The recipes are in ``benchmarks.real_faces.recipes``; the data paths are given as overrides by the runner:
``--config.data.source=<split>/train_list.txt --config.data.data_dir=<lfw> --config.val[0].path=<split>/
heldout_pairs.txt --config.val[0].data_dir=<lfw> --config.seed=<seed>``.
"""

from benchmarks.real_faces import recipes


def get_config(arg=None):
    name, _, steps = (arg or "sfnet_sphereface2").partition(",")
    return recipes.config(name, int(steps) if steps else None)
