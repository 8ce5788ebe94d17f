"""Defaults shared by every training recipe; a recipe calls ``get_base_config()`` and sets what differs.

Every field a recipe or a command-line override may touch exists here, so the locked config rejects typos
(``--config.optim.lrr=0.1`` fails at parse time, naming the key).
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def get_base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.num_devices = 0  # devices in the mesh; 0 = every device of every process
    c.trainer = "proxy"  # 'proxy' (a classifier head) or 'simple' (SimPLE: EMA encoder + feature bank)

    c.model = ml_collections.ConfigDict()
    c.model.name = "sfnet20_deprecated"
    c.model.embed_dim = 512
    c.model.kwargs = ml_collections.ConfigDict()  # extra constructor arguments, e.g. features_scale
    c.model.dtype = "float32"  # compute dtype of the trunk: float32 | bfloat16 | float64 (with JAX_ENABLE_X64=1)
    c.model.bn_per_device = False  # True: BatchNorm statistics per device (PyTorch DDP parity)

    c.head = ml_collections.ConfigDict()
    c.head.name = "sphereface2"
    c.head.hparams = ml_collections.ConfigDict()  # e.g. s, m, alpha, r, t, lw, magn_type
    c.head.sharded = False  # shard the class centres over devices (Partial FC, every head)
    c.head.sample_rate = 1.0  # fraction of negative classes kept per shard when sharded
    # Class centres: written back onto the unit sphere before every update (OpenSphere) or only normalised in
    # the forward (arcface_torch), and their init std (None: xavier-normal). None: the head's own recipe.
    c.head.project_centres = config_dict.placeholder(bool)
    c.head.init_std = config_dict.placeholder(float)

    c.data = ml_collections.ConfigDict()
    c.data.source = config_dict.placeholder(str)  # list file, folder, train.rec, ArrayRecord dir, tfds:<name>
    c.data.format = "auto"
    c.data.data_dir = config_dict.placeholder(str)  # root of the relative paths of a list file
    c.data.workers = 2  # Grain worker processes (0: decode in this process)
    c.data.threads = 4  # decoding threads per process
    c.data.prefetch = 4
    c.data.flip = 0.5
    c.data.augment = ml_collections.ConfigDict(dict(crop_prob=0.0, lowres_prob=0.0, photo_prob=0.0))
    c.data.label_noise = ml_collections.ConfigDict(dict(ratio=0.0, seed=0))
    c.data.sampler = ml_collections.ConfigDict(
        dict(type="shuffle", samples_per_identity=4, unbalance_factor=1.0, total_size=0))
    c.data.on_corrupt = "raise"  # raise | skip (replace deterministically and count)
    # how the training faces were aligned, recorded in the checkpoints for jsphere.embed --detect: arcface
    # (insightface's) | opensphere | unknown | auto (a train.rec: arcface; a jsphere.align folder: its align.json)
    c.data.alignment = "auto"

    c.batch_size = 512  # global batch over all devices and processes
    c.total_steps = 70_000

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "sgd"
    c.optim.lr = 0.1
    c.optim.momentum = 0.9
    c.optim.nesterov = False
    c.optim.weight_decay = 5e-4
    c.optim.bkb_lr = config_dict.placeholder(float)
    c.optim.bkb_wd = config_dict.placeholder(float)
    c.optim.head_lr = config_dict.placeholder(float)
    c.optim.head_wd = config_dict.placeholder(float)
    c.optim.schedule = "multistep"
    c.optim.milestones = (40_000, 60_000, 70_000)
    c.optim.gamma = 0.1
    c.optim.warmup_steps = 0
    c.optim.power = 1.0
    c.optim.end_lr = 0.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999
    c.optim.eps = 1e-8
    c.optim.clip_grad_norm = config_dict.placeholder(float)  # None: no clipping
    c.optim.clip_scope = "per_module"  # joint (OpenSphere v2) | per_module (v1) | backbone (arcface_torch)

    c.simple = ml_collections.ConfigDict(dict(num_bank=524_288, encoder_momentum=0.999))

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 2_000
    c.checkpoint.keep = 3
    c.checkpoint.save_steps = ()  # extra steps always kept (OpenSphere's save_iters)
    c.checkpoint.async_save = True
    c.init_from = config_dict.placeholder(str)  # jsphere or converted checkpoint: weights only

    c.log_every = 200
    c.val_every = 2_000
    c.val_at_start = False  # also validate the untrained model (step 0)
    c.val = []  # pair sets: dicts with name, type ('pairs'|'bin'), path, data_dir
    c.progress_bar = True
    return c
