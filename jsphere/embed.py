"""``python -m jsphere.embed --ckpt DIR --input PATH --output feats.npy [--flip sum|none] [--batch-size N]
[--landmarks FILE]``: embeddings of your own face images.

PATH is a folder (every image below it, sorted by path), a list file (one image path per line, optionally
followed by other fields; relative paths are relative to the list's folder) or a ``.npy`` of uint8 NHWC
aligned 112x112 RGB images. Unaligned images need ``--landmarks``: a text file of ``path x1 y1 ... x5 y5`` lines
(left eye, right eye, nose, left and right mouth corners) or a ``.npy`` [N, 5, 2] in input order; they are
aligned to the ArcFace 112x112 template. Output: float32 [N, D] rows in input order (not normalised), written at
exactly the ``--output`` path under :mod:`jsphere.outputs`' rule (``--overwrite`` replaces an existing file).

Raw photos: ``--detect`` finds each photo's largest face with MTCNN (``jsphere.detect``, the checkpoint of
``converters.import_mtcnn``) and aligns it as OpenSphere does: one row per photo, NaN for a photo without a
usable face; ``--all`` embeds every face, one row each. ``--faces FILE`` (default ``<output>.faces.tsv``) tells
which photo, box, score and landmarks each row is (``jsphere.detect.embed_faces``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from jsphere import cli, errors, outputs
from jsphere.data.decode import check_aligned, decode_image
from jsphere.data.landmark_align import align_face
from jsphere.data.listfile import read_lines, resolve
from jsphere.data.sources import IMAGE_SUFFIXES

PROG = "jsphere.embed"


def list_inputs(path: Path) -> list[str]:
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{path}: no images ({'/'.join(IMAGE_SUFFIXES)}) below this folder")
        return files
    return [resolve(path.parent, line.fields[0]) for line in read_lines(path, "image list")]


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise errors.UserError(f"{path}: not a readable .npy array of {what} ({errors.describe(e)})") from e


def read_landmarks(path: Path, files: list[str] | None, count: int) -> np.ndarray:
    if path.suffix == ".npy":
        lm = _load_npy(path, "landmarks")
        if lm.size % 10:
            raise errors.UserError(f"{path}: expected [N, 5, 2] landmarks, got an array of shape {lm.shape}")
        lm = lm.reshape(-1, 5, 2)
    else:
        table = {}
        for line in read_lines(path, "landmark file"):
            try:
                table[line.fields[0]] = np.asarray(line.fields[1:], np.float64).reshape(5, 2)
            except ValueError:
                raise line.error("'path x1 y1 ... x5 y5' (ten numbers)") from None
        if files is None:
            raise ValueError(f"{path}: a text landmark file needs image paths as input, not a .npy")
        lm = []
        for f in files:
            key = next((k for k in (f, Path(f).name) if k in table), None)
            if key is None:
                raise KeyError(f"{path}: no landmarks for image {f}")
            lm.append(table[key])
        lm = np.stack(lm)
    if len(lm) != count:
        raise ValueError(f"{path}: {len(lm)} landmark sets for {count} images")
    return lm


def load_inputs(input_path: str, landmarks: str | None = None, *, flag: str = "--input") -> np.ndarray:
    """The aligned images of ``input_path`` (the value of the command's ``flag``)."""
    path = Path(input_path)
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path} does not exist")
    if path.suffix == ".npy":
        images, files = _load_npy(path, "images"), None
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{path}: expected uint8 [N, H, W, 3] RGB images, got {images.dtype} {images.shape}")
        if not len(images):
            raise errors.UserError(f"{flag} {path}: the file holds no images (shape {images.shape}); give at least one")
        images = list(images)
    else:
        files = list_inputs(path)
        images = [decode_image(Path(f).read_bytes(), what=f) for f in files]
    if landmarks:
        lm = read_landmarks(Path(landmarks), files, len(images))
        return np.stack([align_face(img, lm[i]) for i, img in enumerate(images)])
    names = files or [f"{path} image {i}" for i in range(len(images))]
    return np.stack([check_aligned(img, what=name) for img, name in zip(images, names, strict=True)])


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
    from jsphere.detect import faces as detect_faces

    detect_faces.add_detector_arguments(p)
    a = p.parse_args(argv)
    from jsphere.inference import Embedder

    outputs.check_free(a.output, flag="--output", overwrite=a.overwrite, folder=False)
    if a.batch_size < 1:
        raise errors.UserError(f"--batch-size {a.batch_size}: must be >= 1")
    if (a.all or a.faces) and not a.detect:
        raise errors.UserError("--all and --faces go with --detect (raw photos)")
    if a.detect and a.landmarks:
        raise errors.UserError("--detect finds the landmarks itself: give --detect or --landmarks, not both")
    if a.detect:
        from jsphere.detect import embed_faces

        faces_path = a.faces or f"{a.output}.faces.tsv"
        outputs.check_free(faces_path, flag="--faces", overwrite=a.overwrite, folder=False)
        found = embed_faces.detect_inputs(a.input, detect_faces.detector_from_args(a), all_faces=a.all,
                                          style=a.align_style)
        for line in found.missing:
            print(f"{PROG}: no face: {line}", file=sys.stderr)
        if not len(found.faces):
            raise errors.UserError(f"--input {a.input}: no face found in any photo ({len(found.missing)} listed above)")
        images = found.faces
    else:
        images = load_inputs(a.input, a.landmarks)
    embedder = Embedder.from_checkpoint(a.ckpt, step=a.step, batch_size=a.batch_size, progress=True)
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
