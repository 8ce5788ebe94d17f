"""The IR / IR-SE family of AdaFace, CurricularFace, face.evoLVe and TreB1eN: parameter counts against the reference
classes, the released layouts' key names (learned from AdaFace ``net.py``, face.evoLVe / CurricularFace
``model_irse.py``, TreB1eN ``model.py``), every unit kind computing what PyTorch computes, AdaFace's Lightning
``.ckpt`` imported with no flags (BGR recorded and applied), exports that load with ``strict=True``, ONNX."""

import collections

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from converters.core import conventions, infer, mapping
from converters.onnx_format import onnx_export
from converters.pth_format import pth_export, pth_import
from converters.torch_reference import ir as torch_ir
from converters.torch_reference.random_weights import calibrate, images
from jsphere import checkpoint, models
from jsphere.inference import Embedder
from jsphere.input_convention import CONVENTIONS
from jsphere.models import ir
from tests.converters.agreement import agree

# PyTorch parameter counts of converters.torch_reference.ir at the registry's defaults (AdaFace net.py's IR_18 ...
# IR_200 and IR_SE_*); the README's table states them.
REFERENCE_PARAMS = {
    "ir_18": 24_020_352, "ir_34": 34_134_080, "ir_50": 43_585_600, "ir_100": 65_150_912, "ir_152": 109_636_736,
    "ir_200": 114_138_240, "ir_se_18": 24_107_392, "ir_se_34": 34_291_264, "ir_se_50": 43_808_320,
    "ir_se_100": 65_523_136, "ir_se_152": 116_214_912, "ir_se_200": 121_240_704,
}
EVOLVE = {"unit_bn": False, "features_affine": True}  # face.evoLVe / TreB1eN Backbone(..., mode='ir'|'ir_se')
CURRICULAR = {"unit_bn": False}  # CurricularFace's IR_101: bottleneck_IR units, BatchNorm1d(512, affine=False)


def _abstract(name, **kwargs):
    return nnx.eval_shape(lambda: models.build(name, rngs=nnx.Rngs(0), **kwargs))


def _meta_reference(name, **kwargs):
    """The reference class with shapes only (no memory, no initialisation)."""
    with torch.device("meta"):
        return torch_ir.build(name, **kwargs)


def _shapes_only(reference) -> dict:
    """A state_dict of zero-stride arrays: what inference reads (names and shapes) at no memory cost."""
    return {k: np.broadcast_to(np.float32(0), tuple(v.shape)) for k, v in reference.state_dict().items()}


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_parameter_counts_equal_the_reference_classes(name):
    reference = sum(p.numel() for p in _meta_reference(name).parameters())
    assert models.param_count(_abstract(name)) == reference == REFERENCE_PARAMS[name]


# (name, kwargs, keys with shapes the released files have, keys they do not have, origin)
LAYOUTS = [
    ("ir_50", {}, {"input_layer.0.weight": (64, 3, 3, 3), "input_layer.2.weight": (64,),
                   "body.0.res_layer.2.running_mean": (64,), "body.0.res_layer.3.weight": (64,),
                   "body.0.res_layer.4.weight": (64, 64, 3, 3), "body.3.shortcut_layer.0.weight": (128, 64, 1, 1),
                   "output_layer.3.weight": (512, 25088), "output_layer.4.running_var": (512,)},
     ("body.0.shortcut_layer.0.weight", "output_layer.4.weight"), "adaface"),
    ("ir_se_50", EVOLVE, {"body.0.res_layer.2.weight": (64,), "body.0.res_layer.3.weight": (64, 64, 3, 3),
                          "body.0.res_layer.5.fc1.weight": (4, 64, 1, 1), "body.23.res_layer.5.fc2.weight":
                          (512, 32, 1, 1), "output_layer.4.weight": (512,)},
     ("body.0.res_layer.2.running_mean", "body.0.res_layer.se_block.fc1.weight"), "evolve"),
    ("ir_100", CURRICULAR, {"body.46.res_layer.4.running_mean": (512,), "output_layer.4.running_mean": (512,)},
     ("output_layer.4.weight", "body.49.res_layer.0.weight"), "curricularface"),
    ("ir_se_152", {}, {"body.0.res_layer.1.weight": (64, 64, 1, 1), "body.0.res_layer.7.weight": (256, 64, 1, 1),
                       "body.0.shortcut_layer.0.weight": (256, 64, 1, 1),
                       "body.0.res_layer.se_block.fc1.weight": (16, 256, 1, 1),
                       "output_layer.3.weight": (512, 2048 * 49)}, ("body.1.shortcut_layer.0.weight",), "adaface"),
    ("ir_152", {**EVOLVE, "bottleneck": False}, {"body.49.res_layer.4.running_mean": (512,)}, (), "evolve"),
]


@pytest.mark.parametrize(("name", "kwargs", "present", "absent", "origin"), LAYOUTS)
def test_released_layouts_map_one_to_one_and_are_recognised_from_their_keys(name, kwargs, present, absent, origin):
    reference = _meta_reference(name, **kwargs)
    keys = {k: tuple(v.shape) for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert {k: keys.get(k) for k in present} == present and not set(absent) & set(keys)
    model = _abstract(name, **kwargs)
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Any(nnx.Param, models.FrozenParam, nnx.BatchStat))))
    rows = mapping.leaf_table(model)
    assert sorted(k for _, k, _ in rows) == sorted(keys)
    for path, key, module_type in rows:
        assert mapping.to_torch(module_type, path[-1], np.zeros(flat[path].shape)).shape == keys[key], key
    (found,) = infer.infer(_shapes_only(reference), "insightface", "f.pth")
    assert (found.arch, found.kwargs, found.embed_dim, found.origin) == (name, kwargs, 512, origin)


def _randomised(module):
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
            elif isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(0.0, 0.5)
    return module.eval()


@pytest.mark.parametrize(("cin", "cout", "stride", "se", "unit_bn", "bottleneck"), [
    (64, 64, 2, False, True, False),    # AdaFace basic, MaxPool(1, 2) shortcut
    (64, 128, 2, True, True, False),    # AdaFace IR-SE, conv shortcut, se_block
    (64, 64, 2, True, False, False),    # face.evoLVe / TreB1eN IR-SE, SE at res_layer.5
    (128, 128, 1, False, False, False),  # face.evoLVe / CurricularFace, identity shortcut
    (64, 256, 2, True, True, True),     # AdaFace bottleneck (152/200), stride in the last 1x1 conv
    (256, 256, 1, False, True, True),
])
def test_every_unit_kind_computes_what_the_reference_unit_computes(cin, cout, stride, se, unit_bn, bottleneck):
    """float32 on both sides, one unit on a 14x14 map: a handful of sums of <= 2,304 products each, so the two
    frameworks' summation orders differ by ~1e-6 relative, far inside the 1e-5 cosine bound of ``agree``."""
    torch.manual_seed(0)
    reference = _randomised(torch_ir.Unit(cin, cout, stride, se, unit_bn, bottleneck))
    ours = ir.Unit(cin, cout, stride, se=se, unit_bn=unit_bn, bottleneck=bottleneck, dtype=jnp.float32,
                   rngs=nnx.Rngs(0))
    pure, missing, unexpected = mapping.torch_to_pure(ours, {k: v.numpy() for k, v in reference.state_dict().items()})
    assert not missing and not unexpected
    models.load_pure_state(ours, pure)
    ours.eval()
    x = np.random.default_rng(0).normal(size=(2, cin, 14, 14)).astype(np.float32)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    mine = np.asarray(ours(jnp.asarray(x.transpose(0, 2, 3, 1))))
    agree(mine.reshape(2, -1), theirs.reshape(2, -1))


def _bgr_nchw(faces):
    return ((faces[..., ::-1].astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()


def _adaface_ckpt(reference, classes=7):
    """What AdaFace's PyTorch Lightning 1.8 training writes: the backbone under ``state_dict`` as ``model.*`` next
    to the AdaFace head's kernel [512, C] and buffers, optimizer and MultiStepLR states (its milestones are a
    ``collections.Counter``), callbacks, loops and hyper-parameters."""
    head = {"head.kernel": torch.randn(reference.output_layer[3].out_features, classes), "head.t": torch.zeros(1),
            "head.batch_mean": torch.ones(1) * 20, "head.batch_std": torch.ones(1) * 100}
    state = collections.OrderedDict((f"model.{k}", v) for k, v in reference.state_dict().items())
    state.update(head)
    return {
        "epoch": 26, "global_step": 1_234, "pytorch-lightning_version": "1.8.6", "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 27, "completed": 26}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_acc', 'mode': 'max'}": {
            "monitor": "val_acc", "best_model_score": torch.tensor(0.99), "best_model_path": "epoch=24.ckpt"}},
        "optimizer_states": [{"state": {0: {"momentum_buffer": torch.zeros(3)}},
                              "param_groups": [{"lr": 0.001, "momentum": 0.9, "weight_decay": 5e-4, "params": [0]}]}],
        "lr_schedulers": [{"milestones": collections.Counter({12: 1, 20: 1, 24: 1}), "gamma": 0.1, "base_lrs": [0.1],
                           "last_epoch": 26, "_step_count": 27}],
        "hparams_name": "kwargs", "hyper_parameters": {"arch": "ir_50", "head": "adaface", "m": 0.4, "h": 0.333},
    }


def test_adaface_lightning_ckpt_imports_with_no_flags_takes_bgr_and_exports_back(tmp_path):
    torch.manual_seed(0)
    reference = calibrate(torch_ir.build("ir_se_18"))
    torch.save(_adaface_ckpt(reference), tmp_path / "adaface_ir18_webface4m.ckpt")
    found = []
    out = pth_import.import_checkpoint("auto", str(tmp_path / "adaface_ir18_webface4m.ckpt"), str(tmp_path / "ckpt"),
                                         report=lambda f, layout: found.append((f, layout)))
    (f, layout), = found
    assert (f.arch, f.kwargs, f.embed_dim, layout) == ("ir_se_18", {}, 512, "adaface")
    assert "AdaFace layout" in f.description and f.input["channels"] == "BGR"
    meta = checkpoint.load_meta(out)
    assert meta["input"] == CONVENTIONS["bgr"].with_alignment("arcface").to_meta()  # trained on insightface's crops
    faces = images(2)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(_bgr_nchw(faces))).numpy()
    agree(Embedder.from_checkpoint(out, batch_size=2).embed(faces, flip="none"), theirs)
    # back as AdaFace's loader reads it: torch.load(f)['state_dict'], the keys without 'model.'
    pth_export.export(str(out), "adaface", str(tmp_path / "back.ckpt"))
    exported = torch.load(tmp_path / "back.ckpt", weights_only=True)["state_dict"]
    fresh = torch_ir.build("ir_se_18")
    fresh.load_state_dict({k[len("model."):]: v for k, v in exported.items()}, strict=True)
    for key, value in reference.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(fresh.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    assert "takes BGR" in pth_export.input_note(meta, "insightface") and not pth_export.input_note(meta, "adaface")
    _onnx_takes_jsphere_input(out, tmp_path / "m.onnx", faces, theirs)


def _onnx_takes_jsphere_input(ckpt, onnx_file, faces, expected):
    """The BGR channel swap is folded into input_layer.0 (exact), so the ONNX model takes RGB (x - 127.5) / 127.5
    like insightface's; export_onnx checks it against jsphere's embeddings before writing."""
    onnxruntime = pytest.importorskip("onnxruntime")
    assert onnx_export.export(str(ckpt), str(onnx_file))["min_cosine"] >= 0.99999
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    rgb = ((faces.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy()
    agree(session.run(None, {"input": rgb})[0], expected)


def test_evolve_layout_imports_with_its_file_names_convention_and_exports_strictly(tmp_path):
    torch.manual_seed(1)
    reference = calibrate(torch_ir.build("ir_18", **EVOLVE))
    name = "Backbone_IR_18_Epoch_125_Batch_3125_Time_2019-01-21-07-09_checkpoint.pth"  # face.evoLVe's save name
    torch.save(reference.state_dict(), tmp_path / name)
    out = pth_import.import_checkpoint("auto", str(tmp_path / name), str(tmp_path / "ckpt"))
    meta = checkpoint.load_meta(out)
    assert meta["model"] == {"name": "ir_18", "embed_dim": 512, "kwargs": EVOLVE}
    assert meta["input"] == CONVENTIONS["rgb"].with_alignment("arcface").to_meta()
    faces = images(2)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(((faces.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)))
    agree(Embedder.from_checkpoint(out, batch_size=2).embed(faces, flip="none"), theirs.numpy())
    pth_export.export(str(out), "insightface", str(tmp_path / "back.pth"))
    fresh = torch_ir.build("ir_18", **EVOLVE)
    fresh.load_state_dict(torch.load(tmp_path / "back.pth", weights_only=True), strict=True)
    assert list(fresh.state_dict()) == list(reference.state_dict())
    # the same keys under TreB1eN's release name are its BGR model; an explicit convention wins over both
    (tmp_path / "model_ir18.pth").write_bytes((tmp_path / name).read_bytes())
    out = pth_import.import_checkpoint("auto", str(tmp_path / "model_ir18.pth"), str(tmp_path / "treb1en"))
    assert checkpoint.load_meta(out)["input"]["channels"] == "BGR"
    out = pth_import.import_checkpoint("auto", str(tmp_path / "model_ir18.pth"), str(tmp_path / "rgb"),
                                         input_convention=conventions.parse("rgb"))
    assert checkpoint.load_meta(out)["input"] == CONVENTIONS["rgb"].with_alignment("arcface").to_meta()


@pytest.mark.parametrize(("file", "channels"), [
    ("model_ir_se50.pth", "BGR"), ("model_mobilefacenet.pth", "BGR"),
    ("model_2019-08-30-07-36_accuracy:0.9953_step:655047_None.pth", "BGR"),
    ("Backbone_IR_SE_50_Epoch_20_Batch_60000_Time_2019-04-20-13-09_checkpoint.pth", "RGB"),
    ("backbone_ir50_ms1m_epoch120.pth", "RGB"),
])
def test_treb1en_and_face_evolve_files_are_told_apart_by_their_release_names(file, channels):
    assert conventions.for_origin("evolve", file)[0].channels == channels
    assert conventions.for_origin("adaface", file)[0].channels == "BGR"
    assert conventions.for_origin("curricularface", file)[0] == CONVENTIONS["rgb"]


def test_input_convention_flag_values_are_checked():
    assert conventions.parse("BGR") == CONVENTIONS["bgr"]
    custom = conventions.parse('{"channels": "BGR", "mean": [127.5, 127.5, 127.5], "std": [128, 128, 128]}')
    assert custom.std == (128.0, 128.0, 128.0)
    for bad, match in [("yuv", "rgb, bgr, imagenet"), ('{"channels": "GBR"}', "'RGB' or 'BGR'"),
                       ('{"std": [1, 0, 1]}', "positive"), ('{"mean": [1, 2]}', "three finite numbers")]:
        with pytest.raises(ValueError, match=match):
            conventions.parse(bad)
