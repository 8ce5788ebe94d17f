"""How a run's training faces were aligned, so that its checkpoints record it (``meta['input']['alignment']``,
``jsphere.input_convention``) and ``jsphere.embed --detect`` crops new photos the same way.

``config.data.alignment`` says it: ``arcface`` (insightface's alignment: every insightface dataset, a folder of its
crops), ``opensphere`` (OpenSphere's ``face_alignment``: its VGGFace2 lists), ``unknown``, or ``auto`` (the
default): ``arcface`` for a ``train.rec``, the style ``jsphere.align`` recorded in the ``align.json`` of a folder it
wrote (or of the folder of a list file), else unknown.
"""

from __future__ import annotations

import json
from pathlib import Path

from jsphere.input_convention import ALIGNMENTS

CHOICES = ("auto", *ALIGNMENTS, "unknown")
SETTINGS = "align.json"  # what jsphere.align writes beside its crops (its settings, the style among them)


def training_alignment(source: str | None, declared: str) -> str | None:
    """The alignment of the faces of ``source`` (``config.data.source``) given ``declared``
    (``config.data.alignment``); None when not known."""
    if declared != "auto":
        return None if declared == "unknown" else declared
    if not source or source.startswith("tfds:"):
        return None
    path = Path(source)
    if path.suffix == ".rec" or (path.is_dir() and (path / "train.rec").exists()):
        return "arcface"
    settings = (path if path.is_dir() else path.parent) / SETTINGS
    try:
        style = json.loads(settings.read_text(encoding="utf-8")).get("align_style")
    except (OSError, ValueError, AttributeError):
        return None
    return style if style in ALIGNMENTS else None
