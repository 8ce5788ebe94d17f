"""The backbone's tensors are found inside the wrappers released checkpoints come in ({'epoch', 'net_state_dict'},
Lightning's state_dict with 'model.' and 'head.' keys, DDP 'module.', {'model': ...}, {'state_dict': ...}), and a
file where none holds tensors is refused naming its top-level keys and tensor count."""

import collections

import numpy as np
import pytest
import torch

from converters.core import infer, layouts
from converters.pth_format import pth_file, pth_import
from converters.torch_reference.random_weights import random_torch_model
from jsphere import checkpoint

WRAPPERS = {
    # Xiaoccer/MobileFaceNet_Pytorch and CosFace/SphereFace ports: torch.save({'epoch': e, 'net_state_dict': sd})
    "net_state_dict": lambda sd: {"epoch": 68, "net_state_dict": sd},
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 3, "best_acc": 0.99},
    "model": lambda sd: {"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]}},
    "model_state_dict": lambda sd: {"epoch": 1, "model_state_dict": sd, "optimizer_state_dict": {"state": {}}},
    "ddp_in_state_dict": lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    "lightning": lambda sd: {"pytorch-lightning_version": "1.8.6", "epoch": 2, "state_dict": collections.OrderedDict(
        [*((f"model.{k}", v) for k, v in sd.items()), ("head.kernel", torch.randn(8, 5))]),
        "lr_schedulers": [{"milestones": collections.Counter({8: 1, 12: 1}), "gamma": 0.1}]},
    "nested": lambda sd: {"model": {"state_dict": sd, "epoch": 4}},
}


@pytest.fixture(scope="module")
def state_dict():
    return random_torch_model("sfnet4_bn", embed_dim=8).state_dict()


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
def test_the_backbone_is_found_inside_every_common_wrapper(tmp_path, state_dict, wrapper):
    torch.save(WRAPPERS[wrapper](state_dict), tmp_path / "w.pth")
    backbone, head, layout = layouts.split_checkpoint(pth_file.load(tmp_path / "w.pth"), "w.pth")
    assert list(backbone) == list(state_dict) and head is None
    assert layout == ("adaface" if wrapper == "lightning" else "insightface")
    for key, value in state_dict.items():
        np.testing.assert_array_equal(backbone[key], value.numpy(), err_msg=key)


def test_a_wrapped_file_imports_with_no_flags(tmp_path, state_dict):
    """A wrapper seen in released files, {'epoch': ..., 'net_state_dict': ...}, once failed with 'no tensors found'."""
    torch.save(WRAPPERS["net_state_dict"](state_dict), tmp_path / "068.ckpt")
    out = pth_import.import_checkpoint("auto", str(tmp_path / "068.ckpt"), str(tmp_path / "ckpt"))
    assert checkpoint.load_meta(out)["model"] == {"name": "sfnet4_bn", "embed_dim": 8, "kwargs": {}}


def test_a_file_without_a_state_dict_names_its_keys_and_tensor_count(tmp_path):
    torch.save({"epoch": 3, "arch": "resnet", "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(4)}}}},
               tmp_path / "odd.pth")
    with pytest.raises(ValueError, match=r"odd\.pth: no state_dict found: the top-level keys are \['epoch', 'arch', "
                                         r"'optimizer'\], with 1 tensors in the whole file; jsphere looks for .*"
                                         r"'net_state_dict'"):
        layouts.split_checkpoint(pth_file.load(tmp_path / "odd.pth"), str(tmp_path / "odd.pth"))


def test_xiaoccer_112x96_mobilefacenet_is_named_and_refused():
    """Xiaoccer/MobileFaceNet_Pytorch's released 068.ckpt: conv1/dw_conv1 ConvBlocks, blocks.N, linear7 a 7x6
    depthwise conv (112x96 crops), linear1."""
    shapes = {"conv1.conv.weight": (64, 3, 3, 3), "dw_conv1.conv.weight": (64, 1, 3, 3),
              "blocks.0.conv.0.weight": (128, 64, 1, 1), "conv2.conv.weight": (512, 128, 1, 1),
              "linear7.conv.weight": (512, 1, 7, 6), "linear1.conv.weight": (128, 512, 1, 1)}
    sd = {k: np.zeros(v, np.float32) for k, v in shapes.items()}
    with pytest.raises(ValueError, match=r"Xiaoccer.*linear7 \(7, 6\).*112x96.*112x112"):
        infer.infer(sd, "insightface", "068.ckpt")
