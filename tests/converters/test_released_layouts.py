"""Released PyTorch files import with no flags: every shape hyper-parameter is read from the file (MobileFaceNet
scale/blocks incl. mbf_large, embedding size, IResNet/SFNet depth, BN, a trained features scale), embeddings agree
with the reference class (min cos >= 0.99999), and exports load strictly into arcface_torch-style classes."""

import json

import numpy as np
import pytest
import torch

from converters.core import arguments, infer
from converters.pth_format import pth_export, pth_import
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference.random_weights import calibrate, images, random_torch_model, torch_embed
from jsphere import checkpoint, errors
from jsphere.inference import Embedder
from jsphere.models import sfnet
from tests.converters.agreement import agree


def _import_auto(tmp_path, state, name="backbone.pth", **kwargs):
    torch.save(state, tmp_path / name)
    found = []
    out = pth_import.import_checkpoint("auto", str(tmp_path / name), str(tmp_path / "ckpt"),
                                         report=lambda f, layout: found.append(f), **kwargs)
    return out, found[0]


@pytest.mark.parametrize(("build", "arch", "kwargs", "dim", "compare_embeddings"), [
    (lambda: torch_backbones.get_mbf(128, scale=1), "mobilefacenet", {"scale": 1}, 128, True),
    (lambda: torch_backbones.get_mbf(512, scale=2), "mobilefacenet", {}, 512, True),
    (lambda: torch_backbones.get_mbf(512, scale=4), "mobilefacenet", {"scale": 4}, 512, False),
    (lambda: torch_backbones.get_mbf_large(512), "mobilefacenet_large", {}, 512, True),
])
def test_mobilefacenet_variants_import_with_no_flags_and_export_loads_strictly(tmp_path, build, arch, kwargs, dim,
                                                                               compare_embeddings):
    torch.manual_seed(0)
    reference = calibrate(build())
    out, found = _import_auto(tmp_path, reference.state_dict())
    assert (found.arch, found.kwargs, found.embed_dim) == (arch, kwargs, dim)
    assert checkpoint.load_meta(out)["model"] == {"name": arch, "embed_dim": dim, "kwargs": kwargs}
    faces = images(2)
    if compare_embeddings:  # scale 4 differs from scale 2 only in widths: its weights round-trip bit-exactly below
        ours = Embedder.from_checkpoint(out, batch_size=len(faces)).embed(faces, flip="none")
        agree(ours, torch_embed(reference, faces))
    pth_export.export(str(out), "insightface", str(tmp_path / "exported.pth"))
    exported = torch.load(tmp_path / "exported.pth", weights_only=True)
    fresh = build()
    fresh.load_state_dict(exported, strict=True)
    for key, value in reference.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(exported[key].numpy(), value.numpy(), err_msg=key)


@pytest.mark.parametrize(("name", "layout", "kwargs", "expected_arch", "expected_kwargs"), [
    ("iresnet18", "insightface", {}, "iresnet18", {}),
    ("iresnet18", "opensphere-v2", {"features_scale": "trainable", "features_scale_init": 0.1}, "iresnet18",
     {"features_scale": "trainable"}),
    ("sfnet10_bn", "opensphere-v1", {}, "sfnet10_bn", {}),
    ("sfnet10", "opensphere-v2", {}, "sfnet10", {}),
])
def test_iresnet_and_sfnet_files_import_with_no_flags(tmp_path, name, layout, kwargs, expected_arch,
                                                      expected_kwargs):
    reference = random_torch_model(name, seed=5, **kwargs)
    if name.startswith("iresnet") and layout == "opensphere-v2":
        with torch.no_grad():
            reference.features.weight.uniform_(0.05, 0.2)  # OpenSphere v2 trains the features scale
    sd = reference.state_dict()
    state = {"insightface": sd, "opensphere-v2": {"backbone": sd, "head": {}},
             "opensphere-v1": {f"module.{k}": v for k, v in sd.items()}}[layout]
    out, found = _import_auto(tmp_path, state, "model_10.pth" if layout == "opensphere-v2" else "backbone_10.pth")
    assert (found.arch, found.kwargs) == (expected_arch, expected_kwargs)
    faces = images(2)
    agree(Embedder.from_checkpoint(out, batch_size=len(faces)).embed(faces, flip="none"), torch_embed(reference, faces))


def test_sfnet_without_bn_in_v1_layout_is_ambiguous_and_the_error_says_how_to_decide(tmp_path):
    torch.save(random_torch_model("sfnet10_deprecated").state_dict(), tmp_path / "backbone_1.pth")
    with pytest.raises(ValueError, match=r"fit sfnet10 .* and sfnet10_deprecated .*--arch sfnet10 or --arch "
                                         r"sfnet10_deprecated.*converters\.check"):
        pth_import.import_checkpoint("auto", str(tmp_path / "backbone_1.pth"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    out = pth_import.import_checkpoint("sfnet10_deprecated", str(tmp_path / "backbone_1.pth"), str(tmp_path / "o"))
    assert checkpoint.load_meta(out)["model"]["name"] == "sfnet10_deprecated"


def test_explicit_arch_still_reads_the_scale_and_model_kwargs_override(tmp_path):
    """--arch mobilefacenet on a scale-1, 128-d file was once refused (conv_sep shapes)."""
    reference = calibrate(torch_backbones.get_mbf(128, scale=1))
    torch.save(reference.state_dict(), tmp_path / "mbf.pth")
    out = pth_import.import_checkpoint("mobilefacenet", str(tmp_path / "mbf.pth"), str(tmp_path / "a"))
    assert checkpoint.load_meta(out)["model"]["kwargs"] == {"scale": 1}
    out = pth_import.import_checkpoint("mobilefacenet_large", str(tmp_path / "mbf.pth"), str(tmp_path / "b"))
    assert checkpoint.load_meta(out)["model"] == {"name": "mobilefacenet_large", "embed_dim": 128,
                                                  "kwargs": {"scale": 1, "blocks": [1, 4, 6, 2]}}
    with pytest.raises(ValueError, match=r"shape mismatches"):
        pth_import.import_checkpoint("auto", str(tmp_path / "mbf.pth"), str(tmp_path / "c"), kwargs={"scale": 2})
    assert not (tmp_path / "c").exists()


def test_unknown_layouts_name_what_was_found_and_what_would_fit(tmp_path):
    with pytest.raises(ValueError, match=r"fit no jsphere backbone: 2 tensors, first keys stem\.weight, "
                                         r"head\.weight.*IResNet.*MobileFaceNet.*SFNet"):
        infer.infer({"stem.weight": np.zeros((4, 3, 3, 3)), "head.weight": np.zeros((2, 4))}, "insightface", "f")
    odd = random_torch_model("iresnet18").state_dict()
    odd = {k: v for k, v in odd.items() if not k.startswith("layer3.1.")}
    with pytest.raises(ValueError, match=r"iresnet with \(2, 2, 1, 2\) blocks per stage.*iresnet18 \(2, 2, 2, 2\)"):
        infer.infer(odd, "insightface", "f")
    with pytest.raises(ValueError, match="ViT"):
        infer.infer({"patch_embed.proj.weight": np.zeros((4, 3, 9, 9))}, "insightface", "f")


@pytest.mark.parametrize(("width", "kwargs"), [(0.3, None), (0.6, None), (0.5, {"width": 0.5}), (1.0, {})])
def test_sfnet_width_is_read_off_every_stage_not_only_the_stem(width, kwargs):
    """At width 0.3 the stem has 19 channels, and 19 / 64 would rebuild stage 3 with 76 instead of 77; widths
    whose channels are exact ratios (``kwargs`` given) come back as themselves."""
    state_dict = torch_backbones.SFNet(4, "bn", width=width).state_dict()
    (found,) = infer.infer(state_dict, "opensphere-v2", "f")
    built = sfnet.stage_channels(found.kwargs.get("width", 1.0))
    assert built == tuple(state_dict[f"layer{s}.0.conv1.weight"].shape[0] for s in range(1, 5))
    if kwargs is not None:
        assert found.kwargs == kwargs


def test_sfnet_stage_channels_that_no_width_gives_are_refused():
    state_dict = torch_backbones.SFNet(4, "bn").state_dict()
    state_dict["layer2.0.conv1.weight"] = torch.zeros(100, 64, 3, 3)
    with pytest.raises(ValueError, match=r"f: an SFNet with stage channels \(64, 100, 256, 512\), which no width"):
        infer.infer(state_dict, "opensphere-v2", "f")


def test_a_failed_import_leaves_nothing_in_out_and_an_existing_out_is_never_overwritten(tmp_path, monkeypatch):
    reference = random_torch_model("sfnet4_bn")
    torch.save(reference.state_dict(), tmp_path / "b.pth")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "out"))

    monkeypatch.setattr(checkpoint, "save_weights", disk_full)
    with pytest.raises(errors.UserError, match=r"--out .*out: cannot write there \(no space left on device\)"):
        pth_import.import_checkpoint("auto", str(tmp_path / "b.pth"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    monkeypatch.undo()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        pth_import.import_checkpoint("auto", str(tmp_path / "b.pth"), str(tmp_path / "taken"))
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_model_kwargs_json_errors_are_clear():
    with pytest.raises(ValueError, match=r"--model-kwargs .* is not valid JSON"):
        arguments.parse_json_object("{scale: 1}", "--model-kwargs")
    with pytest.raises(ValueError, match="must be a JSON object"):
        arguments.parse_json_object(json.dumps([1]), "--model-kwargs")
