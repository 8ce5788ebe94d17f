"""insightface's MXNet MobileFaceNet with the GNAP output (``symbol_utils.get_fc1(fc_type='GNAP')``) imports with no
flags, as ``mobilefacenet {"scale": 1, "output": "gnap"}``, and embeds as MXNet does at batch size 1 (MXNet's GNAP
mean runs over the whole batch, so at larger batches its embeddings depend on the images beside them; jsphere's
mean is each image's own). The files are laid out by ``mxnet_zoo`` from insightface's symbol code, computed with
MXNet semantics (BatchNorm eps 2e-5 and fix_gamma, pre_fc1's bias); exports load strictly into our PyTorch
definition. Agreement as in the other converter tests (min cosine >= 0.99999, max |Δ| <= 1e-4 of the scale)."""

import numpy as np
import pytest
import torch

from converters.mxnet_format import mxnet_import
from converters.pth_format import pth_export
from converters.torch_reference import backbones as torch_backbones
from converters.torch_reference.random_weights import torch_embed
from jsphere import checkpoint
from jsphere.inference import Embedder
from tests.converters.agreement import agree
from tests.converters.mxnet_zoo import FMobileFaceNet, faces, write_params


def _gnap_files(tmp_path, emb, symbol=True):
    net = FMobileFaceNet(np.random.default_rng(emb), emb=emb, original=False, output="GNAP")
    net.calibrate(faces(8, 1))
    write_params(tmp_path / "model-0000.params", net.p)
    if symbol:
        net.write_symbol(tmp_path / "model-symbol.json")
    return net


def _one_at_a_time(net, images):
    """MXNet's embeddings at batch size 1, where its batch-wide GNAP mean is each image's own."""
    return np.concatenate([net.embed(images[i:i + 1]) for i in range(len(images))])


@pytest.mark.parametrize(("emb", "symbol"), [(128, True), (512, True), (128, False)])
def test_a_gnap_mobilefacenet_imports_and_embeds_as_mxnet_at_batch_size_one(tmp_path, emb, symbol):
    net = _gnap_files(tmp_path, emb, symbol)
    found = []
    out = mxnet_import.import_params(str(tmp_path / "model-0000.params"), str(tmp_path / "ckpt"),
                                     report=lambda f, layout: found.append((f, layout)))
    assert checkpoint.load_meta(out)["model"] == {"name": "mobilefacenet", "embed_dim": emb,
                                                  "kwargs": {"scale": 1, "output": "gnap"}}
    assert "GNAP" in found[0][0].description and found[0][1].startswith("fmobilefacenet (GNAP)")
    images = faces(3, 2)
    agree(Embedder.from_checkpoint(out, batch_size=3).embed(images, flip="none"), _one_at_a_time(net, images))


def test_mxnets_gnap_embeddings_depend_on_the_batch_and_jspheres_do_not(tmp_path):
    """Why jsphere takes each image's mean: the same face embedded beside others changes in MXNet."""
    net = _gnap_files(tmp_path, 128)
    images = faces(4, 5)
    out = mxnet_import.import_params(str(tmp_path / "model-0000.params"), str(tmp_path / "ckpt"))
    embedder = Embedder.from_checkpoint(out, batch_size=4)
    np.testing.assert_allclose(embedder.embed(images, flip="none")[:1], embedder.embed(images[:1].repeat(4, 0),
                                                                                          flip="none")[:1], atol=1e-5)
    assert np.abs(net.embed(images)[0] - net.embed(images[:1])[0]).max() > 1e-3


def test_a_gnap_mobilefacenet_exports_to_our_pytorch_definition(tmp_path):
    net = _gnap_files(tmp_path, 128)
    out = mxnet_import.import_params(str(tmp_path / "model-0000.params"), str(tmp_path / "ckpt"))
    pth_export.export(str(out), "insightface", str(tmp_path / "backbone.pth"))
    model = torch_backbones.build("mobilefacenet", 128, scale=1, output="gnap")
    model.load_state_dict(torch.load(tmp_path / "backbone.pth", weights_only=True), strict=True)
    images = faces(3, 6)
    agree(torch_embed(model.eval(), images), _one_at_a_time(net, images))


def test_a_gnap_output_widened_above_512_is_refused_naming_convx(tmp_path):
    net = _gnap_files(tmp_path, 128, symbol=False)
    params = dict(net.p)
    params["arg:convx_weight"] = np.zeros((1024, 512, 1, 1), np.float32)
    write_params(tmp_path / "model-0000.params", params)
    with pytest.raises(ValueError, match=r"GNAP output widened above 512 channels \(convx\)"):
        mxnet_import.import_params(str(tmp_path / "model-0000.params"), str(tmp_path / "out"))
