"""arcface_torch wf42m_pfc02_r100: WebFace42M (2.06M identities), IResNet-100, CosFace, class-sharded head
keeping 20% of the negative classes per device (Partial FC 0.2)."""

from configs.arcface_torch_recipes import arcface_torch


def get_config(arg=None):
    return arcface_torch("webface42m", "iresnet100", "cosface", sharded=True, sample_rate=0.2)
