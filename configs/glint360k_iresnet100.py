"""arcface_torch's ``glint360k_r100``: Glint360K (360k identities), IResNet-100, CosFace (1, 0, 0.4) s=64, weight
decay 1e-4, with the class-sharded head (Partial FC shards the classes over the GPUs there too).

``:arg`` is the sample rate (default 1.0, arcface_torch's current recipe; 0.1 reproduces the released
``glint360k_cosface_r100_fp16_0.1`` models).
"""

from configs.arcface_torch_recipes import arcface_torch


def get_config(arg=None):
    return arcface_torch("glint360k", "iresnet100", "cosface", weight_decay=1e-4, sharded=True,
                         sample_rate=float(arg) if arg else 1.0)
