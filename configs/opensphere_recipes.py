"""OpenSphere's training recipes as config builders, one file per recipe calling them: ``configs/opensphere/v1/``
(OpenSphere v1, github.com/ydwen/opensphere branch OpenSphere_v0, ``config/train``), ``configs/papers/`` (its
``config/papers``) and ``configs/opensphere/v2/`` (OpenSphere v2, branch main, ``config/train``).

Hyper-parameters and step counts are OpenSphere's config files'. One difference in counting:
OpenSphere's loop runs ``max(milestones) + 1`` updates; jsphere runs exactly ``total_steps = max(milestones)``,
and the checkpoint named N holds the weights after N updates in both.
Step semantics are OpenSphere's: class centres xavier-normal, written back onto the unit sphere before every
update (``w.data = normalize(w.data)``; ``config.head.project_centres``, on for these heads), margins detached,
MultiStepLR stepped per update, ``clip_grad_norm_`` per module (v1) or jointly (v2).
Data paths follow OpenSphere's ``data/`` layout relative to the working directory; override them with
``--config.data.source=... --config.data.data_dir=...`` and the ``val`` entries.
"""

from __future__ import annotations

import ml_collections

from configs.base import get_base_config
from configs.test.common import OPENSPHERE_V2_FPRS, PAIR_SETS

VGGFACE2_VAL = [dict(PAIR_SETS[key]) for key in ("lfw", "agedb", "calfw", "cplfw")]  # OpenSphere v1's four sets
V2_VAL = [  # OpenSphere v2's: TPR at the FPRs its configs list (v1's default list ends at 5e-2 instead of 1e-2)
    dict(name="MS", type="pairs", path="data/train/ms1m_refine/ms1m_refine_pairs.lst",
         data_dir="data/train/ms1m_refine/ms1m_refine_112x112", fprs=OPENSPHERE_V2_FPRS),
    dict(name="CB", type="pairs", path="data/val/combined_pairs.lst", data_dir="data/val", fprs=OPENSPHERE_V2_FPRS),
]

# Head hyper-parameters of the recipes.
SPHEREFACE2_V1 = dict(magn_type="C", alpha=0.7, r=40.0, m=0.4, t=3.0, lw=10.0)
HEADS_VGGFACE2 = {
    "sphereface": dict(s=30.0, m=1.5),
    "spherefaceplus": dict(s=30.0, m=1.5, lambda_mhe=0.1),
    "sphereface_r_h": dict(s=60.0, m=1.4, magn_type="v2", lw=50.0),
    "gasoftmax": dict(s=30.0, m=1.5),
    "sphereface2": SPHEREFACE2_V1,
    "arcface": dict(s=30.0, m=0.5),
    "cosface": dict(s=30.0, m=0.35),
    "cocoloss": dict(s=30.0),
}


def _schedule(c: ml_collections.ConfigDict, milestones: tuple[int, ...], save_every: int, save_span: int) -> None:
    c.optim.milestones = milestones
    c.total_steps = max(milestones)
    c.checkpoint.save_steps = tuple(range(c.total_steps - save_span, c.total_steps + 1, save_every))
    c.checkpoint.every_steps = save_every


def vggface2_v1(backbone: str, head: str, *, hparams: dict | None = None,
                milestones: tuple[int, ...] = (40_000, 60_000, 70_000), clip: float | None = None,
                label_noise: float = 0.0, noise_seed: int = 0) -> ml_collections.ConfigDict:
    """OpenSphere v1 on VGGFace2: batch 512, SGD 0.1 (per-module clipping), validation every 2k steps."""
    c = get_base_config()
    c.model.name = backbone
    c.head.name = head
    c.head.hparams = ml_collections.ConfigDict(hparams if hparams is not None else HEADS_VGGFACE2[head])
    c.head.project_centres = True  # OpenSphere: w.data = normalize(w.data) before every forward
    c.data.source = "data/train/vggface2_train_ann.txt"
    c.data.format = "list_v1"
    c.data.data_dir = "data/train"
    c.data.alignment = "opensphere"  # VGGFace2 cropped by OpenSphere's face_alignment
    c.data.flip = 0.5
    c.data.label_noise.ratio = label_noise
    c.data.label_noise.seed = noise_seed
    c.batch_size = 512
    c.optim.clip_scope = "per_module"
    c.optim.clip_grad_norm = clip
    _schedule(c, milestones, 1_000, 4_000)
    c.val = VGGFACE2_VAL
    c.val_every = 2_000
    c.log_every = 200
    return c


def ms1m_v1(backbone: str, head: str, hparams: dict, milestones: tuple[int, ...]) -> ml_collections.ConfigDict:
    """OpenSphere v1 on MS1M-refine (4 GPUs suggested): batch 512, validation every 5k steps."""
    c = vggface2_v1(backbone, head, hparams=hparams, milestones=milestones)
    c.data.source = "data/train/ms1m_refine_train_ann.txt"
    c.data.alignment = "arcface"  # insightface's MS1M crops
    _schedule(c, milestones, 2_000, 8_000)
    c.val_every = 5_000
    return c


V2_HEADS = {
    "arcface": dict(s=64.0, m=0.5),
    "cosface": dict(s=64.0, m=0.4),
    "sphereface": dict(s=64.0, m=1.7),
    "sphereface2": dict(magn_type="C", alpha=0.8, r=64.0, m=0.5, t=3.0, lw=50.0),
    "simple": dict(wrap="polarlike", b_theta=0.3, alpha=0.001, r=2.0, m=0.0, lw=500.0, init_bias=-10.0),
}


def ms1m_v2(backbone: str, head: str) -> ml_collections.ConfigDict:
    """OpenSphere v2 on MS1M-refine: SGD 0.1, 240k steps, AMP (here bf16), joint clipping at 100."""
    if head not in V2_HEADS:
        raise ValueError(f"unknown OpenSphere v2 head {head!r}; choose one of {sorted(V2_HEADS)}")
    c = get_base_config()
    c.model.name = backbone
    c.model.dtype = "bfloat16"
    if backbone.startswith("iresnet"):
        c.model.kwargs = ml_collections.ConfigDict(dict(features_scale="trainable", features_scale_init=0.1))
    elif backbone.startswith("sfnet") and backbone.endswith("_bn"):
        c.model.kwargs = ml_collections.ConfigDict(dict(features_scale_init=0.1))
    c.head.name = head
    c.head.hparams = ml_collections.ConfigDict(V2_HEADS[head])
    c.head.project_centres = True  # OpenSphere: w.data = normalize(w.data) before every forward
    c.data.source = "data/train/ms1m_refine/ms1m_refine.lst"
    c.data.format = "list_v2"
    c.data.data_dir = "data/train/ms1m_refine/ms1m_refine_112x112"
    c.data.alignment = "arcface"  # insightface's MS1M crops
    c.batch_size = 512
    c.optim.clip_scope = "joint"
    c.optim.clip_grad_norm = 100.0
    _schedule(c, (80_000, 140_000, 200_000, 240_000), 2_000, 8_000)
    c.checkpoint.every_steps = 10_000
    c.val = V2_VAL
    c.val_every = 10_000
    c.log_every = 200
    if head == "simple":
        c.trainer = "simple"
        c.optim.head_lr = 0.01
        c.optim.head_wd = 5e-4
        c.data.sampler = ml_collections.ConfigDict(
            dict(type="grouped", samples_per_identity=4, unbalance_factor=0.5, total_size=1_000_000))
        c.data.augment = ml_collections.ConfigDict(dict(crop_prob=0.2, lowres_prob=0.2, photo_prob=0.2))
    return c
