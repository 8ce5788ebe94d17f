"""insightface's MXNet models import without mxnet and reproduce the MXNet network.

The files are written as the released ones are laid out (``tests/converters/mxnet_zoo.py``: the ``.params``
NDArray list and a symbol JSON whose graph, node names and variable names are those of insightface's symbol code,
including y1's ``pre_fc1`` reading ``fc1_weight``). The reference output is computed with PyTorch functional ops
straight from the MXNet parameter names (the in-graph ``(x - 127.5) * 0.0078125`` on 0-255 pixels, BatchNorm
``eps`` 1e-3 in MobileFaceNet and 2e-5 in LResNet, ``fix_gamma`` on ``fc1``, the ``pre_fc1`` bias). Agreement:
min cosine >= 0.99999 and max |Δ| <= 1e-4 relative to the embedding scale: float32 on both sides, the only
difference being the order of summation (and the folds, exact up to one float32 rounding per weight), so errors
stay near 1e-6 relative on any CPU.
"""

import json
import struct

import numpy as np
import pytest

from converters.core import folding, infer, layer_order
from converters.mxnet_format import model_files, mxnet_import, networks
from jsphere import checkpoint
from jsphere.inference import Embedder
from tests.converters.mxnet_zoo import FMobileFaceNet, FResNet, faces, write_params


def _agree(ours, theirs):
    cos = np.sum(ours * theirs, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    scale = np.abs(theirs).max()
    assert cos.min() >= 0.99999 and np.abs(ours - theirs).max() <= 1e-4 * max(scale, 1.0), (cos.min(), scale)


ZOO = {  # (network, jsphere model it imports as)
    "y1": (lambda rng: FMobileFaceNet(rng), ("mobilefacenet", 128, {"scale": 1})),
    # y2's layout (recognition/symbol, res_2 with 64 groups, pre_fc1_weight) with fewer blocks than (2, 8, 16, 4)
    "y2": (lambda rng: FMobileFaceNet(rng, blocks=(2, 1, 1, 1), emb=64, original=False),
           ("mobilefacenet", 64, {"scale": 1, "blocks": [2, 1, 1, 1]})),
    "r18": (lambda rng: FResNet(rng, 18, emb=32), ("iresnet18", 32, {})),
}


def _files(tmp_path, key, seed=0, attr_key="attrs"):
    net = ZOO[key][0](np.random.default_rng(seed))
    net.calibrate(faces(8, seed + 1))
    write_params(tmp_path / "model-0000.params", net.p)
    net.write_symbol(tmp_path / "model-symbol.json", attr_key)
    return net


def test_y1_fixture_has_the_released_names():
    """model-y1-test2's pre_fc1 reads Variable('fc1_weight'); no variable is called pre_fc1_weight."""
    net = FMobileFaceNet(np.random.default_rng(0))
    assert "arg:fc1_weight" in net.p and "arg:pre_fc1_weight" not in net.p and "arg:pre_fc1_bias" in net.p
    fc = next(n for n in net.symbol()["nodes"] if n["name"] == "pre_fc1")
    read = [net.symbol()["nodes"][i]["name"] for i, *_ in fc["inputs"]]
    assert read == ["conv_6dw7_7_batchnorm", "fc1_weight", "pre_fc1_bias"]


@pytest.mark.parametrize(("key", "attr_key"), [("y1", "attrs"), ("y2", "attrs"),
                                               ("r18", "param")])  # MXNet 0.x symbol files: "param", 2-entry inputs
def test_zoo_model_imports_with_no_flags_and_reproduces_the_mxnet_network(tmp_path, key, attr_key):
    net = _files(tmp_path, key, attr_key=attr_key)
    (tmp_path / "model-0000.params").rename(tmp_path / "model-0012.params")  # MXNet's save counter, not a step
    out = mxnet_import.import_params(str(tmp_path / "model-0012.params"), str(tmp_path / "ckpt"))
    arch, dim, kwargs = ZOO[key][1]
    meta = checkpoint.load_meta(out)
    assert meta["model"] == {"name": arch, "embed_dim": dim, "kwargs": kwargs}
    assert out.name == "0" and meta["source"]["mxnet_epoch"] == 12
    assert meta["input"] == {"channels": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3, "alignment": "arcface"}
    embedder = Embedder.from_checkpoint(out, batch_size=4)
    images = faces(4, 2)
    _agree(embedder.embed(images, flip="none"), net.embed(images))


@pytest.mark.parametrize("key", list(ZOO))
def test_without_a_symbol_file_insightface_names_give_the_same_weights(tmp_path, key):
    _files(tmp_path, key, seed=3)
    params = model_files.read_params(tmp_path / "model-0000.params")
    sd_default, _ = networks.to_torch_state_dict(params, None, "f")
    symbol = model_files.read_symbol(tmp_path / "model-symbol.json")
    sd_symbol, _ = networks.to_torch_state_dict(params, symbol, "f")
    assert list(sd_default) == list(sd_symbol)
    for k in sd_default:
        np.testing.assert_array_equal(sd_default[k], sd_symbol[k])


def test_variables_are_found_through_the_graph_whatever_their_names(tmp_path):
    """Symbols may name a variable anything (model-y1-test2's pre_fc1 reads fc1_weight; other MXNet files put
    prefixes in the middle of names): with the symbol, the variables an operator reads decide."""
    net = _files(tmp_path, "y1", seed=5)
    symbol_json = net.symbol()
    renamed = {}
    for i, node in enumerate(symbol_json["nodes"]):
        if node["op"] == "null" and node["name"] != "data":
            renamed[node["name"]] = node["name"] = f"v{i}__tree_0"
    (tmp_path / "renamed-symbol.json").write_text(json.dumps(symbol_json))
    params = {f"{k[:4]}{renamed[k[4:]]}": v for k, v in net.p.items()}
    write_params(tmp_path / "renamed-0000.params", params)
    sd, _ = networks.to_torch_state_dict(model_files.read_params(tmp_path / "renamed-0000.params"),
                                             model_files.read_symbol(tmp_path / "renamed-symbol.json"), "f")
    reference, _ = networks.to_torch_state_dict(model_files.read_params(tmp_path / "model-0000.params"),
                                                    model_files.read_symbol(tmp_path / "model-symbol.json"), "f")
    for k in reference:
        np.testing.assert_array_equal(sd[k], reference[k])


@pytest.mark.parametrize(("network", "arch", "kwargs", "dim"), [
    (lambda: FResNet(None, 34), "iresnet34", {}, 512),  # model-r34-amf
    (lambda: FResNet(None, 50), "iresnet50", {}, 512),  # model-r50-am-lfw
    (lambda: FResNet(None, 100), "iresnet100", {}, 512),  # model-r100-ii
    (lambda: FMobileFaceNet(None, blocks=(2, 8, 16, 4), emb=256, original=False), "mobilefacenet",
     {"scale": 1, "blocks": [2, 8, 16, 4]}, 256),  # y2
])
def test_deep_zoo_networks_map_onto_every_jsphere_layer(tmp_path, network, arch, kwargs, dim):
    """Names and shapes only (no weights are materialised): every operator of the released layout, found through
    its symbol's graph, lands on a layer of the jsphere model with that layer's shape; y2's 64-wide res_2 blocks
    are the ones widened to 128."""
    net = network()
    net.write_symbol(tmp_path / "s.json")
    names = networks.ParamNames({k[4:] for k in net.p}, model_files.read_symbol(tmp_path / "s.json"), "f")
    rows = (networks.mobilefacenet_layers if arch == "mobilefacenet" else networks.iresnet_layers)(names.has)
    expected = {layer.key: layer for layer in layer_order.call_order(arch, dim, kwargs)}
    assert sorted(t for _, t, _ in rows) == sorted(expected)
    shapes = {k[4:]: np.shape(v) for k, v in net.p.items()}
    for mx, torch, kind in rows:
        shape = shapes[names.name(mx, "weight" if kind in ("conv", "fc") else "gamma")]
        if not torch.startswith("layers.1."):  # y2's res_2: 64 inside, padded to jsphere's 128
            assert shape == expected[torch].shape, (mx, torch, shape)
    if arch.startswith("iresnet"):
        sd = {t + ".weight": np.broadcast_to(np.float32(0), expected[t].shape) for _, t, _ in rows}
        sd["features.weight"] = np.ones(dim, np.float32)
        assert [f.arch for f in infer.infer(sd, "insightface-mxnet", "f")] == [arch]


def test_an_operator_jsphere_has_no_layer_for_is_refused_naming_it(tmp_path):
    net = _files(tmp_path, "y1")
    symbol_json = net.symbol()
    node = next(n for n in symbol_json["nodes"] if n["name"] == "conv_6sep_relu")
    node["op"], node["attrs"] = "Activation", {"act_type": "relu"}  # a ReLU network (config.net_act='relu')
    (tmp_path / "model-symbol.json").write_text(json.dumps(symbol_json))
    with pytest.raises(ValueError, match=r"operator 'conv_6sep_relu' \(Activation\)"):
        mxnet_import.import_params(str(tmp_path / "model-0000.params"), str(tmp_path / "out"))


def test_malformed_symbol_graphs_are_refused_in_one_line(tmp_path):
    net = FMobileFaceNet(np.random.default_rng(0))
    symbol_json = net.symbol()
    symbol_json["nodes"][5]["inputs"] = [[10**9, 0, 0]]
    (tmp_path / "a.json").write_text(json.dumps(symbol_json))
    with pytest.raises(ValueError, match=r"a.json: node 5 .* reads \[1000000000, 0, 0\], which is no node"):
        model_files.read_symbol(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"nodes": {"op": "null"}}))
    with pytest.raises(ValueError, match="b.json is not an MXNet symbol JSON"):
        model_files.read_symbol(tmp_path / "b.json")
    symbol_json = net.symbol()
    next(n for n in symbol_json["nodes"] if n["name"] == "fc1")["attrs"]["eps"] = "tiny"
    (tmp_path / "c.json").write_text(json.dumps(symbol_json))
    with pytest.raises(ValueError, match="BatchNorm 'fc1' has eps 'tiny', which is no number"):
        model_files.read_symbol(tmp_path / "c.json").bn("fc1")


def test_batchnorm_eps_fix_gamma_and_shift_fold_exactly():
    """Small variances make eps matter (1e-3 vs 1e-5 changes the output by ~40 %): the fold must absorb it."""
    rng = np.random.default_rng(0)
    c = 6
    x = rng.normal(0, 0.05, (10, c))
    gamma, beta, mean = rng.uniform(0.5, 2, c), rng.normal(0, 1, c), rng.normal(0, 0.01, c)
    var = rng.uniform(1e-3, 3e-3, c)
    shift = rng.normal(0, 0.1, c)
    for eps, fix_gamma in ((1e-3, False), (2e-5, True), (1e-6, False)):
        g = np.ones(c) if fix_gamma else gamma
        mxnet = (x + shift - mean) / np.sqrt(var + eps) * g + beta
        t = folding.batchnorm(gamma, beta, mean, var, eps, fix_gamma=fix_gamma, shift=shift)
        var_plus_eps = t["running_var"].astype(np.float64) + 1e-5
        torch_bn = (x - t["running_mean"]) / np.sqrt(var_plus_eps) * t["weight"] + t["bias"]
        np.testing.assert_allclose(torch_bn, mxnet, rtol=2e-6, atol=2e-6)
        naive = (x + shift - mean) / np.sqrt(var + 1e-5) * g + beta
        assert eps == 1e-6 or fix_gamma or np.abs(naive - mxnet).max() > 0.1  # the fold is not a no-op


def test_every_ndarray_header_version_reads(tmp_path):
    """V1 (int64 shape, no storage type) and legacy (uint32 shape, no magic) arrays, float16 and int64 data."""
    a16 = np.arange(6, dtype=np.float16).reshape(2, 3)
    a64 = np.arange(4, dtype=np.int64)
    with open(tmp_path / "v.params", "wb") as f:
        f.write(struct.pack("<QQQ", 0x112, 0, 2))
        f.write(struct.pack("<Ii2q", 0xF993FAC8, 2, 2, 3) + struct.pack("<iii", 1, 0, 2) + a16.tobytes())
        f.write(struct.pack("<II", 1, 4) + struct.pack("<iii", 2, 0, 6) + a64.tobytes())
        f.write(struct.pack("<Q", 2) + struct.pack("<Q", 5) + b"arg:a" + struct.pack("<Q", 5) + b"aux:b")
    got = model_files.read_params(tmp_path / "v.params")
    np.testing.assert_array_equal(got["arg:a"], a16)
    np.testing.assert_array_equal(got["aux:b"], a64)


def test_truncated_or_foreign_params_are_refused_and_nothing_is_written(tmp_path):
    net = FMobileFaceNet(np.random.default_rng(0))
    write_params(tmp_path / "model-0000.params", net.p)
    data = (tmp_path / "model-0000.params").read_bytes()
    (tmp_path / "cut-0000.params").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated MXNet .params file"):
        mxnet_import.import_params(str(tmp_path / "cut-0000.params"), str(tmp_path / "out"))
    (tmp_path / "text-0000.params").write_text("hello")
    with pytest.raises(ValueError, match="not an MXNet .params file"):
        mxnet_import.import_params(str(tmp_path / "text-0000.params"), str(tmp_path / "out"))
    other = {"arg:stem_weight": np.zeros((4, 3, 3, 3)), "arg:head_weight": np.zeros((2, 4))}
    write_params(tmp_path / "other-0000.params", other)
    with pytest.raises(ValueError, match="unknown MXNet network .*stem_weight.*supported: insightface fmobilefacenet"):
        mxnet_import.import_params(str(tmp_path / "other-0000.params"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
