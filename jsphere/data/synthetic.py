"""A synthetic face-identity data set: real, learnable data for the quickstart and the tests, no download.

Each identity is a stable random "face" (head shape, skin tone, eye/brow/nose/mouth geometry, hair, a
personal pattern of marks, sometimes glasses). Each image of it varies the way photos do: pose (rotation,
scale, shift, yaw-like squeeze), expression (mouth, blinks), lighting (gain and a directional gradient),
background, blur, sensor noise, JPEG quality and random occluders. Nuisance variation is larger than most
identity differences in pixel space, so an untrained network verifies near chance while a trained one
learns the identity cues.

Written in OpenSphere's v1 layout::

    OUT/train/<identity>/<n>.jpg   OUT/train_list.txt   ("train/<identity>/<n>.jpg <identity>")
    OUT/val/<identity>/<n>.jpg     OUT/val_pairs.txt    ("<1|0> val/a/0.jpg val/b/3.jpg", held-out identities)

    python -m jsphere.data.synthetic --out data/synthetic [--identities 300 --images-per-identity 30
        --holdout-identities 100 --holdout-images 10 --pairs 3000 --difficulty 1.0 --seed 0] [--overwrite]

The size on disk is estimated before anything is written (from a few rendered samples) and a request that does
not fit the free space is refused. ``OUT`` follows :mod:`jsphere.outputs`' rule: created with its parents,
written all-or-nothing, an existing non-empty folder replaced only with ``--overwrite``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from jsphere import cli, observe, outputs
from jsphere.data.decode import encode_jpeg

SIZE = 112
SIZE_SAMPLES = 8  # images rendered to estimate the size of a request before writing
PAIR_LINE_BYTES = 48  # "1 val/id00000/0.jpg val/id00001/9.jpg\n" and a little more


@dataclasses.dataclass(frozen=True)
class Identity:
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    face_axes: tuple[float, float]
    eye_y: float
    eye_gap: float
    eye_size: float
    brow_tilt: float
    brow_height: float
    nose_len: float
    nose_width: float
    mouth_y: float
    mouth_width: float
    mouth_curve: float
    hair_height: float
    fringe: float
    marks: np.ndarray  # [n, 3]: x, y, radius in face coordinates
    glasses: bool

    @staticmethod
    def sample(rng: np.random.Generator) -> Identity:
        tone = rng.uniform(0.35, 0.95)
        skin = (tone * 230, tone * 190 + rng.uniform(-15, 15), tone * 160 + rng.uniform(-20, 20))
        return Identity(
            skin=skin,
            hair=tuple(rng.uniform(10, 200) * np.array([1.0, rng.uniform(0.6, 1.0), rng.uniform(0.3, 1.0)])),
            iris=tuple(rng.uniform(20, 180, 3)),
            face_axes=(rng.uniform(27, 38), rng.uniform(36, 46)),
            eye_y=rng.uniform(-12, -4), eye_gap=rng.uniform(12, 21), eye_size=rng.uniform(3, 6.5),
            brow_tilt=rng.uniform(-0.35, 0.35), brow_height=rng.uniform(5, 10),
            nose_len=rng.uniform(7, 17), nose_width=rng.uniform(3, 8),
            mouth_y=rng.uniform(16, 26), mouth_width=rng.uniform(9, 22), mouth_curve=rng.uniform(-5, 5),
            hair_height=rng.uniform(0.2, 0.75), fringe=rng.uniform(-0.5, 0.5),
            marks=np.column_stack([rng.uniform(-22, 22, 4), rng.uniform(-20, 28, 4), rng.uniform(1.0, 2.6, 4)]),
            glasses=bool(rng.random() < 0.2),
        )


def _pt(cx, cy, x, y):
    return int(round(cx + x)), int(round(cy + y))


def render(identity: Identity, rng: np.random.Generator, difficulty: float = 1.0) -> np.ndarray:
    """One uint8 [112, 112, 3] RGB photo of ``identity``."""
    d = difficulty
    canvas = np.empty((SIZE, SIZE, 3), np.float32)
    canvas[:] = rng.uniform(20, 235, 3)
    ramp = np.linspace(-1, 1, SIZE, dtype=np.float32)
    canvas += (rng.uniform(-40, 40, 3) * ramp[:, None, None] * d).astype(np.float32)
    cx, cy = 56.0, 60.0
    ax, ay = identity.face_axes
    # hair behind and above the face
    cv2.ellipse(canvas, _pt(cx, cy, 0, -ay * 0.25), (int(ax + 4), int(ay * (0.75 + identity.hair_height))), 0,
                180, 360, identity.hair, -1, cv2.LINE_AA)
    cv2.ellipse(canvas, (int(cx), int(cy)), (int(ax), int(ay)), 0, 0, 360, identity.skin, -1, cv2.LINE_AA)
    fringe_y = -ay * (0.55 - 0.25 * identity.hair_height)
    cv2.ellipse(canvas, _pt(cx, cy, identity.fringe * 10, fringe_y - 8), (int(ax), int(ay * 0.3)), 0, 180, 360,
                identity.hair, -1, cv2.LINE_AA)
    for mx, my, mr in identity.marks:
        shade = tuple(0.6 * np.asarray(identity.skin))
        cv2.circle(canvas, _pt(cx, cy, mx, my), int(round(mr)), shade, -1, cv2.LINE_AA)
    blink = rng.random() < 0.1 * d
    for side in (-1, 1):
        ex, ey = side * identity.eye_gap, identity.eye_y
        eye_h = 1 if blink else int(round(identity.eye_size * rng.uniform(0.7, 1.0)))
        cv2.ellipse(canvas, _pt(cx, cy, ex, ey), (int(identity.eye_size * 1.6), eye_h), 0, 0, 360,
                    (240, 240, 240), -1, cv2.LINE_AA)
        if not blink:
            cv2.circle(canvas, _pt(cx, cy, ex, ey), max(int(identity.eye_size * 0.8), 1), identity.iris, -1,
                       cv2.LINE_AA)
        tilt = identity.brow_tilt * side
        by = ey - identity.eye_size - identity.brow_height
        cv2.line(canvas, _pt(cx, cy, ex - 7, by + 7 * tilt), _pt(cx, cy, ex + 7, by - 7 * tilt), identity.hair, 2,
                 cv2.LINE_AA)
        if identity.glasses:
            cv2.circle(canvas, _pt(cx, cy, ex, ey), int(identity.eye_size * 2.2), (30, 30, 30), 1, cv2.LINE_AA)
    nose = np.array([_pt(cx, cy, 0, identity.eye_y + 4), _pt(cx, cy, -identity.nose_width, identity.nose_len),
                     _pt(cx, cy, identity.nose_width, identity.nose_len)], np.int32)
    cv2.polylines(canvas, [nose], True, tuple(0.75 * np.asarray(identity.skin)), 1, cv2.LINE_AA)
    curve = identity.mouth_curve + rng.normal(0, 2.0 * d)
    mouth = np.array([_pt(cx, cy, t * identity.mouth_width, identity.mouth_y + curve * (1 - t * t))
                      for t in np.linspace(-1, 1, 9)], np.int32)
    cv2.polylines(canvas, [mouth], False, (120, 40, 50), 2, cv2.LINE_AA)
    # pose: rotation, scale, shift and a yaw-like horizontal squeeze
    angle = rng.normal(0, 8 * d)
    scale = 1 + rng.normal(0, 0.06 * d)
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, :2] *= 1 - abs(rng.normal(0, 0.08 * d))
    m[:, 2] += rng.normal(0, 3 * d, 2)
    img = cv2.warpAffine(canvas, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # lighting: gain, colour cast and a directional gradient
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    yy, xx = np.mgrid[-1:1:SIZE * 1j, -1:1:SIZE * 1j].astype(np.float32)
    light = rng.uniform(1 - 0.35 * d, 1 + 0.3 * d) + rng.uniform(0, 0.35 * d) * (direction[0] * xx + direction[1] * yy)
    img = img * light[..., None] * rng.uniform(1 - 0.12 * d, 1 + 0.12 * d, 3)
    if rng.random() < 0.25 * d:  # occluder
        w, h = rng.integers(15, 45, 2)
        x0, y0 = rng.integers(0, SIZE - w), rng.integers(0, SIZE - h)
        img[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
    sigma = rng.uniform(0, 1.3 * d)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = img + rng.normal(0, rng.uniform(0, 10 * d), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_identity(root: Path, name: str, identity: Identity, count: int, rng, difficulty: float,
                    bar: observe.ImageProgress) -> list[str]:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    rels = []
    for n in range(count):
        data = encode_jpeg(render(identity, rng, difficulty), quality=int(rng.integers(70, 96)))
        (folder / f"{n}.jpg").write_bytes(data)
        rels.append(f"{root.name}/{name}/{n}.jpg")
        bar.advance(1)
    return rels


def _free_bytes(out: Path) -> tuple[Path, int, int]:
    """(the existing folder that ``out`` will be written in, its free bytes, its allocation unit)."""
    folder = out
    while not folder.is_dir():
        folder = folder.parent
    stats = os.statvfs(folder) if hasattr(os, "statvfs") else None
    return folder, shutil.disk_usage(folder).free, (stats.f_frsize if stats and stats.f_frsize else 4096)


def estimate_bytes(images: int, pairs: int, difficulty: float, seed: int, block: int = 4096) -> int:
    """Bytes a request takes on disk: the mean JPEG size of a few rendered samples (their own random stream, so
    the data set does not change), rounded up to whole ``block``s per file, plus the list files."""
    rng = np.random.default_rng([seed, 1])
    sizes = [len(encode_jpeg(render(Identity.sample(rng), rng, difficulty), quality=int(rng.integers(70, 96))))
             for _ in range(SIZE_SAMPLES)]
    per_image = math.ceil(float(np.mean(sizes)) / block) * block
    return images * (per_image + 40) + pairs * PAIR_LINE_BYTES  # 40: a training-list line


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:,.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def check_request(out: str | Path, *, identities: int, images_per_identity: int, holdout_identities: int,
                  holdout_images: int, pairs: int, difficulty: float, seed: int, flag: str = "--out") -> int:
    """Refuse what cannot be generated, naming the flag at fault; returns the estimated bytes on disk."""
    if identities < 2 or holdout_identities < 2 or images_per_identity < 2 or holdout_images < 2:
        raise ValueError(f"need at least 2 identities (--identities {identities}, --holdout-identities "
                         f"{holdout_identities}) and 2 images per identity (--images-per-identity "
                         f"{images_per_identity}, --holdout-images {holdout_images})")
    if pairs < 2:
        raise ValueError(f"--pairs {pairs}: need at least 2 (one genuine, one impostor pair)")
    genuine = holdout_identities * math.comb(holdout_images, 2)  # distinct pairs of one identity's images
    impostor = math.comb(holdout_identities, 2) * holdout_images ** 2  # of two identities' images
    most = 2 * min(genuine, impostor) + (genuine > impostor)  # half genuine (the odd one too), half impostor
    if pairs > most:
        raise ValueError(f"--pairs {pairs:,}: {holdout_identities:,} held-out identities x {holdout_images:,} images "
                         f"make only {genuine:,} distinct genuine and {impostor:,} distinct impostor pairs, and half "
                         f"the pairs are genuine; ask for at most {most:,} pairs, or more held-out identities or "
                         "images (--holdout-identities, --holdout-images)")
    if not math.isfinite(difficulty) or difficulty < 0:
        raise ValueError(f"--difficulty {difficulty}: must be a finite number >= 0 (0: no nuisance variation, "
                         "1: the default)")
    if seed < 0:
        raise ValueError(f"--seed {seed}: must be >= 0")
    images = identities * images_per_identity + holdout_identities * holdout_images
    folder, free, block = _free_bytes(Path(out).expanduser().absolute())
    need = estimate_bytes(images, pairs, difficulty, seed, block)
    if need > free:
        raise ValueError(f"{flag} {out}: {identities:,} x {images_per_identity:,} training and {holdout_identities:,}"
                         f" x {holdout_images:,} held-out images ({images:,}) and {pairs:,} pairs need about "
                         f"{_human(need)} on disk, but {folder} has {_human(free)} free; ask for fewer "
                         "(--identities, --images-per-identity, ...) or write elsewhere")
    return need


def make_pairs(groups: list[list[str]], count: int, rng: np.random.Generator) -> list[tuple[int, str, str]]:
    """Half genuine pairs (same identity), half impostor pairs (different identities), shuffled."""
    pairs = []
    for n in range(count):
        if n % 2 == 0:
            g = groups[rng.integers(len(groups))]
            a, b = rng.choice(len(g), 2, replace=False)
            pairs.append((1, g[a], g[b]))
        else:
            ga, gb = rng.choice(len(groups), 2, replace=False)
            pairs.append((0, groups[ga][rng.integers(len(groups[ga]))], groups[gb][rng.integers(len(groups[gb]))]))
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def generate(out: str | Path, *, identities: int = 300, images_per_identity: int = 30, holdout_identities: int = 100,
             holdout_images: int = 10, pairs: int = 3000, difficulty: float = 1.0, seed: int = 0,
             overwrite: bool = False, flag: str = "--out", progress: bool = False) -> Path:
    """Write the data set to ``out`` (see the module docstring; ``flag`` names ``out`` in errors) and return it."""
    outputs.check_free(out, flag=flag, overwrite=overwrite)
    check_request(out, identities=identities, images_per_identity=images_per_identity,
                  holdout_identities=holdout_identities, holdout_images=holdout_images, pairs=pairs,
                  difficulty=difficulty, seed=seed, flag=flag)
    rng = np.random.default_rng(seed)
    faces = [Identity.sample(rng) for _ in range(identities + holdout_identities)]
    total = identities * images_per_identity + holdout_identities * holdout_images
    with (outputs.staged_dir(out, flag=flag, overwrite=overwrite) as tmp,
          observe.ImageProgress(total, "rendered", enabled=progress) as bar):
        train_lines = []
        for i in range(identities):
            name = f"id{i:05d}"
            for rel in _write_identity(tmp / "train", name, faces[i], images_per_identity, rng, difficulty, bar):
                train_lines.append(f"{rel} {name}")
        groups = [_write_identity(tmp / "val", f"id{i:05d}", faces[i], holdout_images, rng, difficulty, bar)
                  for i in range(identities, identities + holdout_identities)]
        (tmp / "train_list.txt").write_text("\n".join(train_lines) + "\n")
        (tmp / "val_pairs.txt").write_text("".join(f"{label} {a} {b}\n"
                                                   for label, a, b in make_pairs(groups, pairs, rng)))
    return Path(out).expanduser()


def main(argv: list[str] | None = None) -> None:
    p = cli.ArgumentParser(prog="jsphere.data.synthetic", description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--identities", type=int, default=300)
    p.add_argument("--images-per-identity", type=int, default=30)
    p.add_argument("--holdout-identities", type=int, default=100)
    p.add_argument("--holdout-images", type=int, default=10)
    p.add_argument("--pairs", type=int, default=3000)
    p.add_argument("--difficulty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    outputs.add_overwrite_argument(p)
    a = p.parse_args(argv)
    start = time.perf_counter()
    out = generate(a.out, identities=a.identities, images_per_identity=a.images_per_identity,
                   holdout_identities=a.holdout_identities, holdout_images=a.holdout_images, pairs=a.pairs,
                   difficulty=a.difficulty, seed=a.seed, overwrite=a.overwrite, progress=True)
    n = a.identities * a.images_per_identity + a.holdout_identities * a.holdout_images
    print(f"wrote {n} images of {a.identities} + {a.holdout_identities} identities and {a.pairs} pairs to {out} "
          f"in {time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    cli.run("jsphere.data.synthetic", main)
