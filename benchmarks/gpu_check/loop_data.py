"""The ``loop`` stage's data set, built while the device stages run: ``prepare`` runs in the background process
the supervisor starts first (``child --prep``), renders synthetic identities with ``jsphere.data.synthetic`` in
parallel parts, writes one OpenSphere v1 list over all parts and packs it with ``jsphere.data.pack``. It leaves
``prep.json`` (or the supervisor leaves ``prep.exit`` when the process died); ``wait_for`` is the loop stage's
side. No JAX: the data process never touches the device.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from benchmarks.gpu_check.context import write_json
from benchmarks.gpu_check.profiles import Profile
from jsphere.data import pack, synthetic


def _render(folder: str, identities: int, images: int, seed: int) -> str:
    synthetic.generate(folder, identities=identities, images_per_identity=images, holdout_identities=2,
                       holdout_images=2, pairs=2, seed=seed)
    return folder


def prepare(profile: Profile, work: Path) -> None:
    """Render and pack the loop's identities into ``work/loop_data/packed``; write ``work/prep.json``."""
    start = time.perf_counter()
    root = work / "loop_data"
    parts = max(1, min((os.cpu_count() or 1) // 2, 8, profile.identities // 100))
    sizes = [profile.identities // parts + (i < profile.identities % parts) for i in range(parts)]
    jobs = [(str(root / f"part{i}"), n, profile.images_per_identity, i) for i, n in enumerate(sizes)]
    try:
        if parts == 1:
            _render(*jobs[0])
        else:
            with ProcessPoolExecutor(parts, mp_context=get_context("spawn")) as pool:
                list(pool.map(_render, *zip(*jobs, strict=True)))
        rendered = time.perf_counter() - start
        lines = []
        for i in range(parts):
            for line in (root / f"part{i}" / "train_list.txt").read_text().splitlines():
                path, label = line.rsplit(" ", 1)
                lines.append(f"part{i}/{path} p{i}_{label}")
        (root / "train_list.txt").write_text("\n".join(lines) + "\n")
        summary = pack.pack(str(root / "train_list.txt"), root / "packed", data_dir=str(root), fmt="list_v1",
                            verbose=False)
        write_json(work / "prep.json", {"status": "ok", "packed": str(root / "packed"), "parts": parts,
                                        "images": summary["num_images"], "classes": summary["num_classes"],
                                        "render_s": round(rendered, 2),
                                        "seconds": round(time.perf_counter() - start, 2)})
    except Exception as e:
        write_json(work / "prep.json", {"status": "error", "error": f"{type(e).__name__}: {e}"})
        raise


def wait_for(work: Path) -> dict:
    """``prep.json``'s record once the data process has written it; raises when that process failed or died."""
    while True:
        if (work / "prep.json").exists():
            info = json.loads((work / "prep.json").read_text())
            if info["status"] != "ok":
                raise RuntimeError(f"the loop's data set could not be built: {info['error']}")
            return info
        if (work / "prep.exit").exists():
            raise RuntimeError(f"the data process died (exit code {(work / 'prep.exit').read_text()}) without a "
                               "data set; see its output in the log")
        time.sleep(0.2)
