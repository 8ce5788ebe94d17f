"""``python -m jsphere.align --input PHOTOS --output ALIGNED [--largest | --all] [--workers N] [--crop 112x112]
[--ckpt DIR | --align-style arcface|opensphere]``:
detect and align the faces of a folder of ordinary photos, for ``jsphere.data.pack`` and training.

``PHOTOS`` is a folder (``identity/image.jpg`` ..., every .jpg/.jpeg/.png/.bmp below it) or a list file (one
photo path per line, relative to the list's folder, other fields ignored). Each photo's face — the largest one
by default (``--largest``), or every face with ``--all`` (written as ``image_0.jpg``, ``image_1.jpg`` ..., highest
score first) — is found by MTCNN (``jsphere.detect``; the checkpoint of ``converters.import_mtcnn``), aligned
by OpenSphere's 5-point similarity (``jsphere.data.landmark_align``) and written under the same relative name in
``ALIGNED`` (JPEG quality 95, PNG and BMP as they came). ``--ckpt DIR`` aligns as that model's training faces were
(the alignment its checkpoint records: insightface's for its and arcface_torch's releases), ``--align-style``
chooses either way; ``ALIGNED/align.json`` records the style, which a run trained on the folder records in its
checkpoints (``config.data.alignment``).

Photos without a face, unreadable files and images refused (not an image, over 64 megapixels) are listed in
``ALIGNED/no_face.txt`` (``path<TAB>reason``); none stops the run. Each crop is written atomically, so an
interrupted run is resumed by running the same command again: photos already aligned or listed are skipped
(``ALIGNED/align.json`` records the settings; a resumed run must use the same). The folder is filled as the
run goes, unlike the all-or-nothing outputs of the other commands.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from jsphere import checkpoint, cli, errors, observe
from jsphere.data.decode import encode_jpeg
from jsphere.data.listfile import read_lines, resolve
from jsphere.data.sources import IMAGE_SUFFIXES
from jsphere.data.training_alignment import SETTINGS
from jsphere.detect import options
from jsphere.detect.faces import aligned_faces
from jsphere.detect.photos import PhotoError, read_photo
from jsphere.input_convention import InputConvention

PROG = "jsphere.align"
REPORT = "no_face.txt"


def list_photos(input_path: Path) -> list[tuple[Path, str]]:
    """(photo path, relative output name) of every photo of a folder or a list file, in order."""
    if input_path.is_dir():
        photos = sorted(p for p in input_path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
        return [(p, p.relative_to(input_path).as_posix()) for p in photos]
    out = []
    for line in read_lines(input_path, "photo list"):
        name = line.fields[0]
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts:
            rel = Path(*rel.parts[-2:]) if len(rel.parts) >= 2 else Path(rel.name)
        out.append((Path(resolve(input_path.parent, name)), rel.as_posix()))
    return out


def output_names(rel: str, count: int, all_faces: bool) -> list[str]:
    """Names of the aligned crops of one photo: its own name, or ``<stem>_<k><suffix>`` with ``--all``; photos of
    other suffixes (from a list) are written as PNG."""
    p = Path(rel)
    suffix = p.suffix if p.suffix.lower() in IMAGE_SUFFIXES else p.suffix + ".png"
    if not all_faces:
        return [str(p.with_suffix(suffix)) if suffix != p.suffix else rel]
    return [str(p.with_name(f"{p.stem}_{k}{suffix}")) for k in range(count)]


def write_image(path: Path, image: np.ndarray) -> None:
    """Encode by suffix and write through a temporary name, so a crop on disk is always complete."""
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        data = encode_jpeg(image)
    else:
        ok, buf = cv2.imencode(suffix, np.ascontiguousarray(image[:, :, ::-1]))
        if not ok:
            raise ValueError(f"{path}: cannot encode a {suffix} image")
        data = buf.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def done(out: Path, rel: str, all_faces: bool, listed: set[str]) -> bool:
    # with --all the crops are written last to first, so crop 0 on disk means the photo is complete
    return rel in listed or (out / output_names(rel, 1, all_faces)[0]).exists()


def align_photo(detector, src: Path, rel: str, out: Path, a) -> tuple[int, str | None]:
    """(faces written, reason it has none) for one photo."""
    try:
        image = read_photo(src)
        found = aligned_faces(image, detector(image), all_faces=a.all, crop=a.crop, style=a.align_style)
    except PhotoError as e:
        return 0, f"{e.reason}: {e}"
    except ValueError as e:  # degenerate landmarks
        return 0, f"alignment failed: {e}"
    if not found:
        return 0, "no face"
    for name, face in reversed(list(zip(output_names(rel, len(found), a.all), found, strict=True))):
        write_image(out / name, face.aligned)
    return len(found), None


def read_report(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.split("\t", 1)[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def check_paths(inp: Path, out: Path) -> None:
    if not inp.exists():
        raise FileNotFoundError(f"--input {inp} does not exist")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise errors.UserError(f"--output {out}: must be a folder (created if missing), not a file or a link")
    if inp.is_dir() and (out.resolve() == inp.resolve() or inp.resolve() in out.resolve().parents):
        raise errors.UserError(f"--output {out}: is inside --input {inp}; the aligned faces would be read back as "
                            "photos. Give a folder outside it")


def check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            old = None
        if old != settings:
            raise errors.UserError(f"--output {out}: was aligned with other settings ({path}: {old}); resuming would "
                                f"mix them with {settings}. Give another folder or the same options")
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings), encoding="utf-8")


def choose_style(given: str | None, ckpt: str | None) -> tuple[str, str]:
    """The alignment style and why: ``--align-style``, else the one ``--ckpt``'s checkpoint records, else
    OpenSphere's."""
    if ckpt is None:
        return options.align_style(given, None)[0], ("--align-style" if given else
                                                     "OpenSphere's, the default; --ckpt DIR aligns as that model's "
                                                     "training faces were, --align-style arcface as insightface does")
    try:
        recorded = InputConvention.from_meta(checkpoint.load_meta(ckpt).get("input")).alignment
    except (TypeError, ValueError) as e:
        raise ValueError(f"--ckpt {ckpt}: the checkpoint's input convention is unreadable: {e}") from None
    return options.align_style(given, recorded)


def main(argv: list[str] | None = None) -> int:
    p = cli.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("--input", required=True, help="folder of photos (identity/image ...) or a list file")
    p.add_argument("--output", required=True, help="folder for the aligned crops (resumable)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--largest", action="store_true", help="the largest face of each photo (default)")
    which.add_argument("--all", action="store_true", help="every face of each photo")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="photos processed at once")
    p.add_argument("--crop", type=options.parse_crop, default=(112, 112), help="112x112 (default) or 96x112")
    p.add_argument("--ckpt", default=None,
                   help="a model's checkpoint: align as its training faces were (the alignment it records)")
    options.add_detector_arguments(p)
    a = p.parse_args(argv)
    most = 4 * (os.cpu_count() or 1)
    if not 1 <= a.workers <= most:
        raise errors.UserError(f"--workers {a.workers}: must be in [1, {most}] (photos processed at once; more than "
                               f"4 per core only thrashes {os.cpu_count()} cores)")
    a.align_style, why = choose_style(a.align_style, a.ckpt)
    inp, out = Path(a.input).expanduser(), Path(a.output).expanduser()
    check_paths(inp, out)
    photos = list_photos(inp)
    if not photos:
        raise errors.UserError(f"--input {inp}: no photos ({'/'.join(IMAGE_SUFFIXES)}) found")
    detector = options.detector_from_args(a)
    check_settings(out, {**options.settings(a), "crop": list(a.crop), "faces": "all" if a.all else "largest"})
    print(f"{PROG}: aligning faces {a.align_style}-style ({why})", file=sys.stderr)
    listed = read_report(out / REPORT)
    todo = [(src, rel) for src, rel in photos if not done(out, rel, a.all, listed)]
    written = aligned = 0
    missing: list[str] = []
    with (open(out / REPORT, "a", encoding="utf-8") as report, observe.ImageProgress(len(todo), "aligned") as bar,
          ThreadPoolExecutor(a.workers) as pool):
        for start in range(0, len(todo), 4 * a.workers):
            chunk = todo[start:start + 4 * a.workers]
            for (_, rel), (count, reason) in zip(chunk, pool.map(
                    lambda job: align_photo(detector, job[0], job[1], out, a), chunk), strict=True):
                if reason is None:
                    written, aligned = written + count, aligned + 1
                else:
                    missing.append(f"{rel}: {reason}")
                    report.write(f"{rel}\t{reason}\n")
                    report.flush()
                bar.advance(1)
    skipped = len(photos) - len(todo)
    print(f"aligned {aligned:,} of {len(todo):,} photos ({written:,} faces) into {out}"
          + (f"; {skipped:,} done before were skipped" if skipped else "")
          + (f"; {len(missing):,} without a usable face listed in {out / REPORT}" if missing else ""))
    for line in missing[:10]:
        print(f"  {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run(PROG, main)
