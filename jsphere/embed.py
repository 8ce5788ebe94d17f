"""``python -m jsphere.embed --ckpt DIR --input PATH --output feats.npy [--flip sum|none] [--batch-size N]
[--landmarks FILE]``: embeddings of your own face images.

PATH is a folder (every image below it, sorted by path), a list file (one image path per line, optionally followed
by other fields; relative paths are relative to the list's folder) or a ``.npy`` of uint8 NHWC aligned 112x112 RGB
images. Unaligned images need ``--landmarks``: a text file of ``path x1 y1 ... x5 y5`` lines (left eye, right eye,
nose, left and right mouth corners) or a ``.npy`` [N, 5, 2] in input order; they are aligned to the ArcFace 112x112
template the way the model's training faces were (the alignment its checkpoint records, else insightface's;
``--align-style`` overrides). Output: float32 [N, D] rows in input order (not normalised), written at exactly the
``--output`` path under :mod:`jsphere.outputs`' rule (``--overwrite`` replaces an existing file).

Raw photos: ``--detect`` finds each photo's largest face with MTCNN (``jsphere.detect``, the checkpoint of
``converters.import_mtcnn``) and aligns it as the model's training faces were (the alignment its checkpoint records:
insightface's for insightface / arcface_torch releases, OpenSphere's for OpenSphere's; OpenSphere's when none is
recorded; ``--align-style`` overrides): one row per photo, NaN for a photo without a usable face; ``--all`` embeds
every face, one row each. ``--faces FILE`` (default ``<output>.faces.tsv``) tells which photo, box, score and
landmarks each row is (``jsphere.detect.embed_faces``).
"""

from __future__ import annotations

import sys

import numpy as np

from jsphere import cli, errors, outputs
from jsphere.data.inputs import load_inputs
from jsphere.detect import embed_faces
from jsphere.detect import options as detect_options
from jsphere.inference import Embedder, check_batch_size

PROG = "jsphere.embed"


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("--ckpt", required=True, help="jsphere checkpoint (workdir, checkpoints folder or step folder)")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True, help="the .npy file to write (exactly this path)")
    outputs.add_overwrite_argument(p)
    p.add_argument("--flip", choices=("sum", "none"), default="sum")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--landmarks", default=None)
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--detect", action="store_true", help="raw photos: detect and align the largest face")
    p.add_argument("--all", action="store_true", help="with --detect: every face of each photo, one row each")
    p.add_argument("--faces", default=None, help="with --detect: the faces table (default: <output>.faces.tsv)")
    detect_options.add_detector_arguments(p)
    a = p.parse_args(argv)
    if (a.all or a.faces) and not a.detect:
        raise errors.UserError("--all and --faces go with --detect (raw photos)")
    if a.detect and a.landmarks:
        raise errors.UserError("--detect finds the landmarks itself: give --detect or --landmarks, not both")
    faces_path = a.faces or f"{a.output}.faces.tsv"
    outputs.check_distinct({"--input": a.input, "--landmarks": a.landmarks, "--output": a.output,
                            "--faces": faces_path if a.detect else None})
    outputs.check_free(a.output, flag="--output", overwrite=a.overwrite, folder=False)
    check_batch_size(a.batch_size, "--batch-size")
    if a.align_style and not (a.detect or a.landmarks):
        raise errors.UserError("--align-style goes with --detect or --landmarks (faces to align)")
    if a.detect:
        outputs.check_free(faces_path, flag="--faces", overwrite=a.overwrite, folder=False)
    detector = detect_options.detector_from_args(a) if a.detect else None
    aligning = a.detect or a.landmarks
    if not aligning:  # aligned faces: read (and a bad one named) before the checkpoint loads
        images = load_inputs(a.input)
    embedder = Embedder.from_checkpoint(a.ckpt, step=a.step, batch_size=a.batch_size, progress=True)
    style = None
    if aligning:  # the alignment the checkpoint records decides how faces are aligned
        style, why = detect_options.align_style(a.align_style, embedder.alignment,
                                                detect_options.DEFAULT_STYLE if a.detect else "arcface")
    if a.detect:
        found = embed_faces.detect_inputs(a.input, detector, all_faces=a.all, style=style)
        for line in found.missing:
            print(f"{PROG}: no face: {line}", file=sys.stderr)
        if not len(found.faces):
            raise errors.UserError(f"--input {a.input}: no face found in any photo ({len(found.missing)} listed above)")
        images = found.faces
    elif a.landmarks:
        images = load_inputs(a.input, a.landmarks, style=style)
    if style:
        print(f"{PROG}: faces aligned {style}-style ({why})", file=sys.stderr)
    feats = embedder.embed(images, flip=a.flip)
    if a.detect:
        feats = embed_faces.scatter(found, feats)
        with outputs.staged_file(faces_path, flag="--faces", overwrite=a.overwrite) as tmp:
            embed_faces.write_table(found, tmp)
    with outputs.staged_file(a.output, flag="--output", overwrite=a.overwrite) as tmp, open(tmp, "wb") as f:
        np.save(f, feats)  # a file object: np.save would append .npy to a name
    print(f"wrote {feats.shape[0]} x {feats.shape[1]} embeddings (step {embedder.step}) to {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run(PROG, main)
