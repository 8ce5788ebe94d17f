"""insightface's MXNet models import without mxnet and reproduce the MXNet network.

The test writes the ``.params`` binary itself (MXNet's NDArray-list layout: list magic 0x112, per array the V2
header, int64 shape, context, dtype flag, raw float32; then the names) and a symbol JSON, and computes the
network the way MXNet does with PyTorch functional ops, straight from the MXNet parameter names: the in-graph
``(x - 127.5) * 0.0078125`` on 0-255 pixels, BatchNorm ``eps`` 1e-3 (MXNet's default) in MobileFaceNet and 2e-5
in LResNet, ``fix_gamma`` on ``fc1`` (the stored gamma ignored), the ``pre_fc1`` bias. BatchNorm statistics are
measured on random images first, so activations keep a realistic scale. Agreement: min cosine >= 0.99999 and max
|Δ| <= 1e-4 relative to the embedding scale (float32 on both sides, different summation orders).
"""

import json
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from converters import folding, import_mxnet, infer, layer_order, mxnet_params
from jsphere import checkpoint
from jsphere.inference import Embedder

MXNET_BN_DEFAULT_EPS = 1e-3
RESNET_EPS = 2e-5


def write_params(path, arrays):
    """``mx.nd.save`` layout, written from MXNet's NDArray::Save (V2 magic, dense, CPU context, float32)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<QQ", 0x112, 0))
        f.write(struct.pack("<Q", len(arrays)))
        for value in arrays.values():
            a = np.ascontiguousarray(value, np.float32)
            f.write(struct.pack("<Ii", 0xF993FAC9, 0))
            f.write(struct.pack("<i", a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape))
            f.write(struct.pack("<iii", 1, 0, 0))  # cpu(0), float32
            f.write(a.tobytes())
        f.write(struct.pack("<Q", len(arrays)))
        for name in arrays:
            f.write(struct.pack("<Q", len(name)) + name.encode())


class MXNetNet:
    """An insightface recognition symbol evaluated with MXNet semantics from a dict of MXNet-named parameters."""

    def __init__(self, rng, eps):
        self.rng, self.eps, self.p = rng, eps, {}
        self.calibrating = False

    # parameters, named as mx.model.save_checkpoint names them
    def conv_param(self, name, cout, cin, k):
        self.p[f"arg:{name}_weight"] = self.rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k))

    def bn_param(self, name, c):
        self.p[f"arg:{name}_gamma"] = self.rng.uniform(0.5, 1.5, c)
        self.p[f"arg:{name}_beta"] = self.rng.normal(0, 0.1, c)
        self.p[f"aux:{name}_moving_mean"] = np.zeros(c)
        self.p[f"aux:{name}_moving_var"] = np.ones(c)

    def prelu_param(self, name, c):
        self.p[f"arg:{name}_gamma"] = self.rng.uniform(0.0, 0.5, c)

    def fc_param(self, name, cout, cin):
        self.p[f"arg:{name}_weight"] = self.rng.normal(0, np.sqrt(1.0 / cin), (cout, cin))
        self.p[f"arg:{name}_bias"] = self.rng.normal(0, 0.3, cout)

    def t(self, key):
        return torch.from_numpy(np.asarray(self.p[key], np.float32))

    # MXNet operators
    def conv(self, x, name, stride=1, pad=0, groups=1):
        return F.conv2d(x, self.t(f"arg:{name}_weight"), stride=stride, padding=pad, groups=groups)

    def bn(self, x, name, eps, fix_gamma=False):
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        if self.calibrating:  # moving statistics = this batch's (unbiased variance, as MXNet keeps)
            self.p[f"aux:{name}_moving_mean"] = x.mean(axes).numpy().astype(np.float64)
            self.p[f"aux:{name}_moving_var"] = x.var(axes, unbiased=True).numpy().astype(np.float64)
        gamma = torch.ones(x.shape[1]) if fix_gamma else self.t(f"arg:{name}_gamma")
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        mean, var = self.t(f"aux:{name}_moving_mean"), self.t(f"aux:{name}_moving_var")
        return ((x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) * gamma.view(shape)
                + self.t(f"arg:{name}_beta").view(shape))

    def prelu(self, x, name):
        a = self.t(f"arg:{name}_gamma").view(1, -1, 1, 1)
        return torch.where(x > 0, x, a * x)

    def fc(self, x, name):
        return x.flatten(1) @ self.t(f"arg:{name}_weight").T + self.t(f"arg:{name}_bias")

    def embed(self, images):
        x = torch.from_numpy(images.astype(np.float32).transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            return self.forward((x - 127.5) * 0.0078125).numpy()

    def calibrate(self, images):
        self.calibrating = True
        self.embed(images)
        self.calibrating = False


class MobileFaceNetY1(MXNetNet):
    """fmobilefacenet with the GDC output (model-y1-test2): widths 64/128, blocks 1/4/6/2, 128-d."""

    BLOCKS = {"res_3": (4, 64, 128), "res_4": (6, 128, 256), "res_5": (2, 128, 256)}

    def __init__(self, rng, emb=128):
        super().__init__(rng, MXNET_BN_DEFAULT_EPS)
        self.block_params("conv_1", 64, 3, 3, 1)
        self.block_params("conv_2_dw", 64, 64, 3, 64)
        for name, cin, cout, g in (("dconv_23", 64, 64, 128), ("dconv_34", 64, 128, 256), ("dconv_45", 128, 128, 512)):
            self.dresidual_params(name, cin, cout, g)
            res = {"dconv_23": "res_3", "dconv_34": "res_4", "dconv_45": "res_5"}[name]
            n, c, g2 = self.BLOCKS[res]
            for i in range(n):
                self.dresidual_params(f"{res}_block{i}", c, c, g2)
        self.block_params("conv_6sep", 512, 128, 1, 1)
        self.block_params("conv_6dw7_7", 512, 512, 7, 512, act=False)
        self.fc_param("pre_fc1", emb, 512)
        self.bn_param("fc1", emb)  # random gamma: fix_gamma must ignore it

    def block_params(self, name, cout, cin, k, groups, act=True):
        self.conv_param(f"{name}_conv2d", cout, cin // groups, k)
        self.bn_param(f"{name}_batchnorm", cout)
        if act:
            self.prelu_param(f"{name}_relu", cout)

    def dresidual_params(self, name, cin, cout, g):
        self.block_params(f"{name}_conv_sep", g, cin, 1, 1)
        self.block_params(f"{name}_conv_dw", g, g, 3, g)
        self.block_params(f"{name}_conv_proj", cout, g, 1, 1, act=False)

    def block(self, x, name, stride=1, pad=0, groups=1, act=True):
        x = self.bn(self.conv(x, f"{name}_conv2d", stride, pad, groups), f"{name}_batchnorm", self.eps)
        return self.prelu(x, f"{name}_relu") if act else x

    def dresidual(self, x, name, g, stride):
        x = self.block(x, f"{name}_conv_sep")
        x = self.block(x, f"{name}_conv_dw", stride, 1, g)
        return self.block(x, f"{name}_conv_proj", act=False)

    def forward(self, x):
        x = self.block(x, "conv_1", 2, 1)
        x = self.block(x, "conv_2_dw", 1, 1, 64)
        for name, g, res in (("dconv_23", 128, "res_3"), ("dconv_34", 256, "res_4"), ("dconv_45", 512, "res_5")):
            x = self.dresidual(x, name, g, 2)
            n, _, g2 = self.BLOCKS[res]
            for i in range(n):
                x = x + self.dresidual(x, f"{res}_block{i}", g2, 1)
        x = self.block(x, "conv_6sep")
        x = self.block(x, "conv_6dw7_7", groups=512, act=False)
        return self.bn(self.fc(x, "pre_fc1"), "fc1", RESNET_EPS, fix_gamma=True)

    def batchnorm_attrs(self):
        names = sorted({k[4:-len("_moving_mean")] for k in self.p if k.endswith("_moving_mean")})
        return {n: ({"eps": "2e-05", "fix_gamma": "True"} if n == "fc1" else {"fix_gamma": "False"}) for n in names}


class LResNetIR(MXNetNet):
    """fresnet LResNet-IR, unit v3, input v1, output E (model-r50-am-lfw / model-r100-ii shape, fewer units)."""

    def __init__(self, rng, units=(2, 2, 2, 2), emb=32):
        super().__init__(rng, RESNET_EPS)
        self.units = units
        self.conv_param("conv0", 64, 3, 3)
        self.bn_param("bn0", 64)
        self.prelu_param("relu0", 64)
        cin = 64
        for s, (n, c) in enumerate(zip(units, (64, 128, 256, 512), strict=True), start=1):
            for u in range(1, n + 1):
                base = f"stage{s}_unit{u}"
                self.bn_param(f"{base}_bn1", cin)
                self.conv_param(f"{base}_conv1", c, cin, 3)
                self.bn_param(f"{base}_bn2", c)
                self.prelu_param(f"{base}_relu1", c)
                self.conv_param(f"{base}_conv2", c, c, 3)
                self.bn_param(f"{base}_bn3", c)
                if u == 1:
                    self.conv_param(f"{base}_conv1sc", c, cin, 1)
                    self.bn_param(f"{base}_sc", c)
                cin = c
        self.bn_param("bn1", 512)
        self.fc_param("pre_fc1", emb, 512 * 7 * 7)
        self.bn_param("fc1", emb)

    def forward(self, x):
        eps = self.eps
        x = self.prelu(self.bn(self.conv(x, "conv0", 1, 1), "bn0", eps), "relu0")
        for s, n in enumerate(self.units, start=1):
            for u in range(1, n + 1):
                base, stride = f"stage{s}_unit{u}", 2 if u == 1 else 1
                y = self.conv(self.bn(x, f"{base}_bn1", eps), f"{base}_conv1", 1, 1)
                y = self.prelu(self.bn(y, f"{base}_bn2", eps), f"{base}_relu1")
                y = self.bn(self.conv(y, f"{base}_conv2", stride, 1), f"{base}_bn3", eps)
                shortcut = self.bn(self.conv(x, f"{base}_conv1sc", stride), f"{base}_sc", eps) if u == 1 else x
                x = y + shortcut
        x = self.bn(x, "bn1", eps)
        return self.bn(self.fc(x, "pre_fc1"), "fc1", eps, fix_gamma=True)

    def batchnorm_attrs(self):
        names = sorted({k[4:-len("_moving_mean")] for k in self.p if k.endswith("_moving_mean")})
        return {n: {"eps": "2e-05", "fix_gamma": "True" if n == "fc1" else "False", "momentum": "0.9"}
                for n in names}


def write_symbol(path, net, attr_key="attrs"):
    """A symbol JSON as mx.sym.save writes it, reduced to what matters here: the input chain and the BatchNorms."""
    nodes = [{"op": "null", "name": "data", "inputs": []},
             {"op": "_minus_scalar", "name": "_minusscalar0", attr_key: {"scalar": "127.5"}, "inputs": [[0, 0, 0]]},
             {"op": "_mul_scalar", "name": "_mulscalar0", attr_key: {"scalar": "0.0078125"}, "inputs": [[1, 0, 0]]},
             {"op": "Convolution", "name": "first_conv", "inputs": [[2, 0, 0]]}]
    nodes += [{"op": "BatchNorm", "name": n, attr_key: a, "inputs": [[3, 0, 0]]}
              for n, a in net.batchnorm_attrs().items()]
    path.write_text(json.dumps({"nodes": nodes, "arg_nodes": [0], "heads": [[len(nodes) - 1, 0, 0]]}))


def faces(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


def _agree(ours, theirs):
    cos = np.sum(ours * theirs, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    scale = np.abs(theirs).max()
    assert cos.min() >= 0.99999 and np.abs(ours - theirs).max() <= 1e-4 * max(scale, 1.0), (cos.min(), scale)


@pytest.mark.parametrize(("network", "arch", "kwargs", "attr_key"), [
    (MobileFaceNetY1, "mobilefacenet", {"scale": 1}, "attrs"),
    (LResNetIR, "iresnet18", {}, "param"),  # older MXNet symbol files call the attributes "param"
])
def test_mxnet_model_imports_with_no_flags_and_reproduces_the_mxnet_network(tmp_path, network, arch, kwargs,
                                                                             attr_key):
    net = network(np.random.default_rng(0))
    net.calibrate(faces(8, 1))
    write_params(tmp_path / "model-0000.params", net.p)
    write_symbol(tmp_path / "model-symbol.json", net, attr_key)
    out = import_mxnet.import_params(str(tmp_path / "model-0000.params"), str(tmp_path / "ckpt"))
    embed_dim = net.p["arg:pre_fc1_bias"].shape[0]
    assert checkpoint.load_meta(out)["model"] == {"name": arch, "embed_dim": embed_dim, "kwargs": kwargs}
    embedder = Embedder.from_checkpoint(out, batch_size=4)
    images = faces(4, 2)
    _agree(embedder.embed(images, flip="none"), net.embed(images))


def test_without_a_symbol_file_insightface_defaults_give_the_same_weights(tmp_path):
    net = MobileFaceNetY1(np.random.default_rng(3))
    net.calibrate(faces(8, 4))
    write_params(tmp_path / "model-0000.params", net.p)
    sd_default, _ = import_mxnet.to_torch_state_dict(mxnet_params.read_params(tmp_path / "model-0000.params"), None,
                                                     "f")
    write_symbol(tmp_path / "model-symbol.json", net)
    symbol = mxnet_params.read_symbol(tmp_path / "model-symbol.json")
    sd_symbol, _ = import_mxnet.to_torch_state_dict(mxnet_params.read_params(tmp_path / "model-0000.params"), symbol,
                                                    "f")
    assert list(sd_default) == list(sd_symbol)
    for key in sd_default:
        np.testing.assert_array_equal(sd_default[key], sd_symbol[key])


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


@pytest.mark.parametrize(("units", "depth"), [((3, 4, 14, 3), 50), ((3, 13, 30, 3), 100)])
def test_lresnet_50_and_100_names_map_onto_every_iresnet_layer(units, depth):
    """model-r50-am-lfw / model-r100-ii: the fresnet names cover jsphere's iresnet50/100 layer for layer (shapes
    only: no weights are materialised)."""
    names = {"conv0_weight"}
    for s, n in enumerate(units, start=1):
        names |= {f"stage{s}_unit{u}_conv1_weight" for u in range(1, n + 1)}
    torch_modules = [t for _, t, _ in import_mxnet.iresnet_layers(names)]
    expected = [layer.key for layer in layer_order.call_order(f"iresnet{depth}", 512)]
    assert sorted(torch_modules) == sorted(expected)
    shapes = {f"layer{s}.{b}.conv1.weight": np.broadcast_to(np.float32(0), (1,)) for s, n in enumerate(units, 1)
              for b in range(n)}
    shapes |= {"conv1.weight": shapes["layer1.0.conv1.weight"], "prelu.weight": shapes["layer1.0.conv1.weight"],
               "fc.weight": np.broadcast_to(np.float32(0), (512, 25088)),
               "features.weight": np.ones(512, np.float32)}
    assert [f.arch for f in infer.infer(shapes, "insightface-mxnet", "f")] == [f"iresnet{depth}"]


def test_every_ndarray_header_version_reads(tmp_path):
    """V1 (int64 shape, no storage type) and legacy (uint32 shape, no magic) arrays, float16 and int64 data."""
    a16 = np.arange(6, dtype=np.float16).reshape(2, 3)
    a64 = np.arange(4, dtype=np.int64)
    with open(tmp_path / "v.params", "wb") as f:
        f.write(struct.pack("<QQQ", 0x112, 0, 2))
        f.write(struct.pack("<Ii2q", 0xF993FAC8, 2, 2, 3) + struct.pack("<iii", 1, 0, 2) + a16.tobytes())
        f.write(struct.pack("<II", 1, 4) + struct.pack("<iii", 2, 0, 6) + a64.tobytes())
        f.write(struct.pack("<Q", 2) + struct.pack("<Q", 5) + b"arg:a" + struct.pack("<Q", 5) + b"aux:b")
    got = mxnet_params.read_params(tmp_path / "v.params")
    np.testing.assert_array_equal(got["arg:a"], a16)
    np.testing.assert_array_equal(got["aux:b"], a64)


def test_truncated_or_foreign_params_are_refused_and_nothing_is_written(tmp_path):
    net = MobileFaceNetY1(np.random.default_rng(0))
    write_params(tmp_path / "model-0000.params", net.p)
    data = (tmp_path / "model-0000.params").read_bytes()
    (tmp_path / "cut-0000.params").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated MXNet .params file"):
        import_mxnet.import_params(str(tmp_path / "cut-0000.params"), str(tmp_path / "out"))
    (tmp_path / "text-0000.params").write_text("hello")
    with pytest.raises(ValueError, match="not an MXNet .params file"):
        import_mxnet.import_params(str(tmp_path / "text-0000.params"), str(tmp_path / "out"))
    other = {"arg:stem_weight": np.zeros((4, 3, 3, 3)), "arg:head_weight": np.zeros((2, 4))}
    write_params(tmp_path / "other-0000.params", other)
    with pytest.raises(ValueError, match="unknown MXNet network .*stem_weight.*supported: insightface fmobilefacenet"):
        import_mxnet.import_params(str(tmp_path / "other-0000.params"), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
