"""Every registry backbone, at every width and layout option the code has, goes out through ``export_onnx`` and
back through ``import_onnx`` (the quickstart's half-width sfnet4_bn was once refused).

* The shallowest member of every family (and every width / option) is exported for real — PyTorch's exporter on
  the reference model with calibrated random weights, as ``export_onnx`` does — and imported back; the reference
  model holding the imported tensors must compute the exported model's function (the quickstart test also
  writes and reads the checkpoint). Agreement as in the other converter
  tests: min cosine >= 0.99999 and max |Δ| <= 1e-4 of the embedding scale (float32 on both sides, different
  summation orders and BatchNorms folded into convolutions, each exact up to one float32 rounding per weight).
* Every registry name (new models included: the test is parametrised over ``models.names()``) is detected from
  the graph the exporter writes for it; deep members, whose real export takes minutes here, from the emulated
  graph of ``onnx_emulation``, which the real exports of the shallow members check layer by layer. A registered
  backbone without a PyTorch definition (``torch_backbones.has_definition``) cannot be exported, and EdgeFace's
  graphs cannot be read back (``architecture.importable``): they are skipped, saying so.
"""

import re

import numpy as np
import pytest

from converters.onnx_format import architecture, onnx_export, onnx_import
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference.random_weights import images, random_torch_model, torch_embed
from jsphere import checkpoint, models
from jsphere.models import sfnet
from tests.converters.agreement import agree
from tests.converters.onnx_emulation import emulate, signature
from tests.converters.onnx_forms import imported_reference

DIM = 16
FAMILY_DEPTH = re.compile(r"^(sfnet|iresnet|ir_se_|ir_)(\d+)")


def _options(name: str) -> list[dict]:
    """Every width / layout option of a backbone (SFNet's width: OpenSphere's 1, the quickstart's 0.5, and 0.3,
    where the stem's ratio alone misreads the width; MobileFaceNet's scale and blocks; IR's unit layouts)."""
    if name.startswith("sfnet"):
        return [{}, {"width": 0.5}] + ([{"width": 0.3}] if name == "sfnet4_bn" else [])
    if name == "mobilefacenet":
        return [{}, {"scale": 1}, {"scale": 1, "blocks": [2, 1, 1, 1]}]
    if name.startswith("ir_"):
        depth = int(name.rsplit("_", 1)[1])
        return [{}, {"bottleneck": depth < 152}] + ([{"unit_bn": False}] if depth < 152 else [])
    return [{}]


def _expected(name: str, kwargs: dict) -> tuple[str, dict]:
    """What the import must say: the name itself, but sfnet4_deprecated is sfnet4 (no residual block: the
    ReLU's place does not exist, the function is the same)."""
    return ("sfnet4" if name == "sfnet4_deprecated" else name), kwargs


def _same_model(found_kwargs: dict, kwargs: dict) -> bool:
    """Equal keyword arguments, an SFNet width being equal when it gives the same channels (0.3 is read back as
    the middle of the widths that round to its channels)."""
    if "width" in kwargs and "width" in found_kwargs:
        same = sfnet.stage_channels(found_kwargs["width"]) == sfnet.stage_channels(kwargs["width"])
        return same and {**found_kwargs, "width": 0} == {**kwargs, "width": 0}
    return found_kwargs == kwargs


def _exported_for_real(name: str, kwargs: dict) -> bool:
    """The family members exported for real: the smallest depth of each family with each of its options (plus
    SFNet-10: SFNet-4 has no residual block); the others repeat their blocks, and are checked on the emulation.
    ``mobilefacenet_large`` is ``mobilefacenet`` with other scale and blocks; IR-SE's bottleneck is IR's."""
    match = FAMILY_DEPTH.match(name)
    if not match:
        return name != "mobilefacenet_large" and kwargs != {"scale": 1}  # scale 1: test_onnx exports it
    family, depth = match.group(1), int(match.group(2))
    if family == "ir_se_":
        return depth == 18 and "bottleneck" not in kwargs
    return depth == 18 if family in ("iresnet", "ir_") else depth in (4, 10)


def _id(case):
    name, kwargs = case
    return name + "".join(f"-{k}={v}" for k, v in kwargs.items())


def _skip(name: str) -> str | None:
    """Why backbone ``name`` cannot go out and back through ONNX, by its declared properties (None: it can)."""
    if not torch_backbones.has_definition(name):
        return f"{name} has no PyTorch definition: it cannot be exported"
    if not architecture.importable(name):
        return f"{name}: {architecture.NOT_IMPORTABLE[name]}"
    return None


def _cases(cases):
    """pytest parameters, skipping (by its declared properties) a backbone that cannot make the round trip."""
    return [pytest.param(c, id=_id(c), marks=pytest.mark.skipif(_skip(c[0]) is not None, reason=str(_skip(c[0]))))
            for c in cases]


CASES = [(name, kwargs) for name in models.names() for kwargs in _options(name)]


def _export(model, path, opset=17):
    onnx_export.write(model, path, opset)  # what onnx_export.export writes for a checkpoint's reference model


@pytest.mark.parametrize("case", _cases(CASES))
def test_every_registry_backbone_is_recognised_in_its_exported_graph(case):
    name, kwargs = case
    found = architecture.infer_model(emulate(name, DIM, **kwargs), name)
    arch, expected_kwargs = _expected(name, kwargs)
    assert (found.arch, found.embed_dim) == (arch, DIM) and _same_model(found.kwargs, expected_kwargs), found


REAL = [c for c in CASES if _exported_for_real(*c)]


@pytest.mark.parametrize("case", _cases(REAL))
def test_backbones_round_trip_through_onnx(tmp_path, case):
    name, kwargs = case
    reference = random_torch_model(name, seed=3, embed_dim=DIM, **kwargs)
    _export(reference, tmp_path / "m.onnx")
    graph, found, back = imported_reference(tmp_path / "m.onnx")
    assert signature(graph) == signature(emulate(name, DIM, **kwargs))  # the emulation is the exporter's graph
    arch, expected_kwargs = _expected(name, kwargs)
    assert (found.arch, found.embed_dim) == (arch, DIM) and _same_model(found.kwargs, expected_kwargs), found
    faces = images(2, seed=4)
    agree(torch_embed(back, faces), torch_embed(reference, faces))


def test_the_quickstart_model_exports_and_imports_back(tmp_path):
    """A jsphere checkpoint (half-width sfnet4_bn, as make demo trains) through onnx_export.export, with its
    onnxruntime check, and back."""
    from flax import nnx

    model = models.build("sfnet4_bn", embed_dim=DIM, rngs=nnx.Rngs(7), width=0.5)
    pure = models.pure_state(model)
    rng = np.random.default_rng(0)
    for stats in (pure["layer2"][0]["bn1"], pure["features"]):
        stats["mean"] = rng.normal(0, 0.1, stats["mean"].shape).astype(np.float32)
        stats["var"] = rng.uniform(0.5, 2.0, stats["var"].shape).astype(np.float32)
    meta = {"model": {"name": "sfnet4_bn", "embed_dim": DIM, "kwargs": {"width": 0.5}}, "head": None,
            "source": {"converter": "test"}}
    checkpoint.save_weights(tmp_path / "run", step=400, backbone=pure, head=None, meta=meta)
    figures = onnx_export.export(str(tmp_path / "run"), str(tmp_path / "quickstart.onnx"))
    assert figures["min_cosine"] >= 0.99999
    back = onnx_import.import_onnx(str(tmp_path / "quickstart.onnx"), str(tmp_path / "back"))
    assert checkpoint.load_meta(back)["model"] == meta["model"]


@pytest.mark.parametrize("opset", [7, 20])
def test_the_ends_of_the_opset_range_export_and_import(tmp_path, opset):
    reference = random_torch_model("sfnet10_bn", seed=5, embed_dim=DIM, width=0.5)
    _export(reference, tmp_path / "m.onnx", opset)
    _, found, back = imported_reference(tmp_path / "m.onnx")
    assert (found.arch, found.kwargs) == ("sfnet10_bn", {"width": 0.5})
    faces = images(2, seed=6)
    agree(torch_embed(back, faces), torch_embed(reference, faces))


@pytest.mark.parametrize("opset", [3, 6, 21, 999])
def test_an_opset_outside_the_range_is_refused_naming_the_range(tmp_path, opset):
    with pytest.raises(ValueError, match=rf"--opset {opset}: the supported ONNX opsets are 7 to 20"):
        onnx_export.export(str(tmp_path / "no-ckpt"), str(tmp_path / "m.onnx"), opset=opset)
    assert not (tmp_path / "m.onnx").exists()
