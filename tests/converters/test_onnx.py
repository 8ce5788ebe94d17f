"""ONNX both ways: graphs written by PyTorch's exporter (BatchNorm folded into convolutions, as in insightface's
released w600k_r50 / w600k_mbf / glintr100) or unfolded with other epsilons and an MXNet-style in-graph input
normalisation import with no flags and reproduce onnxruntime's outputs; ``converters.export_onnx`` writes files
that onnxruntime runs with jsphere's outputs, at any batch size, and that import back.

Agreement as everywhere in the converter tests: min cosine >= 0.99999 and max |Δ| <= 1e-4 relative to the
embedding scale (float32 in XLA, oneDNN and onnxruntime, different summation orders).
"""

import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import helper, numpy_helper

from converters.core import torch_state
from converters.onnx_format import onnx_export, onnx_import
from converters.pth_format import pth_import
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference import ir as torch_ir
from converters.torch_reference.random_weights import (
    calibrate,
    images,
    normalised_nchw,
    random_torch_model,
    torch_embed,
)
from jsphere import checkpoint, models
from jsphere.inference import Embedder
from jsphere.input_convention import CONVENTIONS, InputConvention
from tests.converters import onnx_forms
from tests.converters.agreement import agree


def torch_to_onnx(model, path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False, opset_version=13,
                          input_names=["input.1"], output_names=["fc1"],
                          dynamic_axes={"input.1": {0: "batch"}, "fc1": {0: "batch"}}, **options)


def run_onnxruntime(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize(("name", "kwargs", "dim"), [
    ("mobilefacenet", {"scale": 1}, 128),
    ("iresnet18", {}, 32),
    ("sfnet10", {}, 32),
    ("sfnet10_deprecated", {}, 32),  # same tensors as sfnet10: the graph's ReLU placement tells them apart
])
def test_pytorch_exported_onnx_with_folded_batchnorm_imports_with_no_flags(tmp_path, name, kwargs, dim):
    reference = random_torch_model(name, seed=1, embed_dim=dim, **kwargs)
    torch_to_onnx(reference, tmp_path / "model.onnx")
    found = []
    out = onnx_import.import_onnx(str(tmp_path / "model.onnx"), str(tmp_path / "ckpt"),
                                  report=lambda f, layout: found.append(f))
    assert (found[0].arch, found[0].kwargs, found[0].embed_dim) == (name, kwargs, dim)
    assert checkpoint.load_meta(out)["source"]["layout"] == "onnx"
    faces = images(3)
    ours = Embedder.from_checkpoint(out, batch_size=len(faces)).embed(faces, flip="none")
    agree(ours, run_onnxruntime(tmp_path / "model.onnx", normalised_nchw(faces)))
    agree(ours, torch_embed(reference, faces))


def _prepend_mxnet_normalisation(model):
    """Make the graph take 0-255 pixels and compute (x - 127.5) * 0.0078125 itself, as MXNet-converted models do."""
    graph = model.graph
    old = graph.input[0].name
    graph.initializer.extend([numpy_helper.from_array(np.array(127.5, np.float32), "mx_mean"),
                              numpy_helper.from_array(np.array(0.0078125, np.float32), "mx_scale")])
    nodes = [helper.make_node("Sub", ["data", "mx_mean"], ["_minusscalar0"], name="_minusscalar0"),
             helper.make_node("Mul", ["_minusscalar0", "mx_scale"], [old], name="_mulscalar0")]
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)
    new_input = helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, ["batch", 3, 112, 112])
    del graph.input[0]
    graph.input.insert(0, new_input)


def test_unfolded_batchnorm_other_epsilons_and_in_graph_normalisation_are_folded_exactly(tmp_path):
    reference = random_torch_model("iresnet18", seed=2)
    torch_to_onnx(reference, tmp_path / "plain.onnx", do_constant_folding=False)  # BN kept, slopes unsqueezed
    model = onnx.load(str(tmp_path / "plain.onnx"))
    batchnorms = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    assert len(batchnorms) > 20
    for node in batchnorms:  # MXNet-converted graphs carry eps 2e-5 (fresnet) or 1e-3 (fmobilefacenet)
        for attribute in node.attribute:
            if attribute.name == "epsilon":
                attribute.f = 1e-3
    _prepend_mxnet_normalisation(model)
    onnx.save(model, str(tmp_path / "mxnet_style.onnx"))
    out = onnx_import.import_onnx(str(tmp_path / "mxnet_style.onnx"), str(tmp_path / "ckpt"))
    assert checkpoint.load_meta(out)["source"]["input_normalisation_folded"] is True
    faces = images(3, seed=4)
    pixels = faces.astype(np.float32).transpose(0, 3, 1, 2).copy()
    ours = Embedder.from_checkpoint(out, batch_size=len(faces)).embed(faces, flip="none")
    agree(ours, run_onnxruntime(tmp_path / "mxnet_style.onnx", pixels))


def test_export_onnx_runs_in_onnxruntime_with_jsphere_outputs_and_imports_back(tmp_path):
    reference = random_torch_model("mobilefacenet", seed=3, embed_dim=128, scale=1)
    torch.save(reference.state_dict(), tmp_path / "mbf.pth")
    ckpt = pth_import.import_checkpoint("auto", str(tmp_path / "mbf.pth"), str(tmp_path / "ckpt"))
    figures = onnx_export.export(str(ckpt), str(tmp_path / "mbf.onnx"))
    assert figures["min_cosine"] >= 0.99999
    faces = images(5, seed=6)  # another batch size than the export's example input
    ours = Embedder.from_checkpoint(ckpt, batch_size=len(faces)).embed(faces, flip="none")
    agree(run_onnxruntime(tmp_path / "mbf.onnx", normalised_nchw(faces)), ours)
    back = onnx_import.import_onnx(str(tmp_path / "mbf.onnx"), str(tmp_path / "back"))
    assert checkpoint.load_meta(back)["model"] == {"name": "mobilefacenet", "embed_dim": 128, "kwargs": {"scale": 1}}
    agree(Embedder.from_checkpoint(back, batch_size=len(faces)).embed(faces, flip="none"), ours)


def test_a_model_built_in_jax_exports_to_onnx(tmp_path):
    """A jsphere model that never saw PyTorch (random init, non-trivial BN statistics) deploys as ONNX."""
    from flax import nnx

    model = models.build("sfnet4_bn", embed_dim=16, rngs=nnx.Rngs(7))
    pure = models.pure_state(model)
    rng = np.random.default_rng(0)
    for stats in (pure["layer2"][0]["bn1"], pure["features"]):
        stats["mean"] = rng.normal(0, 0.1, stats["mean"].shape).astype(np.float32)
        stats["var"] = rng.uniform(0.5, 2.0, stats["var"].shape).astype(np.float32)
    checkpoint.save_weights(tmp_path / "jax", step=3, backbone=pure, head=None,
                            meta={"model": {"name": "sfnet4_bn", "embed_dim": 16, "kwargs": {}}, "head": None,
                                  "source": {"converter": "test"}})
    figures = onnx_export.export(str(tmp_path / "jax"), str(tmp_path / "jax.onnx"))
    assert figures["min_cosine"] >= 0.99999


def test_paddle_exported_mobilefacenet_with_a_1x1_conv_embedding_imports_with_no_flags(tmp_path):
    """arcface_paddle's MobileFaceNet as paddle2onnx writes it: BatchNorm nodes kept, PRelu slopes [C, 1, 1] and
    [1, C, 1, 1], the embedding a 1x1 Conv + BatchNorm on the 1x1 map, a Shape/Gather/Concat reshape."""
    torch.manual_seed(0)
    reference = calibrate(onnx_forms.PaddleMobileFaceNet())
    onnx_forms.export(reference, tmp_path / "paddle.onnx", fold=False)
    onnx_forms.set_prelu_slopes(tmp_path / "paddle.onnx")
    graph, found, back = onnx_forms.imported_reference(tmp_path / "paddle.onnx")
    assert sum(op.kind == "linear" for op in graph.ops) == 0 and graph.ops[-2].pointwise_on_one_pixel
    assert (found.arch, found.kwargs, found.embed_dim) == ("mobilefacenet", {"scale": 1}, 128)
    faces = images(2, seed=1)
    agree(torch_embed(back, faces), run_onnxruntime(tmp_path / "paddle.onnx", normalised_nchw(faces)))
    agree(torch_embed(back, faces), torch_embed(reference, faces))


@pytest.mark.parametrize("unit_bn", [True, False])  # AdaFace's BasicBlockIR, TreB1eN's bottleneck_IR_SE
def test_ir_se_exports_of_the_authors_code_import_shortcut_first_and_l2_normalised(tmp_path, monkeypatch, unit_bn):
    """AdaFace / TreB1eN compute each unit's shortcut before its residual branch (the exporter lists the shortcut
    convolution first) and TreB1eN's model ends in l2_norm: the layers are matched in jsphere's order and the
    normalisation is dropped (cosines unchanged)."""
    monkeypatch.setattr(torch_ir.Unit, "forward", onnx_forms.shortcut_first)
    reference = random_torch_model("ir_se_18", seed=2, embed_dim=32, unit_bn=unit_bn)
    onnx_forms.export(onnx_forms.L2Normalised(reference).eval(), tmp_path / "ir_se.onnx")
    graph, found, back = onnx_forms.imported_reference(tmp_path / "ir_se.onnx")
    assert graph.output_normalised and graph.gates == 8 and graph.subsamples == 5  # MaxPool(1, s) when cin == cout
    assert (found.arch, found.kwargs) == ("ir_se_18", {} if unit_bn else {"unit_bn": False})
    faces = images(2, seed=3)
    agree(torch_embed(back, faces), torch_embed(reference, faces))


def test_nhwc_input_with_per_channel_normalisation_in_the_graph_is_recorded(tmp_path):
    """A graph that takes 0-255 NHWC pixels and normalises them per channel (ImageNet mean/std) itself: the
    Transpose is the graph's interface, the offset cannot be folded into a zero-padded convolution, so the map is
    recorded as the checkpoint's input convention, which embedding applies."""
    reference = random_torch_model("sfnet10_bn", seed=4, embed_dim=32, width=0.5)
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])

    class Deployed(torch.nn.Module):  # pixels NHWC -> the reference model on (p - mean) / std
        def __init__(self):
            super().__init__()
            self.model = reference

        def forward(self, x):
            x = (x.permute(0, 3, 1, 2) - torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)) \
                / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
            return self.model(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Deployed().eval(), (torch.zeros(1, 112, 112, 3),), str(tmp_path / "nhwc.onnx"),
                          dynamo=False, opset_version=13, input_names=["pixels"], output_names=["embedding"],
                          dynamic_axes={"pixels": {0: "n"}, "embedding": {0: "n"}})
    out = onnx_import.import_onnx(str(tmp_path / "nhwc.onnx"), str(tmp_path / "ckpt"))
    meta = checkpoint.load_meta(out)
    convention = InputConvention.from_meta(meta["input"])
    np.testing.assert_allclose(convention.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(convention.std, std, rtol=1e-6)
    with pytest.raises(ValueError, match="normalises its input itself"):
        onnx_import.import_onnx(str(tmp_path / "nhwc.onnx"), str(tmp_path / "x"),
                                convention_override=CONVENTIONS["bgr"])
    state, _, _ = torch_state.torch_state_dicts(str(out))
    back = torch_backbones.build("sfnet10_bn", 32, width=0.5)
    back.load_state_dict(state, strict=True)
    faces = images(2, seed=5)
    with torch.no_grad():
        ours = back.eval()(torch.from_numpy(convention.apply(faces).transpose(0, 3, 1, 2).copy())).numpy()
    agree(ours, run_onnxruntime(tmp_path / "nhwc.onnx", faces.astype(np.float32)))


def test_explicit_arch_takes_precedence_over_detection(tmp_path):
    """sfnet10 and sfnet10_deprecated have the same layers: --arch chooses, and the width read off the graph
    comes along; --model-kwargs still wins."""
    torch_to_onnx(random_torch_model("sfnet10", seed=6, width=0.5), tmp_path / "m.onnx")
    _, found, _ = onnx_forms.imported_reference(tmp_path / "m.onnx")
    assert (found.arch, found.kwargs) == ("sfnet10", {"width": 0.5})
    _, found, _ = onnx_forms.imported_reference(tmp_path / "m.onnx", "sfnet10_deprecated")
    assert (found.arch, found.kwargs) == ("sfnet10_deprecated", {"width": 0.5})
    with pytest.raises(ValueError, match=r"does not match sfnet10_deprecated .*layer layer1.0.conv1"):
        onnx_forms.imported_reference(tmp_path / "m.onnx", "sfnet10_deprecated", {"width": 0.25})
    out = onnx_import.import_onnx(str(tmp_path / "m.onnx"), str(tmp_path / "bgr"), arch="sfnet10_deprecated",
                                  convention_override=CONVENTIONS["bgr"])  # a graph does not say its channel order
    assert checkpoint.load_meta(out)["input"]["channels"] == "BGR"


def test_graphs_without_a_jsphere_counterpart_are_refused_naming_the_node(tmp_path):
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="stem", pads=[1, 1, 1, 1]),
         helper.make_node("MaxPool", ["c"], ["p"], name="pool1", kernel_shape=[2, 2]),
         helper.make_node("Flatten", ["p"], ["y"], name="flat")],
        "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, None])], [weight])
    onnx.save(helper.make_model(graph), str(tmp_path / "pool.onnx"))
    with pytest.raises(ValueError, match=r"node pool1 \(MaxPool\) has no counterpart"):
        onnx_import.import_onnx(str(tmp_path / "pool.onnx"), str(tmp_path / "out"))
    torch_to_onnx(random_torch_model("sfnet4"), tmp_path / "ok.onnx")
    data = (tmp_path / "ok.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is not a readable ONNX model"):
        onnx_import.import_onnx(str(tmp_path / "cut.onnx"), str(tmp_path / "out"))
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.onnx is empty \(0 bytes\): not an ONNX model"):
        onnx_import.import_onnx(str(tmp_path / "empty.onnx"), str(tmp_path / "out"))
    (tmp_path / "other.onnx").write_bytes(b"\x08\x07")  # a valid protobuf message with no graph
    with pytest.raises(ValueError, match="other.onnx is not an ONNX model: its 2 bytes hold no graph"):
        onnx_import.import_onnx(str(tmp_path / "other.onnx"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_weights_stored_beside_the_model_are_read_only_from_its_folder(tmp_path):
    """ONNX external data: read from a file beside the model, within its size; a location outside the folder or
    a range past the file's end is refused."""
    torch_to_onnx(random_torch_model("sfnet4_bn", seed=7, width=0.5), tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    (tmp_path / "ext").mkdir()
    onnx.save(model, str(tmp_path / "ext" / "m.onnx"), save_as_external_data=True, location="m.data",
              size_threshold=0)
    graph, found, _ = onnx_forms.imported_reference(tmp_path / "ext" / "m.onnx")
    assert found.arch == "sfnet4_bn"
    for location, length, message in (("../m.data", None, "outside the model's folder"),
                                      ("m.data", 10**12, "claims bytes")):
        model = onnx.load(str(tmp_path / "ext" / "m.onnx"), load_external_data=False)
        entries = model.graph.initializer[0].external_data
        for entry in entries:
            if entry.key == "location":
                entry.value = location
            if entry.key == "length" and length:
                entry.value = str(length)
        onnx.save(model, str(tmp_path / "ext" / "bad.onnx"))
        with pytest.raises(ValueError, match=message):
            onnx_import.import_onnx(str(tmp_path / "ext" / "bad.onnx"), str(tmp_path / "out"))
