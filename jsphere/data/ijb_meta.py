"""IJB-B / IJB-C meta files (insightface layout, OpenSphere v1 ``IJBDataset``), ids cross-checked.

Under ``root/meta`` for ``name`` in {ijbb, ijbc}::

    {name}_name_5pts_score.txt         img x1 y1 ... x5 y5 faceness     (one line per image)
    {name}_face_tid_mid.txt            img template_id media_id         (same images, same order)
    {name}_template_pair_label.txt     tid1 tid2 label                  (1:1 verification)
    {name}_1N_gallery_{S1,S2|G1,G2}.csv, {name}_1N_probe_mixed.csv      (1:N; header, TEMPLATE_ID,SUBJECT_ID,...)

Images are ``root/loose_crop/<img>``.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

import numpy as np

from jsphere.data.listfile import iter_lines

GALLERIES = {"ijbb": ("S1", "S2"), "ijbc": ("G1", "G2")}


class IJBMetaError(ValueError):
    """Inconsistent IJB meta files (the message names the file and line)."""


@dataclasses.dataclass
class IJBMeta:
    name: str
    image_dir: Path
    images: list[str]
    landmarks: np.ndarray  # float32 [N, 5, 2]
    faceness: np.ndarray  # float32 [N]
    templates: np.ndarray  # int64 [N]
    medias: np.ndarray  # int64 [N]
    pairs: np.ndarray  # int64 [P, 2] template ids
    pair_labels: np.ndarray  # bool [P]
    galleries: dict[str, tuple[np.ndarray, np.ndarray]]  # gallery name -> (template ids, subject ids)
    probe: tuple[np.ndarray, np.ndarray] | None  # (template ids, subject ids)


def _rows(path: Path, width: int):
    """(line number, fields) of each entry of an IJB meta file, streamed (IJB-C's pair file has 15.6M lines)."""
    for line in iter_lines(path, "IJB meta file"):
        if len(line.fields) != width:
            raise IJBMetaError(str(line.error(f"{width} fields")))
        yield line.number, list(line.fields)


def _read_1n(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[0].strip().upper() != "TEMPLATE_ID" or header[1].strip().upper() != "SUBJECT_ID":
            raise IJBMetaError(f"{path}:1: expected a header starting TEMPLATE_ID,SUBJECT_ID, got {header}")
        rows = [(int(r[0]), int(r[1])) for r in reader if r]
    arr = np.asarray(rows, np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def read_ijb_meta(root: str | os.PathLike, name: str) -> IJBMeta:
    root = Path(root)
    name = name.lower()
    if name not in GALLERIES:
        raise ValueError(f"IJB set must be 'ijbb' or 'ijbc', got {name!r}")
    meta = root / "meta"
    lmk_path, tid_path = meta / f"{name}_name_5pts_score.txt", meta / f"{name}_face_tid_mid.txt"
    pair_path = meta / f"{name}_template_pair_label.txt"
    for p in (lmk_path, tid_path, pair_path):
        if not p.exists():
            raise FileNotFoundError(f"IJB meta file {p} does not exist")
    images, landmarks, faceness = [], [], []
    for _, f in _rows(lmk_path, 12):
        images.append(f[0])
        landmarks.append([float(v) for v in f[1:11]])
        faceness.append(float(f[11]))
    templates, medias = [], []
    tid_rows = list(_rows(tid_path, 3))
    if len(tid_rows) != len(images):
        raise IJBMetaError(f"{tid_path}: {len(tid_rows)} images but {lmk_path.name} lists {len(images)}")
    for (number, f), image in zip(tid_rows, images, strict=True):
        if f[0] != image:
            raise IJBMetaError(f"{tid_path}:{number}: image {f[0]!r} but {lmk_path.name} has {image!r} on that row")
        templates.append(int(f[1]))
        medias.append(int(f[2]))
    known = set(templates)
    pairs, labels = [], []
    for number, f in _rows(pair_path, 3):
        t1, t2 = int(f[0]), int(f[1])
        for t in (t1, t2):
            if t not in known:
                raise IJBMetaError(f"{pair_path}:{number}: template {t} has no image in {tid_path.name}")
        pairs.append((t1, t2))
        labels.append(f[2] == "1")
    galleries = {}
    for g in GALLERIES[name]:
        p = meta / f"{name}_1N_gallery_{g}.csv"
        if p.exists():
            galleries[g] = _read_1n(p)
    probe_path = meta / f"{name}_1N_probe_mixed.csv"
    probe = _read_1n(probe_path) if probe_path.exists() else None
    return IJBMeta(name=name, image_dir=root / "loose_crop", images=images,
                   landmarks=np.asarray(landmarks, np.float32).reshape(-1, 5, 2),
                   faceness=np.asarray(faceness, np.float32), templates=np.asarray(templates, np.int64),
                   medias=np.asarray(medias, np.int64), pairs=np.asarray(pairs, np.int64).reshape(-1, 2),
                   pair_labels=np.asarray(labels, bool), galleries=galleries, probe=probe)
