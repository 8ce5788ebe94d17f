"""The converters write their outputs under jsphere's one rule for ``--out`` (see :mod:`jsphere.outputs`):
exactly the path given, parents created, an existing output refused unless ``--overwrite``, never through a
symbolic link, all-or-nothing."""

from jsphere.outputs import add_overwrite_argument, check_free, staged_dir, staged_file

__all__ = ["add_overwrite_argument", "check_free", "staged_dir", "staged_file"]
