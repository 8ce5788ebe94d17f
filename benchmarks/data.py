"""``python -m benchmarks.data [--images 4000] [--batch 64] [--workers 1 2]``

Input-pipeline throughput (decode 112x112 JPEG + flip + normalise + batch, img/s) from a packed ArrayRecord
folder and from a JPEG folder (OpenSphere list), with 1 and 2 worker processes, on synthetic faces it
generates in a temporary folder.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from absl import flags

from jsphere import cli
from jsphere.data import pack, pipeline, synthetic


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
    flags.FLAGS.mark_as_parsed()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ids = max(a.images // 20, 2)
        synthetic.generate(root / "faces", identities=ids, images_per_identity=20, holdout_identities=2,
                           holdout_images=2, pairs=2)
        pack.pack(str(root / "faces" / "train_list.txt"), root / "packed", verbose=False)
        sources = {"arrayrecord": {"source": str(root / "packed")},
                   "jpeg folder": {"source": str(root / "faces" / "train_list.txt"),
                                   "data_dir": str(root / "faces")}}
        batches = max(ids * 20 // a.batch - 2, 4)
        for name, src in sources.items():
            for workers in a.workers:
                cfg = {**src, "workers": workers, "threads": 1, "flip": 0.5}
                rate = throughput(cfg, a.batch, batches)
                rows.append({"source": name, "workers": workers, "img_per_s": rate,
                             "img_per_s_per_worker": rate / workers})
                print(f"{name:<12} {workers} worker(s): {rate:8.0f} img/s ({rate / workers:6.0f} per worker)")
    print(json.dumps({"benchmark": "data", "rows": rows}))
    return 0


if __name__ == "__main__":
    cli.run("benchmarks.data", main)
