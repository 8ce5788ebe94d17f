"""insightface arcface_torch recipes (``recognition/arcface_torch/configs`` of github.com/deepinsight/insightface)
as config builders.

arcface_torch batches are per GPU (128 x 8 GPUs = global 1024 here); steps = images // global batch x epochs.
Step semantics are arcface_torch's ``train_v2.py``: ``CombinedMarginLoss`` (s = 64) on ``PartialFC_V2``, whose
class centres start N(0, 0.01), are never projected onto the sphere and are normalised only in the forward (the
gradient goes through the normalisation); one SGD (0.1, momentum 0.9) with the same lr and weight decay for the
backbone and the centres; ``PolynomialLRWarmup`` (power 1, the first update at the base lr) stepped per
update; gradient clipping at 5 on the backbone only; fp16 AMP (bf16 here); insightface's IResNet with the
frozen ``features`` scale. ``total_steps`` is computed for the global batch of the recipe: change both together.
"""

from __future__ import annotations

import ml_collections

from configs.base import get_base_config

DATASETS = {  # name: (folder with train.rec/.idx and the .bin validation sets, identities, images)
    "ms1mv3": ("data/ms1m-retinaface-t1", 93_431, 5_179_510),
    "glint360k": ("data/glint360k", 360_232, 17_091_657),
    "webface42m": ("data/webface42m", 2_059_906, 42_474_557),
}
MARGINS = {"arcface": dict(s=64.0, m1=1.0, m2=0.5, m3=0.0), "cosface": dict(s=64.0, m1=1.0, m2=0.0, m3=0.4)}


def arcface_torch(dataset: str, network: str, margin: str, *, weight_decay: float = 5e-4, epochs: int = 20,
                  warmup_epochs: int = 0, batch_per_gpu: int = 128, gpus: int = 8, sample_rate: float = 1.0,
                  sharded: bool = False) -> ml_collections.ConfigDict:
    folder, _, images = DATASETS[dataset]
    global_batch = batch_per_gpu * gpus
    steps_per_epoch = images // global_batch
    c = get_base_config()
    c.model.name = network
    c.model.dtype = "bfloat16"
    c.head.name = "combined_margin"
    c.head.hparams = ml_collections.ConfigDict(MARGINS[margin])
    c.head.sharded = sharded
    c.head.sample_rate = sample_rate
    c.head.project_centres = False  # PartialFC_V2 normalises its weight only inside the forward
    c.head.init_std = 0.01  # PartialFC_V2: torch.normal(0, 0.01)
    c.data.source = folder
    c.data.format = "recordio"
    c.batch_size = global_batch
    c.total_steps = steps_per_epoch * epochs
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.weight_decay = weight_decay
    c.optim.schedule = "poly"
    c.optim.power = 1.0
    c.optim.warmup_steps = steps_per_epoch * warmup_epochs
    c.optim.clip_grad_norm = 5.0
    c.optim.clip_scope = "backbone"
    c.checkpoint.every_steps = steps_per_epoch
    c.checkpoint.keep = 2
    c.val = [dict(name=n, type="bin", path=f"{folder}/{n}.bin") for n in ("lfw", "cfp_fp", "agedb_30")]
    c.val_every = 2_000
    c.log_every = 50
    return c
