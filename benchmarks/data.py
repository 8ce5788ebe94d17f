"""``python -m benchmarks.data [--images 4000] [--batch 64] [--workers 1 2]``

Input-pipeline throughput (decode 112x112 JPEG + flip + normalise + batch, img/s) from a packed ArrayRecord
folder and from a JPEG folder (OpenSphere list), with 1 and 2 worker processes, on synthetic faces it
generates in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from absl import flags

from jsphere import cli, errors
from jsphere.data import pack, pipeline, synthetic

IMAGES_PER_IDENTITY = 20


def throughput(cfg: dict, batch: int, batches: int) -> float:
    it, _ = pipeline.make_train_iterator(cfg, global_batch_size=batch, seed=0)
    try:
        next(it)  # start-up (worker spawn, first decode) excluded
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        return batch * batches / (time.perf_counter() - start)
    finally:
        close = getattr(it, "close", None)
        if close:
            close()


def main(argv=None) -> int:
    p = cli.ArgumentParser(prog="benchmarks.data", description=__doc__)
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = p.parse_args(argv)
    if a.batch < 1:
        raise errors.UserError(f"--batch {a.batch}: must be >= 1")
    if a.images < a.batch:
        raise errors.UserError(f"--images {a.images}: must be at least one batch (--batch {a.batch})")
    most = 4 * (os.cpu_count() or 1)
    if not all(0 <= w <= most for w in a.workers):
        raise errors.UserError(f"--workers {' '.join(map(str, a.workers))}: each must be in [0, {most}] (0: decode "
                               f"in this process; more than 4 per core only thrashes {os.cpu_count()} cores)")
    ids = max(-(-a.images // IMAGES_PER_IDENTITY), 2)  # whole identities, at least --images images
    need = 2 * synthetic.estimate_bytes(ids * IMAGES_PER_IDENTITY + 4, 2, 1.0, 0)  # the JPEGs and their packed copy
    free = shutil.disk_usage(tempfile.gettempdir()).free
    if need > free:
        raise errors.UserError(f"--images {a.images:,}: the set and its packed copy need about {need / 1e9:,.1f} GB "
                               f"in {tempfile.gettempdir()}, which has {free / 1e9:,.1f} GB free; ask for fewer images "
                               "(or point TMPDIR elsewhere)")
    flags.FLAGS.mark_as_parsed()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synthetic.generate(root / "faces", identities=ids, images_per_identity=IMAGES_PER_IDENTITY,
                           holdout_identities=2, holdout_images=2, pairs=2)
        pack.pack(str(root / "faces" / "train_list.txt"), root / "packed", verbose=False)
        sources = {"arrayrecord": {"source": str(root / "packed")},
                   "jpeg folder": {"source": str(root / "faces" / "train_list.txt"),
                                   "data_dir": str(root / "faces")}}
        batches = max(ids * IMAGES_PER_IDENTITY // a.batch - 2, 4)
        for name, src in sources.items():
            for workers in a.workers:
                cfg = {**src, "workers": workers, "threads": 1, "flip": 0.5}
                rate = throughput(cfg, a.batch, batches)
                per_process = rate / max(workers, 1)  # workers 0: this process decodes
                rows.append({"source": name, "workers": workers, "img_per_s": rate,
                             "img_per_s_per_worker": per_process})
                print(f"{name:<12} {workers} worker(s): {rate:8.0f} img/s ({per_process:6.0f} per worker)")
    print(json.dumps({"benchmark": "data", "rows": rows}))
    return 0


if __name__ == "__main__":
    cli.run("benchmarks.data", main)
