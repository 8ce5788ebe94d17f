"""A backbone registered with ``jsphere.models.register`` (``tests.own_backbone``'s ``tinynet``) in the
converters: recognised from its ``.pth`` and its ONNX graph once registered, exported through its registered
PyTorch twin, and otherwise refused saying exactly what is missing — never taken for the nearest built-in
family, never "unknown model" for a backbone jsphere knows. Agreement as in the other converter tests (min cosine
>= 0.99999, max |Δ| <= 1e-4 of the embedding scale: float32 in XLA and oneDNN, different summation orders)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from flax import nnx

from converters.onnx_format import onnx_export, onnx_import
from converters.pth_format import pth_export, pth_import
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference.random_weights import calibrate, images, torch_embed
from jsphere import checkpoint, models
from jsphere.inference import Embedder
from tests.converters.agreement import agree
from tests.converters.onnx_forms import imported_reference
from tests.own_backbone import NAME, TorchTinyNet, registered

DIM = 16
ROOT = Path(__file__).resolve().parents[2]


def _twin(seed=0):
    torch.manual_seed(seed)
    return calibrate(TorchTinyNet(DIM))


def _checkpoint(path):
    model = models.build(NAME, embed_dim=DIM, rngs=nnx.Rngs(0))
    meta = {"model": {"name": NAME, "embed_dim": DIM, "kwargs": {}}, "head": None, "source": {"converter": "test"}}
    checkpoint.save_weights(path, step=3, backbone=models.pure_state(model), head=None, meta=meta)
    return str(path)


def test_its_pth_is_recognised_imported_and_exported_back_to_its_twin(tmp_path):
    reference = _twin()
    torch.save(reference.state_dict(), tmp_path / "backbone.pth")
    faces = images(3, seed=1)
    with registered():
        pth_import.import_checkpoint("auto", str(tmp_path / "backbone.pth"), str(tmp_path / "ckpt"))
        assert checkpoint.load_meta(tmp_path / "ckpt")["model"] == {"name": NAME, "embed_dim": DIM, "kwargs": {}}
        ours = Embedder.from_checkpoint(tmp_path / "ckpt", batch_size=3).embed(faces, flip="none")
        pth_export.export(str(tmp_path / "ckpt"), "insightface", str(tmp_path / "out.pth"))
    agree(ours, torch_embed(reference, faces))
    fresh = TorchTinyNet(DIM)
    fresh.load_state_dict(torch.load(tmp_path / "out.pth", weights_only=True), strict=True)
    agree(torch_embed(fresh.eval(), faces), torch_embed(reference, faces))


def test_its_onnx_graph_is_detected_once_registered_and_refused_by_name_otherwise(tmp_path):
    """Before: a graph of plain convolutions was taken for SFNet-4 and refused with a layer-shape message."""
    reference = _twin(seed=2)
    onnx_export.write(reference, tmp_path / "m.onnx", 17)
    message = (r"m.onnx: no registered architecture matches the graph \(2 Conv \(3->8 3x3/2, 8->16 3x3/4\), "
               r"1 BatchNorm, 0 PRelu, 1 Gemm/MatMul, 0 residual sums, 0 gates, a 16-d output\); an SFNet-like graph "
               r"with 1 stride-2 convolutions \(SFNet has 4\)\. Tried jsphere's IResNet, IR, MobileFaceNet and SFNet")
    with pytest.raises(ValueError, match=message):
        onnx_import.import_onnx(str(tmp_path / "m.onnx"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    with registered(torch_side=True):
        _, found, back = imported_reference(tmp_path / "m.onnx")
    assert (found.arch, found.embed_dim) == (NAME, DIM)
    faces = images(2, seed=3)
    agree(torch_embed(back, faces), torch_embed(reference, faces))


def test_export_without_a_pytorch_definition_says_so_and_how_to_add_one(tmp_path):
    """Before: ``unknown model 'tinycnn'`` from both exporters, for a backbone jsphere knows."""
    with registered(torch_side=False):
        ckpt = _checkpoint(tmp_path / "run")
        assert not torch_backbones.has_definition(NAME)
        message = (r"backbone 'tinynet' is registered in jsphere but has no PyTorch definition, so it cannot be "
                   r"exported .* @converters.torch_reference.backbones.register\('tinynet'\)")
        with pytest.raises(ValueError, match=message):
            pth_export.export(ckpt, "insightface", str(tmp_path / "b.pth"))
        with pytest.raises(ValueError, match=message):
            onnx_export.export(ckpt, str(tmp_path / "m.onnx"))
    assert not (tmp_path / "b.pth").exists() and not (tmp_path / "m.onnx").exists()


def _export_command(*args):
    return subprocess.run([sys.executable, "-m", "converters.export_torch", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_the_export_command_names_the_missing_module_and_takes_it_with_import(tmp_path):
    with registered(torch_side=False):
        ckpt = _checkpoint(tmp_path / "run")
    common = ["--ckpt", ckpt, "--layout", "insightface"]
    refused = _export_command(*common, "--out", str(tmp_path / "a.pth"))
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr
    assert refused.stderr.startswith("converters.export_torch: error: ") and refused.stderr.count("\n") == 1
    assert "the checkpoint's backbone 'tinynet' is not known to this process" in refused.stderr
    assert "pass --import MODULE" in refused.stderr
    plugin = tmp_path / "my_backbone.py"
    plugin.write_text("from converters.torch_reference import backbones\nfrom jsphere import models\n"
                      "from tests.own_backbone import TinyNet, TorchTinyNet\n\n"
                      "models.register('tinynet')(TinyNet)\nbackbones.register('tinynet')(TorchTinyNet)\n")
    done = _export_command(*common, "--out", str(tmp_path / "b.pth"), "--import", str(plugin))
    assert done.returncode == 0, done.stderr
    state = torch.load(tmp_path / "b.pth", weights_only=True)
    TorchTinyNet(DIM).load_state_dict(state, strict=True)
    missing = _export_command(*common, "--out", str(tmp_path / "c.pth"), "--import", "no_such_module_here")
    assert missing.returncode == 2
    assert "--import no_such_module_here: No module named 'no_such_module_here'" in missing.stderr


def test_a_graph_shaped_like_sfnet4_with_another_layer_is_not_forced_into_it(tmp_path):
    """SFNet-4's four stride-2 stages (64-512 channels) plus a 1x1 convolution: its depth and widths read as
    SFNet-4's, its layers are not; the refusal names both."""
    stages = [torch.nn.Conv2d(c_in, c_out, 3, 2, 1) for c_in, c_out in ((3, 64), (64, 128), (128, 256), (256, 512))]
    model = torch.nn.Sequential(*stages, torch.nn.Conv2d(512, 512, 1), torch.nn.Flatten(),
                                torch.nn.Linear(512 * 7 * 7, DIM)).eval()
    onnx_export.write(model, tmp_path / "m.onnx", 17)
    with pytest.raises(ValueError, match=r"no registered architecture matches the graph \(5 Conv .*\); the nearest, "
                                         r"sfnet4, does not fit: sfnet4 has 5 Conv/Linear layers, the graph 6"):
        onnx_import.import_onnx(str(tmp_path / "m.onnx"), str(tmp_path / "out"))


def test_the_readmes_backbone_example_registers_both_sides_and_they_agree(tmp_path):
    """The code of README's "Write your own backbone", run as written: its two definitions have the same keys and,
    holding the same weights, compute the same embeddings."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Write your own backbone"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("```\n", start)]
    faces = images(2, seed=5)
    with registered(jax_side=False, torch_side=False):
        exec(compile(code, "README.md", "exec"), {})  # the repository's own README
        assert "tinycnn" in models.names() and torch_backbones.has_definition("tinycnn")
        torch.manual_seed(0)
        reference = calibrate(torch_backbones.build("tinycnn", DIM))
        torch.save(reference.state_dict(), tmp_path / "tinycnn.pth")
        pth_import.import_checkpoint("auto", str(tmp_path / "tinycnn.pth"), str(tmp_path / "ckpt"))
        ours = Embedder.from_checkpoint(tmp_path / "ckpt", batch_size=2).embed(faces, flip="none")
    assert "tinycnn" not in models.names()
    agree(ours, torch_embed(reference, faces))
