"""EdgeFace (``jsphere.models.edgeface``) against our PyTorch definition (``converters.torch_reference.edgeface``),
whose keys, order and shapes are those of the authors' released files (``released_edgeface``, checked outside the
suite against their timm-based classes, where our definition also gave their outputs within 7e-8 on random
weights). A released-layout ``.pt`` is recognised with no flags, imports, embeds as PyTorch does, and exports
back to both ``.pth`` and ONNX. Agreement as in the other converter tests: min cosine >= 0.99999 and max |Δ| <=
1e-4 of the embedding scale (float32 in XLA, oneDNN and onnxruntime: different summation orders, GELU's erf and
the attention's softmax each within a few float32 roundings)."""

import numpy as np
import pytest
import torch
from flax import nnx

from converters.core import infer
from converters.onnx_format import onnx_export, onnx_import
from converters.pth_format import pth_export, pth_import
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference.random_weights import images, torch_embed
from jsphere import checkpoint, models
from jsphere.inference import Embedder
from jsphere.models import edgeface
from tests.converters import released_edgeface
from tests.converters.agreement import agree

# parameters of the authors' models (sum of numel over the state_dict, num_batches_tracked aside), counted on
# get_model(name) of github otroshi/edgeface with timm 1.0.31
AUTHORS_PARAMS = {"edgeface_xxs": 1_244_744, "edgeface_xs_gamma_06": 1_770_492, "edgeface_s_gamma_05": 3_652_520,
                  "edgeface_base": 18_225_812}


@pytest.mark.parametrize("name", list(edgeface.VARIANTS))
def test_our_pytorch_edgeface_has_the_released_keys_order_and_shapes_and_jsphere_its_parameters(name):
    with torch.device("meta"):
        ours = torch_backbones.build(name)
    released = released_edgeface.edgeface(name)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in released.items()]
    assert models.param_count(nnx.eval_shape(lambda: models.build(name, rngs=nnx.Rngs(0)))) == AUTHORS_PARAMS[name]


@pytest.mark.parametrize("name", list(edgeface.VARIANTS))
def test_a_released_edgeface_state_dict_is_recognised_with_no_flags(name):
    (found,) = infer.infer(released_edgeface.edgeface(name), "insightface", "f")
    assert (found.arch, found.embed_dim, found.kwargs) == (name, 512, {})


def test_another_rank_ratio_or_full_rank_linears_are_read_off_the_file():
    with torch.device("meta"):
        low = torch_backbones.build("edgeface_xxs", 64, rank_ratio=0.3).state_dict()
        full = torch_backbones.build("edgeface_xs_gamma_06", 64, rank_ratio=None).state_dict()
    assert infer.infer(low, "insightface", "f")[0].kwargs == {"rank_ratio": 0.3}
    assert infer.infer(full, "insightface", "f")[0].kwargs == {"rank_ratio": None}


def _random_edgeface(name, seed):
    """Our PyTorch EdgeFace with random weights at a scale where every branch matters (layer scales ~0.2, not
    EdgeNeXt's initial 1e-6)."""
    torch.manual_seed(seed)
    model = torch_backbones.build(name, 64)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if "gamma" in key or "temperature" in key:
                value.uniform_(0.1, 0.3)
            elif key.endswith("bias") or "norm" in key:
                value.normal_(0.0 if key.endswith("bias") else 1.0, 0.05)
    return model.eval()


def test_an_edgeface_file_imports_embeds_as_pytorch_and_exports_to_pth_and_onnx(tmp_path):
    reference = _random_edgeface("edgeface_xs_gamma_06", seed=0)
    torch.save(reference.state_dict(), tmp_path / "edgeface_xs_gamma_06.pt")
    reports = []
    pth_import.import_checkpoint("auto", str(tmp_path / "edgeface_xs_gamma_06.pt"), str(tmp_path / "ckpt"),
                                 report=lambda found, _: reports.append(found))
    assert reports[0].arch == "edgeface_xs_gamma_06" and "input RGB (x - 127.5) / 127.5" in reports[0].description
    faces = images(4, seed=1)
    ours = Embedder.from_checkpoint(tmp_path / "ckpt", batch_size=4).embed(faces, flip="none")
    agree(ours, torch_embed(reference, faces))
    pth_export.export(str(tmp_path / "ckpt"), "insightface", str(tmp_path / "back.pt"))
    fresh = torch_backbones.build("edgeface_xs_gamma_06", 64)
    fresh.load_state_dict(torch.load(tmp_path / "back.pt", weights_only=True), strict=True)
    np.testing.assert_array_equal(torch_embed(fresh.eval(), faces), torch_embed(reference, faces))
    figures = onnx_export.export(str(tmp_path / "ckpt"), str(tmp_path / "m.onnx"))  # onnxruntime vs jsphere
    assert figures["min_cosine"] >= 0.99999
    with pytest.raises(ValueError, match=r"m.onnx: node /model/stem/stem.1/Transpose \(Transpose\) has no "
                                         r"counterpart"):  # the NHWC LayerNorm: architecture.NOT_IMPORTABLE
        onnx_import.import_onnx(str(tmp_path / "m.onnx"), str(tmp_path / "from_onnx"))
    assert checkpoint.load_meta(tmp_path / "ckpt")["model"] == {"name": "edgeface_xs_gamma_06", "embed_dim": 64,
                                                                "kwargs": {}}
