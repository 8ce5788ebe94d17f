"""The quickstart (``make demo``): a small SFNet on the built-in synthetic identities, minutes on 2 CPU cores.

    python -m jsphere.data.synthetic --out data/synthetic        # once (make demo does it)
    python -m jsphere.main --config=configs/quickstart.py --workdir=runs/quickstart

``:arg`` picks the head (default sphereface2), e.g. ``configs/quickstart.py:arcface``.
"""

import ml_collections

from configs.base import get_base_config

DATA = "data/synthetic"
HEADS = {
    "sphereface2": dict(magn_type="C", alpha=0.7, r=30.0, m=0.4, t=3.0, lw=10.0),
    "arcface": dict(s=30.0, m=0.3),
    "cosface": dict(s=30.0, m=0.3),
    "sphereface": dict(s=30.0, m=1.5),
}


def get_config(arg=None):
    head = arg or "sphereface2"
    c = get_base_config()
    c.model.name = "sfnet4_bn"
    c.model.embed_dim = 128
    # half the channels (32/64/128/256): ~4x fewer multiply-adds, 2x faster steps, and a held-out ACC (the README's
    # demo table) within a point of full width's (BENCHMARKS.md)
    c.model.kwargs = ml_collections.ConfigDict(dict(width=0.5))
    c.head.name = head
    c.head.hparams = ml_collections.ConfigDict(HEADS.get(head, {}))
    c.data.source = f"{DATA}/train_list.txt"
    c.data.format = "list_v1"
    c.data.data_dir = DATA
    c.data.workers = 0
    c.data.threads = 2
    c.batch_size = 64
    c.total_steps = 400
    c.optim.lr = 0.1
    c.optim.schedule = "cosine"  # 2 points of held-out ACC above multistep (250, 350) at full width
    c.optim.warmup_steps = 20
    c.optim.clip_grad_norm = 10.0
    c.optim.clip_scope = "joint"
    c.checkpoint.every_steps = 100
    c.checkpoint.keep = 2
    c.log_every = 20
    c.val = [dict(name="synthetic", type="pairs", path=f"{DATA}/val_pairs.txt", data_dir=DATA)]
    c.val_every = 200
    c.val_at_start = True
    return c
