"""The input convention follows the model: what an importer knows of a file's author (foamliu's MobileFaceNet is
fed ImageNet-normalised RGB, in a ``.pt`` or a torch.onnx export of it) is recorded and said on its last line, what
it cannot know is said to be assumed with how to change it; the alignment of the training faces is part of the
convention (insightface's for insightface / arcface_torch layouts, OpenSphere's for OpenSphere's); ``check`` feeds
both frameworks the recorded convention; a converted checkpoint's step comes only from a name that is a step."""

import warnings

import numpy as np
import onnx
import pytest
import torch

from converters import import_onnx, import_torch
from converters.core import agreement, conventions, layouts
from converters.onnx_format import onnx_export
from converters.pth_format import crosscheck, pth_file, pth_import
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference.random_weights import calibrate, images, random_torch_model
from jsphere import checkpoint, cli
from jsphere.inference import Embedder
from jsphere.input_convention import CONVENTIONS
from tests.converters.agreement import agree

IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
FOAMLIU = CONVENTIONS["imagenet"].with_alignment("arcface")


def _authors_input(faces: np.ndarray) -> torch.Tensor:
    """foamliu's pipeline: PIL RGB -> ToTensor -> Normalize(ImageNet mean, std), NCHW."""
    return torch.from_numpy(((faces.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD).transpose(0, 3, 1, 2))


def _last_line(capsys, command, main, argv) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.run(command, main, argv)
    captured = capsys.readouterr()
    assert exit_.value.code == 0, captured.err
    return captured.out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def foamliu():
    torch.manual_seed(3)
    return calibrate(torch_backbones.MobileFaceNetReLU6(128)).eval()


@pytest.mark.parametrize("opset", [10, 18])
def test_foamliu_onnx_exports_are_fed_the_authors_imagenet_input_and_say_so(tmp_path, capsys, foamliu, opset):
    """Before: no convention recorded (jsphere's (x - 127.5) / 127.5 fed: cosine 0.88 to the author's embeddings)."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(foamliu, (torch.zeros(1, 3, 112, 112),), str(tmp_path / "mobilefacenet.onnx"),
                          dynamo=False, opset_version=opset, input_names=["input"], output_names=["output"])
    line = _last_line(capsys, "converters.import_onnx", import_onnx.main,
                      ["--onnx", str(tmp_path / "mobilefacenet.onnx"), "--out", str(tmp_path / "ckpt")])
    assert line.startswith(f"wrote {tmp_path / 'ckpt'}") and "; input: RGB, (x - mean) / std with mean [123.675" in line
    assert "foamliu's MobileFaceNet is trained on ImageNet-normalised RGB" in line and "(arcface)" in line
    assert "assumed" not in line
    meta = checkpoint.load_meta(tmp_path / "ckpt")
    assert meta["model"]["name"] == "mobilefacenet_relu6" and meta["input"] == FOAMLIU.to_meta()
    faces = images(3)
    with torch.no_grad():
        theirs = foamliu(_authors_input(faces)).numpy()
    agree(Embedder.from_checkpoint(tmp_path / "ckpt", batch_size=3).embed(faces, flip="none"), theirs)


def test_a_graph_that_says_nothing_is_imported_with_an_assumed_convention_named_with_how_to_change_it(tmp_path,
                                                                                                       capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(random_torch_model("sfnet4_bn").eval(), (torch.zeros(1, 3, 112, 112),),
                          str(tmp_path / "m.onnx"), dynamo=False, opset_version=13)
    line = _last_line(capsys, "converters.import_onnx", import_onnx.main,
                      ["--onnx", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "a")])
    assert "; input assumed: RGB, (x - 127.5) / 127.5, OpenSphere's alignment (opensphere)" in line
    assert "an ONNX graph does not say its channel order" in line and "--input-convention" in line
    line = _last_line(capsys, "converters.import_onnx", import_onnx.main,
                      ["--onnx", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "b"), "--input-convention",
                       '{"channels": "BGR", "alignment": "arcface"}'])
    assert "; input: BGR, (x - 127.5) / 127.5, insightface's alignment (arcface) (--input-convention)" in line
    assert checkpoint.load_meta(tmp_path / "b")["input"] == CONVENTIONS["bgr"].with_alignment("arcface").to_meta()


@pytest.mark.parametrize(("name", "prefix", "alignment", "why"), [
    ("backbone.pth", "", "arcface", "insightface layout: insightface / arcface_torch releases"),  # arcface_torch
    ("backbone_70000.pth", "module.", "opensphere", "OpenSphere's layout: trained on faces aligned by its"),
])
def test_the_alignment_of_the_training_faces_is_recorded_from_the_source_layout(tmp_path, capsys, name, prefix,
                                                                                alignment, why):
    """Before: nothing recorded, and jsphere.embed --detect aligned every model OpenSphere's way."""
    torch.save({prefix + k: v for k, v in random_torch_model("sfnet4_bn").state_dict().items()}, tmp_path / name)
    line = _last_line(capsys, "converters.import_torch", import_torch.main,
                      ["--backbone", str(tmp_path / name), "--out", str(tmp_path / "ckpt")])
    assert "; input: RGB, (x - 127.5) / 127.5, " in line and f"({alignment}) ({why}" in line
    meta = checkpoint.load_meta(tmp_path / "ckpt")
    assert meta["input"] == CONVENTIONS["rgb"].with_alignment(alignment).to_meta()
    assert meta["source"]["input_assumed"] is False
    assert Embedder.from_checkpoint(tmp_path / "ckpt").alignment == alignment


def test_check_feeds_both_frameworks_the_recorded_convention(tmp_path, foamliu):
    """Before: both were fed (x - 127.5) / 127.5, so --pairs printed the wrong-input accuracy of foamliu's model."""
    torch.save(foamliu.state_dict(), tmp_path / "mobilefacenet.pt")
    state_dict, _, layout = layouts.split_checkpoint(pth_file.load(tmp_path / "mobilefacenet.pt"), "mobilefacenet.pt")
    found, others, decision = crosscheck.choose(state_dict, layout, "mobilefacenet.pt", arch="auto", kwargs={})
    assert decision.convention == FOAMLIU and not others
    faces = agreement.synthetic_faces()[:4]
    r = crosscheck.compare(found, state_dict, "mobilefacenet.pt", faces)
    with torch.no_grad():
        theirs = foamliu(_authors_input(faces)).numpy()
    agree(r["torch"], theirs)
    agree(r["jsphere"], theirs)


@pytest.mark.parametrize(("name", "layout", "step"), [
    ("backbone_70000.pth", "opensphere-v1", 70000), ("head_70000.pth", "opensphere-v1", 70000),
    ("model_240000.pth", "opensphere-v2", 240000), ("ckpt_5.pth", "opensphere-v2", 5),
    ("model_ir_se50.pth", "insightface", 0),  # TreB1eN: a depth
    ("backbone_ir50_ms1m_epoch120.pth", "opensphere-v1", 0),  # an epoch
    ("Backbone_IR_50_Epoch_125_Batch_3125.pth", "insightface", 0),
    ("checkpoint_gpu_3.pt", "insightface", 0),  # arcface_torch: a rank
    ("model_1000.pth", "insightface", 0),  # a plain state_dict: not OpenSphere v2's {'backbone', 'head'}
    ("backbone_1000.pth", "insightface", 0),  # no module. prefix: not OpenSphere v1's
])
def test_only_a_name_that_is_a_training_step_sets_the_step(name, layout, step):
    assert layouts.step_from_name(name, layout) == step


def test_treb1en_model_ir_se50_is_written_as_step_0(tmp_path):
    """Before: ``model_ir_se50.pth`` became step 50."""
    torch.save(random_torch_model("sfnet4_bn").state_dict(), tmp_path / "model_ir_se50.pth")
    out = pth_import.import_checkpoint("auto", str(tmp_path / "model_ir_se50.pth"), str(tmp_path / "ckpt"))
    assert out.name == "0" and checkpoint.load_weights(tmp_path / "ckpt").step == 0


def test_an_exported_onnx_file_imports_back_with_the_convention_it_records(tmp_path, capsys):
    """Before: the graph of a BGR model trained on OpenSphere-aligned faces came back 'input assumed: ...,
    insightface's alignment (arcface)' (export_onnx folds the channel swap, so the pixels were right by luck)."""
    torch.save(random_torch_model("mobilefacenet", seed=3, embed_dim=128, scale=1).state_dict(), tmp_path / "m.pth")
    ckpt = pth_import.import_checkpoint("auto", str(tmp_path / "m.pth"), str(tmp_path / "ckpt"),
                                        input_convention=conventions.parse('{"channels": "BGR", '
                                                                           '"alignment": "opensphere"}'))
    onnx_export.export(str(ckpt), str(tmp_path / "m.onnx"))
    line = _last_line(capsys, "converters.import_onnx", import_onnx.main,
                      ["--onnx", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "back")])
    assert ("; input: RGB, (x - 127.5) / 127.5, OpenSphere's alignment (opensphere) (the file's own record "
            "(converters.export_onnx))") in line and "assumed" not in line
    meta = checkpoint.load_meta(tmp_path / "back")
    assert meta["input"] == CONVENTIONS["rgb"].with_alignment("opensphere").to_meta()
    assert meta["source"]["input_assumed"] is False
    faces = images(3)
    agree(Embedder.from_checkpoint(tmp_path / "back", batch_size=3).embed(faces, flip="none"),
          Embedder.from_checkpoint(ckpt, batch_size=3).embed(faces, flip="none"))


@pytest.mark.parametrize("record", ['{"channels": "GBR"}', "[1, 2]", "not json", "[" * 100_000])
def test_a_metadata_record_that_is_not_a_convention_is_one_line(tmp_path, capsys, record):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(random_torch_model("sfnet4_bn").eval(), (torch.zeros(1, 3, 112, 112),),
                          str(tmp_path / "m.onnx"), dynamo=False, opset_version=13)
    model = onnx.load(str(tmp_path / "m.onnx"))
    entry = model.metadata_props.add()
    entry.key, entry.value = conventions.ONNX_INPUT_KEY, record
    onnx.save(model, str(tmp_path / "m.onnx"))
    with pytest.raises(SystemExit) as exit_:
        cli.run("converters.import_onnx", import_onnx.main,
                ["--onnx", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "ckpt")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("converters.import_onnx: error: ") and "'jsphere.input'" in lines[0], lines
    assert not (tmp_path / "ckpt").exists()
