"""The face-detection options the commands share (``jsphere.align``, ``jsphere.embed --detect``): the flags, the
detector they describe, and the settings that decide the aligned crops."""

from __future__ import annotations

import argparse

from jsphere.data.landmark_align import STYLES
from jsphere.detect import weights
from jsphere.detect.detector import SOFTMAX_MODES, Detector, DetectorConfig

DEFAULT_STYLE = "opensphere"  # OpenSphere's pipeline, for a model whose alignment is not recorded


def parse_crop(text: str) -> tuple[int, int]:
    """``112x112`` or ``96x112`` (width x height, OpenSphere's two crops)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, 112x112 or 96x112") from None
    if (w, h) not in ((112, 112), (96, 112)):
        raise argparse.ArgumentTypeError(f"{text!r}: OpenSphere's alignment crops 112x112 or 96x112")
    return w, h


def add_detector_arguments(p: argparse.ArgumentParser) -> None:
    c = DetectorConfig()
    g = p.add_argument_group("face detection (MTCNN, OpenSphere's defaults)")
    g.add_argument("--detector", default=None,
                   help=f"detector checkpoint from converters.import_mtcnn (default: {weights.default_dir()})")
    g.add_argument("--min-face", type=float, default=c.min_face_size, help="smallest face searched, in pixels")
    g.add_argument("--thresholds", type=float, nargs=3, default=list(c.thresholds), metavar=("P", "R", "O"),
                   help="face probability thresholds of P-Net, R-Net, O-Net")
    g.add_argument("--pnet-softmax", choices=SOFTMAX_MODES, default=c.pnet_softmax,
                   help="'opensphere' reproduces OpenSphere's port exactly (softmax over the map's width; finds "
                        "fewer faces)")
    g.add_argument("--align-style", choices=STYLES, default=None,
                   help="alignment: insightface's Umeyama fit (arcface) or OpenSphere's cp2tform (opensphere); "
                        "default: the one the model's checkpoint records, else opensphere")


def align_style(given: str | None, recorded: str | None, default: str = DEFAULT_STYLE) -> tuple[str, str]:
    """The alignment to crop faces with and why: ``--align-style`` when ``given``, else the one the model's
    checkpoint ``recorded`` (how its training faces were aligned), else ``default``."""
    if given:
        return given, "--align-style"
    if recorded:
        return recorded, "as the checkpoint records the model's training faces were aligned; --align-style overrides"
    return default, "the checkpoint records no alignment; --align-style arcface|opensphere chooses"


def detector_from_args(a: argparse.Namespace) -> Detector:
    """The detector the options of ``add_detector_arguments`` describe (bad values name their flag)."""
    if not a.min_face >= 1:
        raise ValueError(f"--min-face {a.min_face}: must be >= 1 pixel")
    for t in a.thresholds:
        if not 0 <= t < 1:
            raise ValueError(f"--thresholds {' '.join(map(str, a.thresholds))}: each must be in [0, 1)")
    config = DetectorConfig(min_face_size=a.min_face, thresholds=tuple(a.thresholds), pnet_softmax=a.pnet_softmax)
    return Detector.from_checkpoint(a.detector, config)


def settings(a: argparse.Namespace) -> dict:
    """What decides the aligned crops (recorded by ``jsphere.align`` so that a resumed run cannot mix settings;
    ``a.align_style`` is the style resolved by ``align_style``)."""
    return {"min_face": a.min_face, "thresholds": list(a.thresholds), "pnet_softmax": a.pnet_softmax,
            "align_style": a.align_style}
